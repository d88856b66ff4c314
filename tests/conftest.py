"""Shared fixtures: real photos and digits that ship with scikit-learn, small datasets built from them."""

from __future__ import annotations

# The root conftest.py has pointed huggingface_hub and datasets at the local Hub server's address; the server starts
# when a test first asks for the `hub` fixture.
import numpy as np
import pytest
import torch

from tests.hub_server import HubServer, start_session_server


@pytest.fixture(scope="session")
def hub() -> HubServer:
    """The session's local Hub server (started on first use); every ``huggingface_hub``/``datasets`` call in the
    tests goes to it."""
    return start_session_server()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Global RNGs are seeded so that code which wrongly uses them still fails reproducibly."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (use ``pytestmark = pytest.mark.usefixtures("one_thread")``): on two busy
    shared cores, spinning OpenMP threads slow the tiny test models down 5-100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    from hf_dr.augment.functional import to_tensor

    return [to_tensor(p) for p in photos]


@pytest.fixture(scope="session")
def digits_dataset():
    """A datasets.Dataset of 200 real scikit-learn digits as 32x32 RGB PNGs with ClassLabel labels and keys."""
    from tests.data_utils import digits_dataset

    return digits_dataset(200)
