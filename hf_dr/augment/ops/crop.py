"""Crop-and-flip ops: the paper's RRC (random-resized-crop + flip) and CropFlip (fixed resize, random crop, flip).

Both store the crop box as fractions of the source image, so a student can resize the crop to any resolution.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode

import hf_dr.augment.functional as K
from hf_dr.augment.fields import BOOL, FRACTION, Field, snap_fraction
from hf_dr.augment.ops.base import AugmentationOp, ImageSize, check_probability, check_range


class _CropFlipBase(AugmentationOp):
    name: ClassVar[str] = "crop"
    fields: ClassVar[dict[str, Field]] = {
        "top": FRACTION, "left": FRACTION, "height": FRACTION, "width": FRACTION, "flip": BOOL,
    }

    def __init__(self, flip_prob: float = 0.5, interpolation: str = "bilinear") -> None:
        self.flip_prob = check_probability("flip_prob", flip_prob)
        self.interpolation = InterpolationMode(interpolation).value

    def apply(self, image: Image.Image, params: dict[str, Any], size: tuple[int, int] | None = None) -> Image.Image:
        """Crops, resizes to ``size`` (height, width; defaults to the crop's own pixel size) and flips."""
        box = (params["top"], params["left"], params["height"], params["width"])
        if size is None:
            size = K.pixel_box(image, *box)[2:]
        out = K.resized_crop(image, *box, size, InterpolationMode(self.interpolation))
        return K.horizontal_flip(out) if params["flip"] else out

    def identity(self) -> dict[str, Any]:
        return {"top": 0.0, "left": 0.0, "height": 1.0, "width": 1.0, "flip": False}

    def _with_flip(self, box: tuple[float, float, float, float], generator: np.random.Generator) -> dict[str, Any]:
        top, left, height, width = (snap_fraction(v) for v in box)
        return {"top": top, "left": left, "height": height, "width": width,
                "flip": bool(generator.random() < self.flip_prob)}


class RandomResizedCropFlip(_CropFlipBase):
    """Random-resized-crop then horizontal flip, with torchvision's sampling rule (10 tries, central fallback).

    Args:
        scale (`tuple[float, float]`, *optional*, defaults to ``(0.08, 1.0)``): crop area as a fraction of the image.
        ratio (`tuple[float, float]`, *optional*, defaults to ``(3/4, 4/3)``): crop aspect ratio (width / height).
        flip_prob (`float`, *optional*, defaults to 0.5): probability of the horizontal flip.
        interpolation (`str`, *optional*, defaults to ``"bilinear"``): resize interpolation.

    Example:
        >>> import numpy as np
        >>> params = RandomResizedCropFlip().sample((427, 640), np.random.default_rng(0))
        >>> sorted(params)
        ['flip', 'height', 'left', 'top', 'width']
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__(flip_prob, interpolation)
        self.scale = check_range("scale", scale)
        self.ratio = check_range("ratio", ratio, low=1e-6)

    def sample(self, image_size: ImageSize, generator: np.random.Generator) -> dict[str, Any]:
        height, width = image_size
        i, j, h, w = self._pixel_box(height, width, generator)
        return self._with_flip((i / height, j / width, h / height, w / width), generator)

    def _pixel_box(self, height: int, width: int, generator: np.random.Generator) -> tuple[int, int, int, int]:
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * generator.uniform(*self.scale)
            aspect = math.exp(generator.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(generator.integers(0, height - h + 1)), int(generator.integers(0, width - w + 1)), h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w


class RandomCropFlip(_CropFlipBase):
    """The paper's CropFlip: resize the image to a fixed size, take a random crop of ``crop_fraction`` of
    each side, then flip horizontally.

    Args:
        crop_fraction (`float`, *optional*, defaults to 0.875): crop side over resized side (224 / 256).
        flip_prob (`float`, *optional*, defaults to 0.5): probability of the horizontal flip.
    """

    def __init__(self, crop_fraction: float = 0.875, flip_prob: float = 0.5, interpolation: str = "bilinear") -> None:
        super().__init__(flip_prob, interpolation)
        self.crop_fraction = check_probability("crop_fraction", crop_fraction)

    def sample(self, image_size: ImageSize, generator: np.random.Generator) -> dict[str, Any]:
        c = self.crop_fraction
        top, left = generator.uniform(0.0, 1.0 - c), generator.uniform(0.0, 1.0 - c)
        return self._with_flip((top, left, c, c), generator)
