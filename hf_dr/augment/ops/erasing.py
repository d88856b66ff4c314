"""Random erasing: fill a random box of the (already resized) image with a constant colour."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image

import hf_dr.augment.functional as K
from hf_dr.augment.fields import BOOL, FRACTION, Field, snap_fraction
from hf_dr.augment.ops.base import AugmentationOp, ImageSize, check_probability, check_range

IMAGENET_MEAN_UINT8 = tuple(round(255 * m) for m in K.IMAGENET_MEAN)  # (124, 116, 104)


class RandomErasing(AugmentationOp):
    """Random erasing (Zhong et al.) with torchvision's box sampling, in fractions of the output image.

    The fill defaults to the ImageNet mean colour, i.e. zero after normalisation, as torchvision's ``value=0``
    on a normalised tensor.

    Args:
        prob (`float`, *optional*, defaults to 0.25): probability of erasing.
        scale (`tuple[float, float]`, *optional*, defaults to ``(0.02, 0.33)``): box area over image area.
        ratio (`tuple[float, float]`, *optional*, defaults to ``(0.3, 3.3)``): box aspect ratio.
        value (`tuple[int, ...]`, *optional*): per-channel ``uint8`` fill.
    """

    name: ClassVar[str] = "erasing"
    fields: ClassVar[dict[str, Field]] = {
        "erase": BOOL, "top": FRACTION, "left": FRACTION, "height": FRACTION, "width": FRACTION,
    }

    def __init__(
        self,
        prob: float = 0.25,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: tuple[int, ...] = IMAGENET_MEAN_UINT8,
    ) -> None:
        self.prob = check_probability("prob", prob)
        self.scale = check_range("scale", scale)
        self.ratio = check_range("ratio", ratio, low=1e-6)
        self.value = tuple(int(v) for v in value)

    def sample(self, image_size: ImageSize, generator: np.random.Generator) -> dict[str, Any]:
        if generator.random() >= self.prob:
            return self.identity()
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):  # torchvision's rule: up to 10 tries for a box that fits
            area = generator.uniform(*self.scale)
            aspect = math.exp(generator.uniform(*log_ratio))
            h, w = math.sqrt(area / aspect), math.sqrt(area * aspect)
            top, left = generator.uniform(0, 1), generator.uniform(0, 1)
            if h < 1 and w < 1:
                box = [snap_fraction(v) for v in (top * (1 - h), left * (1 - w), h, w)]
                return dict(zip(("erase", "top", "left", "height", "width"), [True, *box], strict=True))
        return self.identity()

    def apply(self, image: Image.Image, params: dict[str, Any]) -> Image.Image:
        if not params["erase"]:
            return image
        return K.erase(image, params["top"], params["left"], params["height"], params["width"], self.value)

    def identity(self) -> dict[str, Any]:
        return {"erase": False, "top": 0.0, "left": 0.0, "height": 0.0, "width": 0.0}
