"""The declared schema of reinforcement rows: class id types, record and table features, and encoded records that
store and read back through Arrow and Parquet."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest

from hf_dr import create_policy, list_policies
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeding import generator_for
from hf_dr.data.schema import (
    KEY_COLUMN,
    REINFORCEMENTS_COLUMN,
    class_id_dtype,
    encode_record,
    record_features,
    reinforcement_features,
)


@pytest.mark.parametrize("num_classes, dtype", [(2, "uint16"), (1000, "uint16"), (65536, "uint16"),
                                                (65537, "uint32"), (21843, "uint16"), (10**6, "uint32")])
def test_class_id_dtype_is_the_narrowest_holding_every_id(num_classes, dtype):
    """uint16 holds ids up to 65535, i.e. at most 65536 classes; beyond, uint32."""
    assert class_id_dtype(num_classes) == dtype
    assert np.iinfo(dtype).max >= num_classes - 1


def test_record_features_are_fixed_length_top_k():
    """params follow the policy; ids and probs are fixed-size lists of k (uint ids, float16 probabilities)."""
    policy = create_policy("rrc+ra_re")
    features = record_features(policy, topk=5, num_classes=100)
    assert list(features) == ["params", "ids", "probs"] and features["params"] == policy.features()
    arrow = datasets.Features(features).arrow_schema
    assert arrow.field("ids").type == pa.list_(pa.uint16(), 5)
    assert arrow.field("probs").type == pa.list_(pa.float16(), 5)
    assert datasets.Features(record_features(policy, 3, 70000)).arrow_schema.field("ids").type == pa.list_(
        pa.uint32(), 3)


def test_reinforcement_features_name_the_key_column():
    """One string key (any column name) and a list of records."""
    policy = create_policy("rrc")
    default = reinforcement_features(policy, topk=3, num_classes=10)
    assert list(default) == [KEY_COLUMN, REINFORCEMENTS_COLUMN] and default[KEY_COLUMN] == datasets.Value("string")
    assert default[REINFORCEMENTS_COLUMN] == datasets.List(record_features(policy, 3, 10))
    assert list(reinforcement_features(policy, 3, 10, key_column="id")) == ["id", REINFORCEMENTS_COLUMN]


def test_encode_record_converts_params_ids_and_probs():
    """Params are encoded by the policy (fractions to uint16), ids become ints, probs are rounded to float16."""
    policy = create_policy("rrc")
    params = policy.sample_params((427, 640), generator_for(0, "china", 0))
    probs = np.array([0.6, 0.3, 0.1], dtype=np.float32)
    record = encode_record(policy, params, np.array([7, 2, 9], dtype=np.int64), probs)
    assert record["params"] == policy.encode(params) and policy.decode(record["params"]) == params
    assert record["ids"] == [7, 2, 9] and all(type(i) is int for i in record["ids"])
    assert record["probs"] == [float(np.float16(p)) for p in probs]


@pytest.mark.parametrize("name", list_policies())
def test_encoded_records_fit_the_declared_features_and_read_back(name, photos, tmp_path):
    """Rows of encoded records are accepted by the declared features as they are, survive Parquet, and decode to
    the sampled params."""
    policy = create_policy(name)
    sizes = [p.shape[:2] for p in photos]
    pool = PartnerPool(["china", "flower"], sizes)
    topk, num_classes = 3, 10
    rows, sampled = [], []
    for r, key in enumerate(["china", "flower"]):
        params = [policy.sample_params(sizes[r], generator_for(0, key, i), pool) for i in range(4)]
        probs = np.random.default_rng(r).dirichlet(np.ones(num_classes), size=4)
        ids = np.argsort(-probs, axis=1)[:, :topk]
        rows.append({"key": key, "reinforcements": [encode_record(policy, p, i, pr[i])
                                                    for p, i, pr in zip(params, ids, probs, strict=True)]})
        sampled.append((params, ids, probs))
    features = reinforcement_features(policy, topk, num_classes)
    dataset = datasets.Dataset.from_list(rows, features=features)
    dataset.to_parquet(str(tmp_path / "r.parquet"))
    back = datasets.load_dataset("parquet", data_files=str(tmp_path / "r.parquet"), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    assert back.features == features
    for row, (params, ids, probs) in zip(back, sampled, strict=True):
        for record, p, i, pr in zip(row["reinforcements"], params, ids, probs, strict=True):
            assert policy.decode(record["params"]) == p
            assert record["ids"] == i.tolist()
            assert record["probs"] == pytest.approx(pr[i].tolist(), abs=1e-3)


def test_a_record_with_the_wrong_number_of_ids_is_refused():
    """The fixed length k is enforced when the rows are stored."""
    policy = create_policy("rrc")
    params = policy.sample_params((32, 32), generator_for(0, "k", 0))
    record = encode_record(policy, params, [1, 2], [0.5, 0.5])
    with pytest.raises(TypeError, match="length=3"):
        datasets.Dataset.from_list([{"key": "k", "reinforcements": [record]}],
                                   features=reinforcement_features(policy, 3, 10))
