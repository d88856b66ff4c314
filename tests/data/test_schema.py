"""The declared schema of reinforcement rows: class id types, record and table features, and records encoded by
every codec (:meth:`RecordCodec.encode_row`) that store and read back through Arrow and Parquet."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest
import torch

from hf_dr import create_policy, list_policies
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeding import generator_for
from hf_dr.data.codec import LABEL_CODECS, RecordCodec
from hf_dr.data.schema import (
    KEY_COLUMN,
    REINFORCEMENTS_COLUMN,
    class_id_dtype,
    record_features,
    reinforcement_features,
)
from hf_dr.data.soft_labels import sparsify


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


def test_the_default_codec_stores_encoded_params_top_k_ids_and_float16_probs():
    """Params are encoded by the policy (fractions to uint16), ids the teacher's top-k as ints, probs its float16."""
    policy = create_policy("rrc")
    params = policy.sample_params((427, 640), generator_for(0, "china", 0))
    probs = torch.tensor([[0.1, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0]])
    (record,), columns = RecordCodec().encode_row(policy, [params], probs, 3, 0, "china")
    assert columns == {} and record["params"] == policy.encode(params) and policy.decode(record["params"]) == params
    assert record["ids"] == [7, 2, 0] and all(type(i) is int for i in record["ids"])
    assert record["probs"] == [float(np.float16(p)) for p in (0.6, 0.3, 0.1)]


def _codecs():
    """Every label codec with stored params for every policy, and every codec with seeded ones for a mixing policy."""
    cases = [(name, labels, "stored") for name in list_policies() for labels in LABEL_CODECS]
    return cases + [("rrc+mix+ra_re", labels, "seeded") for labels in LABEL_CODECS]


@pytest.mark.parametrize(("name", "labels", "params"), _codecs())
def test_encoded_records_fit_the_declared_features_and_read_back(name, labels, params, photos, tmp_path):
    """Rows of records encoded by each codec are accepted by its declared features as they are, survive Parquet, and
    decode to the sampled params and the teacher's labels."""
    policy = create_policy(name)
    codec = RecordCodec(params, labels).resolved(3)
    sizes = [p.shape[:2] for p in photos]
    pool = PartnerPool(["china", "flower"], sizes)
    topk, num_classes = 3, 10
    rows, sampled = [], []
    for r, key in enumerate(["china", "flower"]):
        params = [policy.sample_params(sizes[r], generator_for(0, key, i), pool) for i in range(4)]
        probs = torch.from_numpy(np.random.default_rng(r).dirichlet(np.ones(num_classes) / 4, size=4)).float()
        records, columns = codec.encode_row(policy, params, probs, topk, 0, key)
        rows.append({"key": key, **columns, "reinforcements": records})
        sampled.append((params, probs))
    features = reinforcement_features(policy, topk, num_classes, codec=codec, num_samples=4)
    dataset = datasets.Dataset.from_list(rows, features=features)
    dataset.to_parquet(str(tmp_path / "r.parquet"))
    back = datasets.load_dataset("parquet", data_files=str(tmp_path / "r.parquet"), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    assert back.features == features
    for row, (params, probs) in zip(back, sampled, strict=True):
        for index, (record, p, pr) in enumerate(zip(row["reinforcements"], params, probs, strict=True)):
            if codec.params == "stored":
                assert policy.decode(record["params"]) == p
            else:
                assert record["params"] == codec.encode_params(policy, p)
            ids, target = codec.decode_labels(record, row.get("classes"))
            if labels == "sampled":
                assert set(ids.tolist()) <= set(torch.nonzero(pr).flatten().tolist())
                assert float(target.sum()) == pytest.approx(1.0)
            else:
                top_ids, top_probs = sparsify(pr, topk)
                assert ids.tolist() == top_ids.tolist(), index
                assert target.tolist() == pytest.approx(top_probs.tolist(), rel=0.06, abs=1e-3)


def test_a_record_with_the_wrong_number_of_ids_is_refused():
    """The fixed length k is enforced when the rows are stored."""
    policy = create_policy("rrc")
    params = policy.sample_params((32, 32), generator_for(0, "k", 0))
    records, _ = RecordCodec().encode_row(policy, [params], torch.tensor([[0.5, 0.5]]), 2, 0, "k")
    with pytest.raises(TypeError, match="length=3"):
        datasets.Dataset.from_list([{"key": "k", "reinforcements": records}],
                                   features=reinforcement_features(policy, 3, 10))
