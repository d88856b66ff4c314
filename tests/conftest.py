"""Shared fixtures: real photos and digits that ship with scikit-learn, small datasets built from them."""

from __future__ import annotations

import os
import tempfile

# Hub clients read these at import time: point them at nothing real before anything imports them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_dr_tests_home_"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Global RNGs are seeded so that code which wrongly uses them still fails reproducibly."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """scikit-learn's two real photos (427 x 640 RGB)."""
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


@pytest.fixture(scope="session")
def photo_images(photos: list[np.ndarray]):
    """The two photos as Pillow RGB images."""
    from PIL import Image

    return [Image.fromarray(p) for p in photos]


@pytest.fixture(scope="session")
def photo_tensors(photos: list[np.ndarray]) -> list[torch.Tensor]:
    from hf_dr.functional import to_tensor

    return [to_tensor(p) for p in photos]


@pytest.fixture(scope="session")
def digits_dataset():
    """A datasets.Dataset of 200 real scikit-learn digits as 32x32 RGB PNGs with ClassLabel labels and keys."""
    from tests.data_utils import digits_dataset

    return digits_dataset(200)
