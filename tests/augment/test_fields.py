"""Typed parameter fields: fractions snap to the uint16 grid and round-trip exactly through Arrow and Parquet; the
shape checks accept exactly the declared types."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_dr import create_policy, list_policies
from hf_dr.augment.fields import BOOL, FRACTION, FRACTION_SCALE, Field, snap_fraction
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeding import generator_for

GRID = np.arange(FRACTION_SCALE + 1) / FRACTION_SCALE


def test_snap_fraction_is_a_fixed_point_on_the_grid():
    """Every grid value snaps to itself, and snapping any value twice equals snapping it once."""
    assert all(snap_fraction(float(v)) == float(v) for v in GRID)
    values = np.random.default_rng(0).uniform(-0.2, 1.2, size=5000)
    for value in values:
        snapped = snap_fraction(float(value))
        assert snapped == snap_fraction(snapped)
        assert 0.0 <= snapped <= 1.0
        if 0.0 <= value <= 1.0:
            assert abs(snapped - value) <= 0.5 / FRACTION_SCALE + 1e-12


def test_snap_fraction_clamps_to_the_unit_interval():
    """Values outside [0, 1] (e.g. from float error) land on the grid's ends."""
    assert snap_fraction(-0.3) == 0.0 and snap_fraction(1.7) == 1.0
    assert snap_fraction(1.0 + 1e-9) == 1.0 and snap_fraction(-1e-9) == 0.0


def test_every_grid_value_round_trips_exactly_through_uint16():
    """encode gives the grid index (fits uint16) and decode returns the very same float, through Arrow and Parquet."""
    encoded = [FRACTION.encode(float(v)) for v in GRID]
    assert encoded == list(range(FRACTION_SCALE + 1))
    stored = pa.array(encoded, type=pa.uint16())  # would raise if a value did not fit
    decoded = [FRACTION.decode(v) for v in stored.to_pylist()]
    assert decoded == [float(v) for v in GRID]


def test_sampled_fractions_survive_a_parquet_round_trip_bit_for_bit(photos, tmp_path):
    """Every fraction a policy samples is on the grid: decode(encode(x)) == x after writing and reading Parquet."""
    sizes = [p.shape[:2] for p in photos]
    pool = PartnerPool(["a", "b"], sizes)
    checked = 0
    for name in list_policies():
        policy = create_policy(name)
        records = [policy.sample_params(sizes[i % 2], generator_for(3, name, i), pool) for i in range(40)]
        features = datasets.Features({"params": policy.features()})
        table = datasets.Dataset.from_list([{"params": policy.encode(r)} for r in records], features=features)
        path = str(tmp_path / f"{name}.parquet")
        table.to_parquet(path)
        back = [policy.decode(p) for p in pq.read_table(path).column("params").to_pylist()]
        assert back == records
        checked += sum(1 for r in records for op in r.values() for v in op.values() if isinstance(v, float))
    assert checked > 1000


def test_fraction_check_accepts_only_floats_in_the_unit_interval():
    """A fraction is a float in [0, 1]: ints, bools, strings, NaN and values outside are refused."""
    assert all(FRACTION.check(v) for v in (0.0, 0.5, 1.0, np.float64(0.25)))
    assert not any(FRACTION.check(v) for v in (1, 0, True, "0.5", -0.01, 1.01, float("nan"), None))


def test_plain_checks_follow_the_dtype():
    """Bools must be bools, ints must be ints (not bools), strings must be strings."""
    integer, string = Field("uint8"), Field("string")
    assert BOOL.check(True) and BOOL.check(False) and not BOOL.check(1) and not BOOL.check("True")
    assert integer.check(3) and not integer.check(True) and not integer.check(3.0) and not integer.check("3")
    assert string.check("key") and not string.check(3) and not string.check(None)


def test_fixed_length_fields_check_and_convert_each_value():
    """A length-3 fraction field takes lists or tuples of exactly 3 fractions and converts element-wise."""
    triple = Field("uint16", kind="fraction", length=3)
    assert triple.check([0.0, 0.5, 1.0]) and triple.check((0.0, 0.5, 1.0))
    assert not triple.check([0.0, 0.5]) and not triple.check([0.0, 0.5, 2.0]) and not triple.check(0.5)
    values = [snap_fraction(0.1), snap_fraction(0.2), 1.0]
    assert triple.encode(values) == [round(0.1 * 65535), round(0.2 * 65535), 65535]
    assert triple.decode(triple.encode(values)) == values


def test_features_declare_the_storage_type():
    """Scalars are a Value of the dtype, fixed-length fields a fixed-size Arrow list."""
    assert FRACTION.feature() == datasets.Value("uint16") and BOOL.feature() == datasets.Value("bool")
    arrow = datasets.Features({"x": Field("int8", length=4).feature()}).arrow_schema.field("x").type
    assert arrow == pa.list_(pa.int8(), 4)


@pytest.mark.parametrize("field, value", [(BOOL, True), (Field("int8"), -3), (Field("string"), "img_7"),
                                          (Field("uint8", length=2), [1, 2])])
def test_plain_values_round_trip_unchanged(field, value):
    """Non-fraction values are stored as they are and decoded to the same Python value and type."""
    decoded = field.decode(field.encode(value))
    assert decoded == value and type(decoded) is type(value)
