"""RandAugment with torchvision's 14 ops and magnitude bins, every draw taken up front.

Stored per record: ``ops`` (op ids into :data:`RANDAUGMENT_OPS`) and ``magnitudes`` (signed bin indices: the
sign is the op's direction, ``-9`` is bin 9 negated). An op skipped by its apply coin is stored as Identity.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from hf_dr.augment.fields import Field
from hf_dr.augment.ops.base import AugmentationOp, ImageSize, check_probability
from hf_dr.errors import InvalidConfigError

# name -> (largest magnitude as a function of (height, width) or None, signed)
RANDAUGMENT_OPS: dict[str, tuple[Any, bool]] = {
    "Identity": (None, False),
    "ShearX": (lambda h, w: 0.3, True),
    "ShearY": (lambda h, w: 0.3, True),
    "TranslateX": (lambda h, w: 150.0 / 331.0 * w, True),
    "TranslateY": (lambda h, w: 150.0 / 331.0 * h, True),
    "Rotate": (lambda h, w: 30.0, True),
    "Brightness": (lambda h, w: 0.9, True),
    "Color": (lambda h, w: 0.9, True),
    "Contrast": (lambda h, w: 0.9, True),
    "Sharpness": (lambda h, w: 0.9, True),
    "Posterize": (lambda h, w: 4.0, False),
    "Solarize": (lambda h, w: 1.0, False),
    "AutoContrast": (None, False),
    "Equalize": (None, False),
}
OP_NAMES: tuple[str, ...] = tuple(RANDAUGMENT_OPS)


class RandAugment(AugmentationOp):
    """RandAugment (Cubuk et al.) in torchvision's flavour, replayable.

    Args:
        num_ops (`int`, *optional*, defaults to 2): ops applied in sequence.
        magnitude (`int`, *optional*, defaults to 9): magnitude bin, out of ``num_magnitude_bins``.
        magnitude_std (`float`, *optional*, defaults to 0.0): if > 0, each op draws its bin from
            ``Normal(magnitude, magnitude_std)`` (timm's ``mstd``), clipped to the bins.
        num_magnitude_bins (`int`, *optional*, defaults to 31): number of magnitude bins.
        prob (`float`, *optional*, defaults to 1.0): probability that each drawn op is applied.
        interpolation (`str`, *optional*, defaults to ``"nearest"``): interpolation of the geometric ops.
        fill (`int`, *optional*, defaults to 0): fill value of pixels moved in by geometric ops.

    Example:
        >>> import numpy as np
        >>> RandAugment().sample((224, 224), np.random.default_rng(0))["ops"].__len__()
        2
    """

    name: ClassVar[str] = "randaugment"

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        magnitude_std: float = 0.0,
        num_magnitude_bins: int = 31,
        prob: float = 1.0,
        interpolation: str = "nearest",
        fill: int = 0,
    ) -> None:
        if not isinstance(num_ops, int) or num_ops < 1:
            raise InvalidConfigError(f"num_ops should be a positive integer, but got {num_ops} instead.")
        if not 2 <= num_magnitude_bins <= 128:
            raise InvalidConfigError(f"num_magnitude_bins should be in [2, 128], but got {num_magnitude_bins}.")
        if not 0 <= magnitude < num_magnitude_bins:
            raise InvalidConfigError(f"magnitude should be in [0, {num_magnitude_bins - 1}], but got {magnitude}.")
        self.num_ops = num_ops
        self.magnitude = int(magnitude)
        self.magnitude_std = float(magnitude_std)
        self.num_magnitude_bins = int(num_magnitude_bins)
        self.prob = check_probability("prob", prob)
        self.interpolation = InterpolationMode(interpolation).value
        self.fill = int(fill)

    @property
    def fields(self) -> dict[str, Field]:  # type: ignore[override]
        return {"ops": Field("uint8", length=self.num_ops), "magnitudes": Field("int8", length=self.num_ops)}

    def sample(self, image_size: ImageSize, generator: np.random.Generator) -> dict[str, Any]:
        ops, magnitudes = [], []
        for _ in range(self.num_ops):
            op = int(generator.integers(len(OP_NAMES)))
            level = self._draw_bin(generator)
            signed = RANDAUGMENT_OPS[OP_NAMES[op]][1]
            negative = bool(generator.random() < 0.5)  # drawn for every op, so draws stay aligned
            if generator.random() >= self.prob:
                op, level = 0, 0
            ops.append(op)
            magnitudes.append(-level if signed and negative else level)
        return {"ops": ops, "magnitudes": magnitudes}

    def apply(self, image: Image.Image, params: dict[str, Any]) -> Image.Image:
        for op, level in zip(params["ops"], params["magnitudes"], strict=False):
            image = self.apply_op(image, OP_NAMES[op], level)
        return image

    def identity(self) -> dict[str, Any]:
        return {"ops": [0] * self.num_ops, "magnitudes": [0] * self.num_ops}

    def magnitude_of(self, op_name: str, level: int, height: int, width: int) -> float:
        """The magnitude of signed bin ``level`` for ``op_name`` on an image of (height, width)."""
        largest = RANDAUGMENT_OPS[op_name][0]
        if largest is None:
            return 0.0
        value = largest(height, width) * abs(level) / (self.num_magnitude_bins - 1)
        return -value if level < 0 else value

    def apply_op(self, image: Image.Image, op_name: str, level: int) -> Image.Image:
        """Applies one op at signed bin ``level`` (a copy; ``image`` is not modified)."""
        h, w = F.get_size(image)
        m = self.magnitude_of(op_name, level, h, w)
        interp, fill = InterpolationMode(self.interpolation), [float(self.fill)]
        affine = {"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [0.0, 0.0],
                  "interpolation": interp, "fill": fill}
        if op_name == "ShearX":
            return F.affine(image, **{**affine, "shear": [math.degrees(math.atan(m)), 0.0]}, center=[0, 0])
        if op_name == "ShearY":
            return F.affine(image, **{**affine, "shear": [0.0, math.degrees(math.atan(m))]}, center=[0, 0])
        if op_name == "TranslateX":
            return F.affine(image, **{**affine, "translate": [int(m), 0]})
        if op_name == "TranslateY":
            return F.affine(image, **{**affine, "translate": [0, int(m)]})
        if op_name == "Rotate":
            return F.rotate(image, angle=m, interpolation=interp, fill=fill)
        return self._apply_color_op(image, op_name, m)

    def _apply_color_op(self, image: Image.Image, op_name: str, m: float) -> Image.Image:
        if op_name == "Brightness":
            return F.adjust_brightness(image, brightness_factor=1.0 + m)
        if op_name == "Color":
            return F.adjust_saturation(image, saturation_factor=1.0 + m) if image.mode == "RGB" else image.copy()
        if op_name == "Contrast":
            return F.adjust_contrast(image, contrast_factor=1.0 + m)
        if op_name == "Sharpness":
            return F.adjust_sharpness(image, sharpness_factor=1.0 + m)
        if op_name == "Posterize":
            return F.posterize(image, bits=int(round(8 - m)))
        if op_name == "Solarize":
            return F.solarize(image, threshold=255.0 * (1.0 - m))
        if op_name == "AutoContrast":
            return F.autocontrast(image)
        if op_name == "Equalize":
            return F.equalize(image)
        return image.copy()  # Identity

    def _draw_bin(self, generator: np.random.Generator) -> int:
        if self.magnitude_std <= 0:
            return self.magnitude
        level = int(round(generator.normal(self.magnitude, self.magnitude_std)))
        return min(self.num_magnitude_bins - 1, max(0, level))
