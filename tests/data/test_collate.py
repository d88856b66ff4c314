"""ReinforcedTransform(output="uint8") + ReinforcedCollate: the batches of the float32 output, bit for bit."""

from __future__ import annotations

import io
import pickle

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hf_dr import ReinforcedCollate, ReinforcedTransform, TrainConfig, create_model, create_policy, densify, fit
from hf_dr.data.collate import TARGET_IDS, TARGET_PROBS
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError
from hf_dr.hub.loader import create_reinforced_loader
from hf_dr.train.loop import batch_loss
from tests.data_utils import ProjectionTeacher, reinforce_in_memory

pytestmark = pytest.mark.usefixtures("one_thread")
N, K, SIZE = 4, 5, 48


@pytest.fixture(scope="module")
def reinforced(photos):
    """Twelve JPEG crops of the two real photos (self-contained layout), reinforced with rrc+ra_re."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(12):
        top, left = rng.integers(0, 427 - 150), rng.integers(0, 640 - 200)
        buffer = io.BytesIO()
        Image.fromarray(photos[i % 2][top:top + 150, left:left + 200]).save(buffer, format="JPEG", quality=90)
        images.append(Image.open(io.BytesIO(buffer.getvalue())))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10),
                                  "key": datasets.Value("string")})
    table = datasets.Dataset.from_dict({"image": images, "label": [i % 10 for i in range(12)],
                                        "key": [f"photo-{i}" for i in range(12)]}, features=features)
    records = reinforce_in_memory(table, create_policy("rrc+ra_re"), ProjectionTeacher(size=SIZE), N, K, seed=5)
    return datasets.concatenate_datasets([table, records.remove_columns("key")], axis=1)


def _attached(reinforced, **options):
    transform = ReinforcedTransform(reinforced, policy="rrc+ra_re", num_classes=10, size=SIZE, seed=2, **options)
    return transform, transform.attach(reinforced.with_format(None))


def _batches(dataset, epoch, transform, **loader_options):
    transform.set_epoch(epoch)
    return list(DataLoader(dataset, batch_size=5, **loader_options))


@pytest.mark.parametrize("channels_last", [False, True])
def test_uint8_output_collated_equals_the_float32_path_bit_for_bit(reinforced, channels_last):
    slow, slow_data = _attached(reinforced)
    fast, fast_data = _attached(reinforced, output="uint8")
    row = fast_data[0]
    assert row["pixel_values"].dtype == torch.uint8 and row[TARGET_IDS].shape == (K,)
    for epoch in (0, 1):
        expected = _batches(slow_data, epoch, slow)
        got = _batches(fast_data, epoch, fast, collate_fn=fast.collate(channels_last=channels_last))
        assert len(got) == len(expected) == 3
        for a, b in zip(got, expected, strict=True):
            assert a["pixel_values"].dtype == torch.float32
            assert torch.equal(a["pixel_values"], b["pixel_values"])  # exact, not close
            assert torch.equal(a["labels"], b["labels"])
            assert a["pixel_values"].is_contiguous(memory_format=torch.channels_last) == channels_last


def test_collate_in_two_workers_gives_the_same_batches(reinforced):
    fast, fast_data = _attached(reinforced, output="uint8")
    in_process = _batches(fast_data, 3, fast, collate_fn=fast.collate())
    in_workers = _batches(fast_data, 3, fast, collate_fn=fast.collate(), num_workers=2)
    assert len(in_workers) == 3
    for a, b in zip(in_workers, in_process, strict=True):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])


@pytest.mark.parametrize("leftover", ["uniform", "renormalize"])
def test_sparse_to_dense_equals_densify_per_sample(leftover):
    generator = torch.Generator().manual_seed(0)
    samples = []
    for k in (3, 3, 5, 1):  # one k per batch densifies once; mixed k per sample
        probs = torch.rand(k, generator=generator) / k
        samples.append({"pixel_values": torch.zeros(1, 2, 2, dtype=torch.uint8),
                        TARGET_IDS: torch.randperm(7, generator=generator)[:k], TARGET_PROBS: probs.half().float()})
    collate = pickle.loads(pickle.dumps(ReinforcedCollate(7, (0.5,), (0.5,), leftover=leftover)))
    for batch in (samples[:2], samples):
        expected = torch.stack([densify(s[TARGET_IDS], s[TARGET_PROBS], 7, leftover) for s in batch])
        assert torch.equal(collate(batch)["labels"], expected)


def test_fit_trains_on_the_uint8_output_as_on_the_float32_one(reinforced):
    histories = []
    for options in ({}, {"output": "uint8"}):
        transform, data = _attached(reinforced, **options)
        torch.manual_seed(0)
        model = create_model("hf_dr_cnn_small", num_classes=10, in_chans=3)
        config = TrainConfig(epochs=2, batch_size=4, lr=0.05, log_every=1, seed=1)
        histories.append(fit(model, data, config).history)
    assert len(histories[0]) == 6
    assert histories[1] == histories[0]  # the same batches: the same losses, step for step


def test_preloaded_uint8_rows_collate_to_the_float32_batches(reinforced):
    slow, _ = _attached(reinforced)
    fast, _ = _attached(reinforced, output="uint8")
    rows = list(range(12))
    expected = PreloadedDataset(reinforced, slow).__getitems__(rows)
    got = fast.collate()(PreloadedDataset(reinforced, fast).__getitems__(rows))
    assert torch.equal(got["pixel_values"], torch.stack([row["pixel_values"] for row in expected]))
    assert torch.equal(got["labels"], torch.stack([row["labels"] for row in expected]))
    columns = fast.attach(reinforced.with_format(None))[:12]  # a batch of columns, as a set_transform hook gives
    assert torch.equal(fast.collate()(columns)["pixel_values"], got["pixel_values"])


def test_timm_loader_batches_the_uint8_output(reinforced):
    batches = {}
    for output in ("float32", "uint8"):
        _, data = _attached(reinforced, output=output)
        loader = create_reinforced_loader(data, batch_size=4, num_workers=0, seed=3)
        batches[output] = list(loader)
    assert len(batches["uint8"]) == 3
    for (inputs, targets), (expected_inputs, expected_targets) in zip(batches["uint8"], batches["float32"],
                                                                      strict=True):
        assert torch.equal(inputs, expected_inputs) and torch.equal(targets, expected_targets)


def test_bad_output_and_uncollated_batches_are_refused(reinforced):
    with pytest.raises(InvalidConfigError, match="output should be one of"):
        _attached(reinforced, output="float16")
    slow, slow_data = _attached(reinforced)
    with pytest.raises(InvalidConfigError, match="float32 samples already: drop collate_fn"):
        ReinforcedCollate(10)([slow_data[0]])
    fast, fast_data = _attached(reinforced, output="uint8")
    uncollated = next(iter(DataLoader(fast_data, batch_size=2)))  # the default collate leaves the top-k sparse
    model = create_model("hf_dr_cnn_small", num_classes=10, in_chans=3)
    with pytest.raises(InvalidConfigError, match="collate_fn=transform.collate"):
        batch_loss(model, uncollated, TrainConfig())
    with pytest.raises(ClassCountMismatchError):
        ReinforcedCollate(3)([fast_data[0]])
