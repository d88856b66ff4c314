"""KeyIndex: a compact, shared key -> row lookup equal to a dict of every key, at any scale (issue 12)."""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader

import hf_dr.data.keys as keys_module
from hf_dr import ReinforcedTransform, create_policy
from hf_dr.data.keys import KeyIndex, KeyList, key_hash, key_hashes
from hf_dr.errors import DataMismatchError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory


def _random_keys(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789_./-é日本")
    return list({"".join(rng.choice(alphabet, rng.integers(0, 40))) for _ in range(count)})


def test_scalar_and_vectorised_hashes_agree():
    keys = [*_random_keys(2000), "", "n01440764_10026.JPEG", "x" * 1000]
    assert [key_hash(k) for k in keys] == key_hashes(keys).tolist()
    assert key_hashes(pa.chunked_array([keys[:5], keys[5:10]])).tolist() == key_hashes(keys[:10]).tolist()
    assert len(set(key_hashes(keys).tolist())) == len(set(keys))


def test_rows_equal_a_dict_of_every_key():
    keys = _random_keys(5000)
    index = KeyIndex(pa.array(keys))
    assert [index.row(k) for k in keys] == list(range(len(keys)))
    assert len(index) == len(keys) and "absent-key" not in index and keys[7] in index
    with pytest.raises(DataMismatchError, match="'absent-key' is not in the dataset"):
        index.row("absent-key")


def test_shared_hashes_are_resolved_exactly(monkeypatch):
    """Keys sharing a hash (forced here with a weak hash: the key's length) are looked up exactly; a duplicate key
    gives its last row, like a dict; an absent key sharing a present one's hash is caught by ``check``."""
    weak = lambda values: np.array([len(v) for v in (values.to_pylist() if hasattr(values, "to_pylist")  # noqa: E731
                                                     else values)], dtype=np.uint64)
    monkeypatch.setattr(keys_module, "key_hashes", weak)
    monkeypatch.setattr(keys_module, "key_hash", len)
    keys = ["ab", "cd", "xyz", "ab", "q"]
    index = KeyIndex(keys)
    expected = {key: row for row, key in enumerate(keys)}
    assert {key: index.row(key) for key in expected} == expected
    assert index.find("zz") is None  # shares a hash with "ab" and "cd", kept exactly
    assert "zzzz" not in index
    assert index.find("abc") == 2  # the hash of "xyz" alone: found by hash, refused by the row's key
    with pytest.raises(DataMismatchError, match="'abc' is not in the dataset"):
        index.row("abc")


def test_an_absent_key_sharing_a_hash_is_refused_by_the_replay(monkeypatch):
    images = digits_dataset(8)
    table = reinforce_in_memory(images, create_policy("rrc"), ProjectionTeacher(size=16), 3, 2)
    monkeypatch.setattr(keys_module, "key_hash", lambda key: 0 if key == "intruder" else key_hashes([key])[0])
    transform = ReinforcedTransform(table, policy="rrc", size=16, num_classes=10)
    transform._rows._hashes = torch.zeros(len(table), dtype=torch.int64)  # every stored hash is now the intruder's
    with pytest.raises(DataMismatchError, match="'intruder' is not in the reinforcements"):
        transform.record("intruder")


def test_replay_lookup_equals_a_dict_on_shuffled_and_selected_tables():
    images = digits_dataset(40)
    table = reinforce_in_memory(images, create_policy("rrc"), ProjectionTeacher(size=16), 4, 3)
    for variant in (table.shuffle(seed=1), table.select([9, 3, 30, 12, 0]), table.shuffle(seed=2).select(range(17))):
        transform = ReinforcedTransform(variant, policy="rrc", size=16, num_classes=10)
        by_key = {row["key"]: row["reinforcements"] for row in variant}
        for key, records in by_key.items():
            stored = transform.record(key, index=2)
            assert stored["ids"] == records[2]["ids"] and stored["probs"] == records[2]["probs"]


def test_pickles_in_bytes_to_workers_and_works_under_spawn():
    """Under multiprocessing's pickler (what DataLoader workers get) the index travels as shared-memory handles."""
    index = KeyIndex([f"{i:032x}" for i in range(100_000)], keep_keys=False)  # as the replay makes it
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(index)
    assert len(buffer.getvalue()) < 2000 < len(pickle.dumps(index))
    images = digits_dataset(12)
    table = reinforce_in_memory(images, create_policy("rrc"), ProjectionTeacher(size=16), 3, 2)
    transform = ReinforcedTransform(table, policy="rrc", size=16, num_classes=10)
    expected = torch.stack([transform.attach(images)[i]["pixel_values"] for i in range(len(images))])
    loader = DataLoader(images, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    assert torch.equal(torch.cat([batch["pixel_values"] for batch in loader]), expected)


def test_a_key_list_is_a_compact_sequence_of_its_keys():
    """What the generation's workers get instead of a Python list: equal as a sequence, pickled as Arrow buffers."""
    keys = _random_keys(3000)
    compact = KeyList(keys)
    assert compact == keys and list(compact[5:9]) == keys[5:9] and list(compact[::7]) == keys[::7]
    assert compact[-1] == keys[-1] and KeyList(pa.chunked_array([keys[:10], keys[10:]])) == keys
    raw = sum(len(k.encode()) for k in keys) + 4 * (len(keys) + 1)  # the bytes and offsets, no object per key
    assert compact.array.nbytes <= raw and len(pickle.dumps(compact)) < raw + 1000
    assert pickle.loads(pickle.dumps(compact)) == keys
