"""ReinforcedTransform: replays what the teacher saw, same choice for any worker count, new choice per epoch."""

from __future__ import annotations

import pickle

import datasets
import pytest
import torch
from torch.utils.data import DataLoader

from hf_dr import ReinforcedTransform, create_policy, densify
from hf_dr.errors import ClassCountMismatchError, DataMismatchError, MissingColumnError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

N, K = 6, 5


@pytest.fixture(scope="module")
def teacher():
    return ProjectionTeacher(size=24)


@pytest.fixture(scope="module")
def images():
    return digits_dataset(48)


@pytest.fixture(scope="module")
def reinforced(images, teacher):
    """Self-contained layout: images, labels, keys and reinforcements in one table."""
    table = reinforce_in_memory(images, create_policy("rrc+ra_re"), teacher, N, K, seed=3)
    return datasets.concatenate_datasets([images, table.remove_columns("key")], axis=1)


def _transform(dataset, **kwargs):
    return ReinforcedTransform(dataset, policy="rrc+ra_re", size=24, seed=11, **kwargs)


def _epoch(dataset, num_workers: int, epoch: int = 0, transform=None):
    transform = transform or _transform(dataset)
    transform.set_epoch(epoch)
    loader = DataLoader(transform.attach(dataset), batch_size=8, num_workers=num_workers)
    batches = list(loader)
    return torch.cat([b["pixel_values"] for b in batches]), torch.cat([b["labels"] for b in batches])


def test_outputs_pixel_values_and_dense_soft_labels(reinforced):
    ds = _transform(reinforced).attach(reinforced.with_format(None))
    row = ds[0]
    assert row["pixel_values"].shape == (3, 24, 24) and row["pixel_values"].dtype == torch.float32
    assert row["labels"].shape == (10,) and float(row["labels"].sum()) == pytest.approx(1.0, abs=1e-5)
    batch = ds[:5]
    assert len(batch["pixel_values"]) == 5


def test_replayed_view_gets_the_stored_teacher_prediction(reinforced, teacher):
    transform = _transform(reinforced)
    for row in reinforced.select(range(12)):
        for index in range(N):
            pixel_values, target = transform.replay(row["image"], row["key"], index)
            stored = transform.record(row["key"], index)
            ids = torch.topk(teacher(pixel_values[None])[0], K).indices.tolist()
            assert ids == stored["ids"]
            expected = densify(torch.tensor(stored["ids"]), torch.tensor(stored["probs"], dtype=torch.float16), 10)
            assert torch.equal(target, expected)


def test_same_samples_for_any_num_workers(reinforced):
    pixels0, labels0 = _epoch(reinforced.with_format(None), num_workers=0)
    pixels2, labels2 = _epoch(reinforced.with_format(None), num_workers=2)
    assert torch.equal(pixels0, pixels2) and torch.equal(labels0, labels2)


def test_each_epoch_draws_other_records(reinforced):
    transform = _transform(reinforced)
    first = [transform.choose(k) for k in reinforced["key"]]
    transform.set_epoch(1)
    assert [transform.choose(k) for k in reinforced["key"]] != first
    pixels_a, _ = _epoch(reinforced.with_format(None), 0, epoch=0)
    pixels_b, _ = _epoch(reinforced.with_format(None), 0, epoch=1)
    assert not torch.equal(pixels_a, pixels_b)


def test_set_epoch_reaches_persistent_workers(reinforced):
    transform = _transform(reinforced)
    ds = transform.attach(reinforced.with_format(None))
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True)
    first = torch.cat([b["labels"] for b in loader])
    transform.set_epoch(5)
    second = torch.cat([b["labels"] for b in loader])
    assert not torch.equal(first, second)
    assert torch.equal(second, _epoch(reinforced.with_format(None), 0, epoch=5)[1])


def test_metadata_only_layout_joins_by_key_after_shuffle(images, reinforced):
    """Reinforcements in their own table; the image dataset shuffled: rows are matched by key, not position."""
    table = reinforced.select_columns(["key", "reinforcements"])
    transform = ReinforcedTransform(table, policy="rrc+ra_re", size=24, seed=11, num_classes=10)
    shuffled = transform.attach(images.shuffle(seed=0))
    ref = _transform(reinforced)
    for row_index in range(5):
        key = images.shuffle(seed=0)[row_index]["key"]
        expected = ref.replay(images[int(key.split("-")[1])]["image"], key)
        assert torch.equal(shuffled[row_index]["pixel_values"], expected[0])


def test_pickles_with_its_epoch(reinforced):
    transform = _transform(reinforced)
    transform.set_epoch(3)
    clone = pickle.loads(pickle.dumps(transform))
    assert clone.epoch == 3
    row = reinforced[0]
    assert torch.equal(clone.replay(row["image"], row["key"])[0], transform.replay(row["image"], row["key"])[0])


def test_mixing_policy_fetches_partner_by_key(images, teacher):
    policy = create_policy("rrc+mix")
    table = reinforce_in_memory(images.select(range(12)), policy, teacher, 3, K, seed=1)
    transform = ReinforcedTransform(table, policy=policy, size=24, images=images.select(range(12)), num_classes=10)
    for row in images.select(range(12)):
        for index in range(3):
            pixel_values, _ = transform.replay(row["image"], row["key"], index)
            ids = torch.topk(teacher(pixel_values[None])[0], K).indices.tolist()
            assert ids == transform.record(row["key"], index)["ids"]


def test_missing_columns_name_the_fix(reinforced, images):
    with pytest.raises(MissingColumnError, match="no column\\(s\\) \\['reinforcements'\\]") as info:
        ReinforcedTransform(images, policy="rrc+ra_re")
    assert isinstance(info.value, KeyError)
    transform = _transform(reinforced)
    with pytest.raises(MissingColumnError, match="image_column="):
        transform.attach(reinforced.rename_column("image", "img"))
    with pytest.raises(MissingColumnError, match="input_columns"):
        transform({"img": [], "key": []})


def test_unknown_key_is_a_data_mismatch(reinforced, images):
    transform = _transform(reinforced)
    with pytest.raises(DataMismatchError, match="no reinforcements"):
        transform.replay(images[0]["image"], "not-a-key")


def test_class_count_mismatch(reinforced):
    transform = _transform(reinforced)
    transform.check_num_classes(10)
    with pytest.raises(ClassCountMismatchError, match="num_classes=N"):
        transform.check_num_classes(1000)
    with pytest.raises(ClassCountMismatchError):
        _transform(reinforced, num_classes=3).replay(reinforced[0]["image"], reinforced[0]["key"], 0)
