"""Fashion-MNIST read straight from idx files (hf_dr.data.fashion_mnist): written here from scikit-learn's real
digits in the idx format Debian's package installs, so the test needs no download and no installed package."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from sklearn.datasets import load_digits

from hf_dr.data.fashion_mnist import CLASS_NAMES, fashion_mnist_arrays, load_fashion_mnist
from hf_dr.errors import InvalidConfigError, SourceNotFoundError


def _write_idx(path, array: np.ndarray, magic_type: int = 0x08) -> None:
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def root(tmp_path):
    digits = load_digits()
    images = (digits.images[:12] * 255 / 16).astype(np.uint8)  # 8x8 real digits, 0..255
    for prefix, rows in (("train", slice(0, 8)), ("t10k", slice(8, 12))):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images[rows])
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", digits.target[:12][rows])
    return tmp_path, images, digits.target[:12]


def test_the_idx_files_are_read_as_written(root):
    folder, images, labels = root
    train_images, train_labels = fashion_mnist_arrays("train", folder)
    assert train_images.shape == (8, 8, 8) and train_images.dtype == np.uint8 and train_labels.dtype == np.int64
    assert np.array_equal(train_images, images[:8]) and train_labels.tolist() == labels[:8].tolist()
    test_images, test_labels = fashion_mnist_arrays("test", folder)  # "test" reads the t10k files
    assert np.array_equal(test_images, images[8:]) and test_labels.tolist() == labels[8:].tolist()


def test_the_dataset_keeps_the_chosen_rows_with_stable_keys(root):
    folder, images, labels = root
    ds = load_fashion_mnist("test", indices=[3, 1], root=folder)
    assert ds["key"] == ["test-00003", "test-00001"]
    assert ds["label"] == [int(labels[11]), int(labels[9])] and ds.features["label"].names == list(CLASS_NAMES)
    assert np.array_equal(np.asarray(ds[0]["image"]), images[11]) and ds[0]["image"].mode == "L"
    assert len(load_fashion_mnist("train", root=folder)) == 8


def test_bad_files_and_splits_are_refused_naming_them(root, tmp_path):
    folder, images, _ = root
    with pytest.raises(InvalidConfigError, match="split should be one of"):
        fashion_mnist_arrays("validation", folder)
    with pytest.raises(SourceNotFoundError, match="HF_DR_FASHION_MNIST"):
        fashion_mnist_arrays("train", tmp_path / "missing")
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images[8:].astype(np.float32), magic_type=0x0D)
    with pytest.raises(InvalidConfigError, match="t10k-images-idx3-ubyte.gz is not an idx file of unsigned bytes"):
        fashion_mnist_arrays("test", folder)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images[8:11])
    with pytest.raises(InvalidConfigError, match="3 images but 4 labels"):
        fashion_mnist_arrays("test", folder)
