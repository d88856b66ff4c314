"""The batched replay (:mod:`hf_dr.data.batch_replay`): a batch of rows replays, bit for bit, as each row does alone
(:meth:`ReinforcedTransform.sample`), at every epoch, for RGB and grayscale runs, stored and seeded params, every
label codec, a mixing policy, both outputs and both ways of reading records, with one records lookup per batch."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader

from hf_dr import ReinforcedTransform, reinforce
from hf_dr.data import batch_replay
from hf_dr.data.batch_replay import decoded_params, partner_images, python_rows
from hf_dr.data.bundled import load_bundled
from hf_dr.data.curriculum import Curriculum
from hf_dr.data.keys import KeyIndex
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.errors import DataMismatchError
from hf_dr.generate.loading import load_run_records, open_run_records
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")
ROWS, SIZE = 24, 28
RUNS = {  # name: (source, policy, codec, image mode)
    "rgb": ("rgb", "rrc+ra_re", None, None),
    "mix": ("rgb", "rrc+mix", {"labels": "q8-topk-set"}, None),
    "gray-seeded-sampled": ("gray", "rrc+mix+ra_re", {"params": "seeded", "labels": "sampled", "draws": 6}, "L"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[datasets.Dataset, str]]:
    """Real digits, 3-channel (scikit-learn's, 32 px RGB) and grayscale (the bundled ``digits``, 28 px), each
    reinforced by a small teacher: N=4 records of k=5 labels per image, in shards of 10 rows."""
    root = tmp_path_factory.mktemp("batch-replay")
    sources = {"rgb": digits_dataset(ROWS), "gray": load_bundled("digits", "train").select(range(ROWS))}
    members = [save_teacher(str(root / "teachers"), seed=0)]
    made = {}
    for name, (source, policy, codec, mode) in RUNS.items():
        made[name] = (sources[source], reinforce(
            sources[source], members, output_dir=str(root / name), policy=policy, num_samples=4, topk=5, seed=0,
            key_column="key", shard_size=10, batch_size=64, num_workers=0, progress=False, codec=codec,
            image_mode=mode))
    return made


def _transform(run_dir: str, source: datasets.Dataset, output: str, records: str, **options) -> ReinforcedTransform:
    if records == "row_groups":
        rows, row_groups = open_run_records(run_dir)
        return ReinforcedTransform(rows, records=row_groups, size=SIZE, images=source, seed=3, output=output,
                                   **options)
    return ReinforcedTransform(load_run_records(run_dir, keep_in_memory=True), size=SIZE, images=source, seed=3,
                               output=output, **options)


def _one_by_one(transform: ReinforcedTransform, source: datasets.Dataset, order: list[int]) -> list[dict]:
    rows = source.with_format(None)
    return [transform.sample(rows[row]["image"], rows[row]["key"]) for row in order]


def _assert_equal(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for position, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert sorted(a) == sorted(b), position
        for name, value in b.items():
            assert a[name].dtype == value.dtype and torch.equal(a[name], value), (position, name)  # exact


@pytest.mark.parametrize("records", ["table", "row_groups"])
@pytest.mark.parametrize("output", ["float32", "uint8"])
@pytest.mark.parametrize("name", list(RUNS))
def test_a_batch_replays_as_each_row_alone_bit_for_bit(runs, name, output, records):
    source, run_dir = runs[name]
    transform = _transform(run_dir, source, output, records)
    attached = transform.attach(source.with_format(None))
    preloaded = PreloadedDataset(source, transform)
    for epoch in (0, 1, 2):
        transform.set_epoch(epoch)
        order = np.random.default_rng(epoch).permutation(ROWS).tolist()
        expected = _one_by_one(transform, source, order)
        _assert_equal(attached.__getitems__(order), expected)  # one hook call: what a DataLoader makes
        _assert_equal(preloaded.__getitems__(order), expected)
    if output == "uint8":  # the collated batches equal the float32 output's
        slow = _transform(run_dir, source, "float32", records)
        slow_data = slow.attach(source.with_format(None))
        for epoch in (0, 4):
            transform.set_epoch(epoch)
            slow.set_epoch(epoch)
            fast = list(DataLoader(attached, batch_size=7, collate_fn=transform.collate()))
            for a, b in zip(fast, DataLoader(slow_data, batch_size=7), strict=True):
                assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])


def test_a_curriculum_draws_as_each_row_alone(runs):
    source, run_dir = runs["rgb"]
    transform = _transform(run_dir, source, "float32", "table", curriculum=Curriculum.named("easy->all", 3))
    attached = transform.attach(source.with_format(None))
    for epoch in (0, 2):
        transform.set_epoch(epoch)
        _assert_equal(attached.__getitems__(list(range(ROWS))), _one_by_one(transform, source, list(range(ROWS))))


@pytest.mark.parametrize("name", ["rgb", "mix"])
def test_a_batch_reads_its_records_and_partners_once_not_row_by_row(runs, name, monkeypatch):
    """Before: the hook looked each row's records up and turned them into Python objects one sample at a time, and
    read each mixing partner's image alone."""
    source, run_dir = runs[name]
    transform = _transform(run_dir, source, "uint8", "table")
    expected = _one_by_one(transform, source, list(range(ROWS)))
    attached = transform.attach(source.with_format(None))

    def per_row(*args, **kwargs):
        raise AssertionError("a record or a partner read row by row")

    for method in ("_records_of", "_stored", "partner_image"):
        monkeypatch.setattr(ReinforcedTransform, method, per_row)
    read = []
    monkeypatch.setattr(batch_replay, "partner_images", lambda *args: read.append(partner_images(*args)) or read[-1])
    _assert_equal(attached.__getitems__(list(range(ROWS))), expected)
    assert len(read) == (name == "mix") and (name != "mix" or len(read[0]) >= 3)  # one read of the partners


def test_a_batch_names_a_null_key_and_a_key_the_run_lacks(runs):
    source, run_dir = runs["rgb"]
    transform = _transform(run_dir, source, "float32", "table")
    images = source.with_format(None)[:2]["image"]
    with pytest.raises(DataMismatchError, match=r"row 1 of this batch has no sample key \(null in column 'key'\)"):
        transform({"image": images, "key": ["digit-00000", None]})
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-99999' is not in the reinforcements"):
        transform({"image": images, "key": ["digit-00000", "digit-99999"]})
    rows, row_groups = open_run_records(run_dir)
    other = ReinforcedTransform(rows, records=row_groups, size=SIZE, images=source)
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-99999' is not in the reinforcements"):
        other({"image": images, "key": ["digit-99999", "digit-00001"]})


@pytest.mark.parametrize("keep_keys", [True, False])
def test_key_index_rows_of_a_batch_equal_each_keys_row(keep_keys):
    keys = [f"n{i:05d}.JPEG" for i in range(300)] + ["dup", "dup"]  # a duplicate key shares its hash: its last row
    index = KeyIndex(keys, where="the table", fix="load the right one.", keep_keys=keep_keys)
    batch = ["dup", *keys[:5], "n00299.JPEG", "n00007.JPEG"]
    assert index.rows(batch).tolist() == [index.row(key) for key in batch] == [301, 0, 1, 2, 3, 4, 299, 7]
    assert index.rows([]).tolist() == []
    with pytest.raises(DataMismatchError, match=r"sample key 'missing' is not in the table; load the right one\."):
        index.rows(["n00001.JPEG", "missing"])
    with pytest.raises(DataMismatchError, match="is not in the table"):
        KeyIndex([], where="the table").rows(["a"])


def test_python_rows_equal_to_pylist_for_nested_records_with_nulls():
    records = pa.array([
        {"params": {"crop": {"top": 3, "flip": True, "scale": 0.5}, "ra": {"ops": [1, 2], "name": "a"}},
         "ids": [4, 2], "probs": [0.75, 0.25]},
        {"params": {"crop": {"top": 5, "flip": False, "scale": None}, "ra": {"ops": [0, 7], "name": None}},
         "ids": [1], "probs": [1.0]},
        {"params": {"crop": {"top": 0, "flip": False, "scale": 1.0}, "ra": None}, "ids": [], "probs": []},
    ])
    assert python_rows(records) == records.to_pylist()
    for field in ("params", "ids", "probs"):
        assert python_rows(records.field(field)) == records.field(field).to_pylist()
    values = python_rows(pa.array([[1, 2], [3, 4]], pa.list_(pa.uint16(), 2)))
    assert values == [[1, 2], [3, 4]] and all(type(v) is int for row in values for v in row)


@pytest.mark.parametrize("name", ["rgb", "mix"])
def test_params_decoded_over_the_batch_equal_the_per_row_decode(runs, name):
    source, run_dir = runs[name]
    transform = ReinforcedTransform(load_run_records(run_dir), size=SIZE, images=source)
    records = transform._table.data.column("reinforcements").combine_chunks().values
    stored = records.field("params")
    expected = [transform.policy.decode(row) for row in stored.to_pylist()]
    decoded = decoded_params(transform.policy, stored)
    assert decoded == expected and len(decoded) == ROWS * 4
    for got, want in zip(decoded, expected, strict=True):  # the same Python types: floats stay floats, bools bools
        assert [type(v) for op in want for v in want[op].values()] == [type(v) for op in got for v in got[op].values()]
    crop = stored.field("crop")
    holed = pa.StructArray.from_arrays([pa.StructArray.from_arrays(
        [crop.field(f) if f != "top" else pa.array([None] * len(crop), pa.uint16()) for f in crop.type.names],
        names=crop.type.names), *[stored.field(f) for f in stored.type.names[1:]]], names=stored.type.names)
    assert stored.type.names[0] == "crop" and decoded_params(transform.policy, holed) is None  # the per-row decode
