"""Image-classification datasets that need no network: the embedded defaults of ``hf-dr demo`` and ``hf-dr study``.

=================  =========================================================================  ===============
name               what                                                                       train / test
=================  =========================================================================  ===============
``fashion-mnist``  Zalando's clothing images, from Debian's ``dataset-fashion-mnist`` files    60,000 / 10,000
``digits``         scikit-learn's handwritten digits (UCI, 8x8 scans of 43 writers), scaled   1,297 / 500
                   to 28x28 (bilinear); a fixed stratified split
``shapes``         ten outlined or filled geometric shapes drawn by :func:`draw_shapes` at a  12,000 / 2,000
                   random size, place, rotation, stroke and intensity over noise and a
                   distractor stroke (generated: the same pixels for the same seed)
=================  =========================================================================  ===============

Each is a ``datasets.Dataset`` with ``image`` (grayscale ``Image``), ``label`` (``ClassLabel``) and a stable ``key``.
:func:`hf_dr.data.sources.load_source` (every command's ``--dataset``) reads these names, so the general flow
(``hf-dr finetune-teacher --dataset digits`` ... ``hf-dr eval --dataset digits``) runs on them as on any dataset;
``save_to_disk`` writes them out for other tools.

Example:
    >>> train = load_bundled("shapes", "test")
    >>> len(train), train.features["label"].names[:3], train[0]["image"].size
    (2000, ['circle', 'square', 'triangle'], (28, 28))
"""

from __future__ import annotations

import functools
import math

import datasets
import numpy as np
from PIL import Image, ImageDraw

from hf_dr.errors import InvalidConfigError

BUNDLED = ("fashion-mnist", "digits", "shapes")
SHAPE_NAMES = ("circle", "square", "triangle", "diamond", "plus", "cross", "star", "pentagon", "bar", "arrow")
SHAPES_SIZES = {"train": 12_000, "test": 2_000}
_SHAPES_SEEDS = {"train": 0, "test": 1}
DIGITS_TEST_SIZE = 500
_SIDE, _SUPER = 28, 4  # drawn at 4x and downsampled: anti-aliased strokes


def bundled_name(name: str) -> str | None:
    """The bundled dataset ``name`` refers to (case, ``_`` and ``-`` ignored), or None.

    Example:
        >>> bundled_name("Fashion_MNIST"), bundled_name("org/digits")
        ('fashion-mnist', None)
    """
    normal = name.lower().replace("_", "-")
    return normal if normal in BUNDLED else None


def load_bundled(name: str, split: str = "train", data_root: str | None = None) -> datasets.Dataset:
    """The ``split`` (``"train"`` or ``"test"``) of the bundled dataset ``name`` (see the module docstring);
    ``data_root`` is Fashion-MNIST's folder of idx files."""
    bundled = bundled_name(name)
    if bundled is None:
        raise InvalidConfigError(f"{name!r} is not a bundled dataset; bundled ones are {list(BUNDLED)}")
    if split not in ("train", "test"):
        raise InvalidConfigError(f"the bundled datasets have splits 'train' and 'test', but got {split!r}")
    if bundled == "fashion-mnist":
        from hf_dr.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist

        return load_fashion_mnist(split, root=data_root or DEFAULT_ROOT)
    # a new Dataset object over the cached table: set_transform/attach act in place and must not reach later callers
    return (_digits if bundled == "digits" else _shapes)(split).with_format(None)


def _features(names: tuple[str, ...] | list[str]) -> datasets.Features:
    return datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names)),
                              "key": datasets.Value("string")})


@functools.lru_cache(maxsize=4)
def _digits(split: str) -> datasets.Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise InvalidConfigError("the bundled 'digits' dataset is scikit-learn's: pip install scikit-learn") from err
    digits = load_digits()
    order = _stratified_order(digits.target, DIGITS_TEST_SIZE, seed=0)
    rows = order[:DIGITS_TEST_SIZE] if split == "test" else order[DIGITS_TEST_SIZE:]
    rows = np.sort(rows)
    images = [Image.fromarray(np.round(digits.images[i] * (255 / 16)).astype(np.uint8), "L")
              .resize((_SIDE, _SIDE), Image.BILINEAR) for i in rows]
    return datasets.Dataset.from_dict(
        {"image": images, "label": digits.target[rows].tolist(), "key": [f"digits-{int(i):04d}" for i in rows]},
        features=_features([str(d) for d in range(10)]))


