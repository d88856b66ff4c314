"""Fashion-MNIST from the files of Debian's ``dataset-fashion-mnist`` package: real data, no network.

The package installs the original ``idx`` files under ``/usr/share/datasets/fashion-mnist``. The files are fixed, so
a sample's key is its split and position (``"train-00042"``), which never changes for a given file.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import datasets
import numpy as np

from hf_dr.errors import InvalidConfigError, SourceNotFoundError

FASHION_MNIST_MEAN = (0.2860,)  # pixel statistics of the 60k training images
FASHION_MNIST_STD = (0.3530,)
DEFAULT_ROOT = Path(os.environ.get("HF_DR_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {"train": "train", "test": "t10k"}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte
        raise InvalidConfigError(f"{path} is not an idx file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _check_split(split: str, root: Path) -> Path:
    if split not in _FILES:
        raise InvalidConfigError(f"split should be one of {sorted(_FILES)}, but got {split!r} instead.")
    if not (root / f"{_FILES[split]}-images-idx3-ubyte.gz").exists():
        raise SourceNotFoundError(
            f"Fashion-MNIST is not under {root}; install Debian's package (apt-get install dataset-fashion-mnist) "
            "or point HF_DR_FASHION_MNIST at a folder holding the four idx .gz files"
        )
    return root


def fashion_mnist_arrays(split: str = "train", root: str | Path = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """The images (``uint8 [N, 28, 28]``) and labels (``int64 [N]``) of a split, straight from the idx files.

    Args:
        split (`str`, *optional*, defaults to ``"train"``): ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root (`str` or `Path`, *optional*): folder of the idx files (``HF_DR_FASHION_MNIST`` or Debian's path).

    Example:
        >>> images, labels = fashion_mnist_arrays("test")  # doctest: +SKIP
        >>> images.shape, labels[:3].tolist()  # doctest: +SKIP
        ((10000, 28, 28), [9, 2, 1])
    """
    root = _check_split(split, Path(root))
    prefix = _FILES[split]
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    if len(images) != len(labels):
        raise InvalidConfigError(f"{root}: {len(images)} images but {len(labels)} labels")
    return images, labels


def fashion_mnist_keys(split: str, indices: np.ndarray | list[int]) -> list[str]:
    """The stable keys of rows ``indices`` of ``split`` (``"train-00042"``)."""
    return [f"{split}-{int(i):05d}" for i in indices]


def load_fashion_mnist(
    split: str = "train",
    indices: np.ndarray | list[int] | None = None,
    root: str | Path = DEFAULT_ROOT,
) -> datasets.Dataset:
    """Fashion-MNIST as a ``datasets.Dataset`` with ``image`` (grayscale PNG), ``label`` (ClassLabel) and ``key``.

    Args:
        split (`str`, *optional*, defaults to ``"train"``): ``"train"`` or ``"test"``.
        indices (`Sequence[int]`, *optional*): rows to keep (e.g. a random subset); all rows when not given.
        root (`str` or `Path`, *optional*): folder of the idx files.

    Example:
        >>> ds = load_fashion_mnist("test", indices=range(4))  # doctest: +SKIP
        >>> ds.features["label"].names[ds[0]["label"]], ds[0]["key"]  # doctest: +SKIP
        ('Ankle boot', 'test-00000')
    """
    images, labels = fashion_mnist_arrays(split, root)
    rows = np.arange(len(images)) if indices is None else np.asarray(list(indices), dtype=np.int64)
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(CLASS_NAMES)),
        "key": datasets.Value("string"),
    })
    return datasets.Dataset.from_dict(
        {"image": [images[i] for i in rows], "label": labels[rows].tolist(), "key": fashion_mnist_keys(split, rows)},
        features=features,
    )
