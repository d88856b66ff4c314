"""Corrupted test sets: every draw from the row's key (the same set in any row order), a pure apply, strength
growing with severity, and a dataset whose labels and keys stay as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_dr.data.bundled import load_bundled
from hf_dr.demo.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    apply_corruption,
    corrupt_dataset,
    corruption_generator,
    sample_corruption,
)
from hf_dr.errors import InvalidConfigError


@pytest.fixture(scope="module")
def digits():
    return load_bundled("digits", "test").select(range(40))


def _pixels(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())[None]


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_grows_with_severity_and_apply_is_pure(digits, name):
    image = _pixels(digits[0]["image"])
    changes = []
    for severity in SEVERITIES:
        params = sample_corruption(name, severity, image.shape[-2:], corruption_generator("k", name, severity))
        out = apply_corruption(image, params)
        assert out.dtype == torch.uint8 and out.shape == image.shape
        assert torch.equal(out, apply_corruption(image, params))  # the same params, the same pixels
        changes.append(float((out.float() - image.float()).abs().mean()))
    assert changes[0] > 0 and changes[-1] > changes[0], changes


def test_corrupted_dataset_is_keyed_by_row_and_keeps_labels(digits):
    once = corrupt_dataset(digits, "gaussian_noise", 3)
    shuffled = corrupt_dataset(digits.select(range(39, -1, -1)), "gaussian_noise", 3)
    assert list(once["label"]) == list(digits["label"]) and list(once["key"]) == list(digits["key"])
    assert np.array_equal(np.asarray(once[0]["image"]), np.asarray(shuffled[39]["image"]))  # by key, not by row
    assert not np.array_equal(np.asarray(once[0]["image"]), np.asarray(digits[0]["image"]))
    assert not np.array_equal(np.asarray(once[0]["image"]), np.asarray(corrupt_dataset(
        digits.select([0]), "gaussian_noise", 3, seed=1)[0]["image"]))


def test_unknown_names_and_severities_are_refused(digits):
    with pytest.raises(InvalidConfigError, match="corruption"):
        corrupt_dataset(digits, "fog", 3)
    with pytest.raises(InvalidConfigError, match="severity"):
        corrupt_dataset(digits, "contrast", 6)