def _stratified_order(labels: np.ndarray, test_size: int, seed: int) -> np.ndarray:
    """A permutation of the rows whose first ``test_size`` hold each class in proportion (the test split)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = {c: int(round(test_size * len(per_class[c]) / len(labels))) for c in classes}
    quota[classes[-1]] += test_size - sum(quota.values())
    test = np.concatenate([per_class[c][: quota[c]] for c in classes])
    rest = np.concatenate([per_class[c][quota[c]:] for c in classes])
    return np.concatenate([rng.permutation(test), rng.permutation(rest)])


@functools.lru_cache(maxsize=4)
def _shapes(split: str) -> datasets.Dataset:
    count = SHAPES_SIZES[split]
    labels = np.arange(count) % len(SHAPE_NAMES)
    np.random.default_rng(_SHAPES_SEEDS[split] + 100).shuffle(labels)
    images = draw_shapes(labels, seed=_SHAPES_SEEDS[split])
    return datasets.Dataset.from_dict(
        {"image": images, "label": labels.tolist(), "key": [f"shapes-{split}-{i:05d}" for i in range(count)]},
        features=_features(SHAPE_NAMES))


def draw_shapes(labels: np.ndarray, seed: int) -> list[Image.Image]:
    """One 28x28 grayscale image of each shape class in ``labels`` (indices into :data:`SHAPE_NAMES`): the shape at a
    random scale (radius 5-11 px), centre offset (up to 4 px), rotation (up to 20 degrees), stroke width and
    intensity, outlined or filled, over Gaussian noise with one faint distractor stroke. Every draw comes from
    ``numpy.random.default_rng(seed)`` in order, so the images are the same on every machine.

    Example:
        >>> images = draw_shapes(np.array([0, 9]), seed=0)
        >>> [im.size for im in images], images[0].mode
        ([(28, 28), (28, 28)], 'L')
    """
    rng = np.random.default_rng(seed)
    return [_draw(int(label), rng) for label in labels]


def _draw(label: int, rng: np.random.Generator) -> Image.Image:
    side = _SIDE * _SUPER
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    ends = rng.uniform(0, side, 4)
    draw.line([tuple(ends[:2]), tuple(ends[2:])], fill=int(rng.integers(40, 110)), width=int(rng.integers(3, 7)))
    radius = rng.uniform(5, 11) * _SUPER
    centre = (side / 2 + rng.uniform(-4, 4) * _SUPER, side / 2 + rng.uniform(-4, 4) * _SUPER)
    angle = math.radians(rng.uniform(-20, 20))
    intensity = int(rng.integers(150, 256))
    width = int(rng.integers(1, 4) * _SUPER)
    filled = bool(rng.random() < 0.5)
    points = [(centre[0] + radius * x * math.cos(angle) - radius * y * math.sin(angle),
               centre[1] + radius * x * math.sin(angle) + radius * y * math.cos(angle)) for x, y in _outline(label)]
    if label == 0:
        box = [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius]
        draw.ellipse(box, fill=intensity if filled else None, outline=intensity, width=width)
    elif label in (4, 5):  # plus and cross: two strokes
        stroke = max(width, 2 * _SUPER)
        draw.line(points[:2], fill=intensity, width=stroke)
        draw.line(points[2:], fill=intensity, width=stroke)
    else:
        draw.polygon(points, fill=intensity if filled else None, outline=intensity, width=width)
    small = np.asarray(canvas.resize((_SIDE, _SIDE), Image.BOX), dtype=np.float32)
    noisy = small + rng.normal(0, rng.uniform(8, 30), small.shape)
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8), "L")


def _outline(label: int) -> list[tuple[float, float]]:
    """The unit outline of shape ``label`` (x right, y down; the plus and cross as two segments)."""
    def regular(n: int, start: float = -math.pi / 2, scale: float = 1.0) -> list[tuple[float, float]]:
        return [(scale * math.cos(start + 2 * math.pi * i / n), scale * math.sin(start + 2 * math.pi * i / n))
                for i in range(n)]

    if label == 0:
        return []
    if label == 1:
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if label == 2:
        return regular(3)
    if label == 3:
        return [(0, -1), (0.7, 0), (0, 1), (-0.7, 0)]
    if label == 4:
        return [(0, -1), (0, 1), (-1, 0), (1, 0)]
    if label == 5:
        return [(-0.75, -0.75), (0.75, 0.75), (-0.75, 0.75), (0.75, -0.75)]
    if label == 6:
        outer, inner = regular(5), regular(5, -math.pi / 2 + math.pi / 5, 0.42)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if label == 7:
        return regular(5)
    if label == 8:
        return [(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)]
    return [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)]  # arrow
