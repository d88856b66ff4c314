"""Stateless image kernels. One backend serves generation and replay: Pillow.

Pillow is both the fastest CPU backend for these ops (tensor affine/rotate/sharpness run 5-20x slower) and
deterministic; NOTES lists how tensor and Pillow outputs differ, which is why generation and replay must share
this one code path. Geometric arguments are *fractions* of the image they act on, so stored parameters do not
depend on resolution. Mixing works on ``uint8 [C, H, W]`` tensors, after the per-image ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

ImageLike = Image.Image | torch.Tensor | np.ndarray


def to_pil(image: ImageLike) -> Image.Image:
    """Converts a Pillow image, ``[H, W(, C)]`` uint8 array or ``uint8 [C, H, W]`` tensor to an "L" or "RGB" image.

    Grayscale stays one channel; palette, RGBA, CMYK and other modes become RGB. The input is never modified.

    Example:
        >>> to_pil(np.zeros((3, 4, 3), dtype=np.uint8)).size
        (4, 3)
    """
    if isinstance(image, Image.Image):
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        return to_pil(Image.fromarray(image if image.ndim == 2 or image.shape[2] != 1 else image[:, :, 0]))
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3:
        return to_pil(F.to_pil_image(image))
    raise TypeError(f"expected a PIL image, a uint8 numpy array or a uint8 [C, H, W] tensor, got {type(image)}")


def to_tensor(image: ImageLike) -> torch.Tensor:
    """Converts any supported image to a ``uint8 [C, H, W]`` tensor (1 or 3 channels).

    Example:
        >>> to_tensor(Image.new("RGB", (4, 3))).shape
        torch.Size([3, 3, 4])
    """
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3:
        return image
    return F.pil_to_tensor(to_pil(image))


def fraction_to_pixels(start: float, length: float, size: int) -> tuple[int, int]:
    """Maps a fractional interval ``[start, start + length)`` of a side of ``size`` pixels to pixel units.

    The result always holds at least one pixel and stays inside the side.

    Example:
        >>> fraction_to_pixels(0.25, 0.5, 100)
        (25, 50)
    """
    extent = min(size, max(1, int(round(length * size))))
    offset = min(size - extent, max(0, int(round(start * size))))
    return offset, extent


def pixel_box(image: Image.Image, top: float, left: float, height: float, width: float) -> tuple[int, int, int, int]:
    """The fractional box of ``image`` in pixels: ``(y, x, h, w)``."""
    y, h = fraction_to_pixels(top, height, image.height)
    x, w = fraction_to_pixels(left, width, image.width)
    return y, x, h, w


def resized_crop(
    image: Image.Image,
    top: float,
    left: float,
    height: float,
    width: float,
    size: Sequence[int],
    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
) -> Image.Image:
    """Crops the fractional box ``(top, left, height, width)`` and resizes it to ``size`` (height, width)."""
    y, x, h, w = pixel_box(image, top, left, height, width)
    return F.resized_crop(image, y, x, h, w, list(size), interpolation=interpolation)


def horizontal_flip(image: Image.Image) -> Image.Image:
    """Mirrors ``image`` left to right."""
    return F.horizontal_flip(image)


def erase(
    image: Image.Image, top: float, left: float, height: float, width: float, value: Sequence[int]
) -> Image.Image:
    """Returns a copy of ``image`` whose fractional box is filled with the per-channel ``value``."""
    y, x, h, w = pixel_box(image, top, left, height, width)
    fill = _per_channel(value, len(image.getbands()))
    out = image.copy()
    out.paste(tuple(int(v) for v in fill) if len(fill) > 1 else int(fill[0]), (x, y, x + w, y + h))
    return out


def mixup(image: torch.Tensor, partner: torch.Tensor, lam: float) -> torch.Tensor:
    """Blends ``lam * image + (1 - lam) * partner`` (same shape), rounded back to ``uint8``."""
    _check_same_shape(image, partner)
    mixed = image.float() * lam + partner.float() * (1.0 - lam)
    return mixed.round_().clamp_(0, 255).to(torch.uint8)


def cutmix(
    image: torch.Tensor, partner: torch.Tensor, top: float, left: float, height: float, width: float
) -> torch.Tensor:
    """Pastes the fractional box of ``partner`` onto a copy of ``image`` (same shape)."""
    _check_same_shape(image, partner)
    y, h = fraction_to_pixels(top, height, image.shape[-2])
    x, w = fraction_to_pixels(left, width, image.shape[-1])
    out = image.clone()
    out[:, y : y + h, x : x + w] = partner[:, y : y + h, x : x + w]
    return out


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Scales a ``uint8`` image to ``[0, 1]`` and normalizes it per channel (returns ``float32``)."""
    return Normalizer(mean, std)(image)


class Normalizer:
    """:func:`normalize` with its per-channel constants computed once (for the per-sample hot path)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self._constants: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        channels = image.shape[0]
        if channels not in self._constants:
            mean = torch.tensor(_per_channel(self.mean, channels), dtype=torch.float32).view(-1, 1, 1)
            std = torch.tensor(_per_channel(self.std, channels), dtype=torch.float32).view(-1, 1, 1)
            self._constants[channels] = (mean * 255.0, 1.0 / (std * 255.0))
        offset, scale = self._constants[channels]
        return image.float().sub_(offset).mul_(scale)


def _per_channel(value: Sequence[float] | float, channels: int) -> list[float]:
    values = [value] if isinstance(value, (int, float)) else list(value)
    if len(values) == channels:
        return values
    if channels == 1:  # a grayscale image with RGB statistics: use their average
        return [sum(values) / len(values)]
    if len(values) == 1:
        return values * channels
    raise ValueError(f"expected 1 or {channels} per-channel values, got {len(values)}")


def _check_same_shape(image: torch.Tensor, partner: torch.Tensor) -> None:
    if image.shape != partner.shape:
        raise ValueError(f"mixing needs images of one shape, got {tuple(image.shape)} and {tuple(partner.shape)}")
