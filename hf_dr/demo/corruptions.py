"""Corrupted test sets made by the project (the ImageNet-C idea at small scale): noise, blur, contrast, rotation and
affine distortions at five severities, for measuring how robust and how well calibrated a student stays off its
training distribution.

Every random draw is in :func:`sample_corruption` (from a generator seeded by the row's key, the corruption and the
severity); :func:`apply_corruption` is pure. :func:`corrupt_dataset` writes the corrupted images as a new dataset, so
any evaluation (``hf-dr eval``, :func:`hf_dr.evaluate`) reads them as it reads the clean ones.

Example:
    >>> import torch
    >>> image = torch.full((1, 28, 28), 128, dtype=torch.uint8)
    >>> params = sample_corruption("gaussian_noise", 3, image.shape[-2:], np.random.default_rng(0))
    >>> apply_corruption(image, params).shape
    torch.Size([1, 28, 28])
"""

from __future__ import annotations

import hashlib
from typing import Any

import datasets
import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from hf_dr.augment.functional import to_pil, to_tensor
from hf_dr.errors import InvalidConfigError

SEVERITIES = (1, 2, 3, 4, 5)
# per corruption, its strength at severities 1..5
_LEVELS = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),  # std of the added noise, pixels in [0, 1]
    "gaussian_blur": (0.5, 0.8, 1.1, 1.5, 2.0),  # sigma in pixels of a 28-pixel side (scaled with the side)
    "contrast": (0.75, 0.6, 0.45, 0.3, 0.2),  # factor towards the mean
    "rotation": (10.0, 20.0, 30.0, 45.0, 60.0),  # the largest angle in degrees (either sign)
    "affine": (0.06, 0.1, 0.14, 0.18, 0.24),  # the largest shift (fraction of the side) and shear (x 50 degrees)
}
CORRUPTIONS = tuple(_LEVELS)


def _check(name: str, severity: int) -> None:
    if name not in _LEVELS:
        raise InvalidConfigError(f"unknown corruption {name!r}; valid ones are {list(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise InvalidConfigError(f"severity should be one of {list(SEVERITIES)}, but got {severity!r}")


def sample_corruption(name: str, severity: int, image_size: tuple[int, int], generator: np.random.Generator
                      ) -> dict[str, Any]:
    """The random parameters of corruption ``name`` at ``severity`` for an image of ``image_size`` (height, width)."""
    _check(name, severity)
    level = _LEVELS[name][severity - 1]
    height, width = int(image_size[0]), int(image_size[1])
    params: dict[str, Any] = {"name": name, "level": level}
    if name == "gaussian_noise":
        params["noise_seed"] = int(generator.integers(2**31))
    elif name == "gaussian_blur":
        params["sigma"] = level * max(height, width) / 28
    elif name == "rotation":
        params["angle"] = float(generator.uniform(0.5, 1.0) * level * generator.choice([-1, 1]))
    elif name == "affine":
        params["translate"] = [int(round(generator.uniform(-level, level) * width)),
                               int(round(generator.uniform(-level, level) * height))]
        params["shear"] = float(generator.uniform(-level, level) * 50)
    return params


def apply_corruption(image: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """The ``uint8 [C, H, W]`` image corrupted as ``params`` (:func:`sample_corruption`) say; pure."""
    name, level = params["name"], params["level"]
    pixels = image.float() / 255
    if name == "gaussian_noise":
        noise = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(params["noise_seed"]))
        pixels = pixels + level * noise
    elif name == "gaussian_blur":
        sigma = float(params["sigma"])
        kernel = 2 * int(np.ceil(3 * sigma)) + 1
        pixels = TF.gaussian_blur(pixels, [kernel, kernel], [sigma, sigma])
    elif name == "contrast":
        mean = pixels.mean(dim=(-2, -1), keepdim=True)
        pixels = mean + level * (pixels - mean)
    elif name == "rotation":
        pixels = TF.rotate(pixels, params["angle"], interpolation=TF.InterpolationMode.BILINEAR)
    else:
        pixels = TF.affine(pixels, angle=0.0, translate=params["translate"], scale=1.0, shear=[params["shear"], 0.0],
                           interpolation=TF.InterpolationMode.BILINEAR)
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8)


def corruption_generator(key: str, name: str, severity: int, seed: int = 0) -> np.random.Generator:
    """The generator of row ``key``'s draws: the same corrupted set on every machine and in every row order."""
    digest = hashlib.sha256(f"{seed}/{name}/{severity}/{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def corrupt_dataset(dataset: datasets.Dataset, name: str, severity: int, *, image_column: str = "image",
                    key_column: str = "key", seed: int = 0, image_mode: str | None = None) -> datasets.Dataset:
    """``dataset`` with every image of ``image_column`` corrupted (PNG-encoded, other columns unchanged).

    Example:
        >>> from PIL import Image
        >>> ds = datasets.Dataset.from_dict({"image": [Image.new("L", (28, 28), 100)], "key": ["a"]},
        ...                                 features=datasets.Features({"image": datasets.Image(),
        ...                                                             "key": datasets.Value("string")}))
        >>> corrupt_dataset(ds, "contrast", 5)[0]["image"].getpixel((3, 3))
        100
    """
    _check(name, severity)

    def corrupt(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        images = []
        for image, key in zip(batch[image_column], batch[key_column], strict=True):
            pixels = to_tensor(image, image_mode)
            params = sample_corruption(name, severity, pixels.shape[-2:], corruption_generator(key, name, severity,
                                                                                                seed))
            images.append(to_pil(apply_corruption(pixels, params)))
        return {image_column: images}

    features = dataset.features.copy()
    features[image_column] = datasets.Image()
    return dataset.map(corrupt, batched=True, batch_size=256, features=features, load_from_cache_file=False,
                       desc=f"{name} {severity}")
