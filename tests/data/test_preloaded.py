"""PreloadedDataset: the same transform object on in-memory decoded columns gives the attached dataset's batches."""

from __future__ import annotations

import datasets
import pytest
import torch
from torch.utils.data import DataLoader

from hf_dr import AugmentTransform, EvalTransform, ReinforcedTransform, create_policy
from hf_dr.data.preloaded import PreloadedDataset
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory


@pytest.fixture(scope="module")
def images() -> datasets.Dataset:
    return digits_dataset(24)


@pytest.fixture(scope="module")
def table(images) -> datasets.Dataset:
    return reinforce_in_memory(images, create_policy("rrc+ra_re"), ProjectionTeacher(size=20), 3, 4, seed=2)


@pytest.mark.parametrize("kind", ["reinforced", "augment", "eval"])
def test_batches_equal_the_attached_dataset(kind, images, table):
    make = {
        "reinforced": lambda: ReinforcedTransform(table, policy="rrc+ra_re", size=20, seed=5, num_classes=10),
        "augment": lambda: AugmentTransform("rrc+ra_re", size=20, seed=5),
        "eval": lambda: EvalTransform(size=20),
    }[kind]
    fast_transform, slow_transform = make(), make()
    fast = PreloadedDataset(images, fast_transform)
    slow = slow_transform.attach(images.with_format(None))
    for epoch in (0, 3):
        fast.set_epoch(epoch)
        slow_transform.set_epoch(epoch)
        fast_batches = list(DataLoader(fast, batch_size=8))
        slow_batches = list(DataLoader(slow, batch_size=8))
        for a, b in zip(fast_batches, slow_batches, strict=True):
            assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    assert len(fast) == len(images) and torch.equal(fast[5]["pixel_values"], slow[5]["pixel_values"])
