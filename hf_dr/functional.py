"""Stateless image kernels on ``uint8`` tensors of shape ``[C, H, W]``.

One backend serves generation and replay: Pillow images are converted once with :func:`to_tensor` and every
kernel below runs on the tensor through torchvision's public ``transforms.v2.functional`` ops. Geometric
arguments are *fractions* of the image they act on, so stored parameters do not depend on resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

ImageLike = Image.Image | torch.Tensor | np.ndarray


def to_tensor(image: ImageLike) -> torch.Tensor:
    """Converts a Pillow image, ``[H, W(, C)]`` array or ``[C, H, W]`` tensor to a ``uint8 [C, H, W]`` tensor.

    Grayscale stays one channel; palette, RGBA, CMYK and other modes become RGB. The input is never modified.

    Example:
        >>> from PIL import Image
        >>> to_tensor(Image.new("RGB", (4, 3))).shape
        torch.Size([3, 3, 4])
    """
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return F.pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        array = image if image.ndim == 3 else image[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3:
        raise TypeError(f"expected a PIL image, a numpy array or a uint8 [C, H, W] tensor, got {type(image)}")
    return image


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


def resized_crop(
    image: torch.Tensor,
    top: float,
    left: float,
    height: float,
    width: float,
    size: Sequence[int],
    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
    antialias: bool = True,
) -> torch.Tensor:
    """Crops the fractional box ``(top, left, height, width)`` of ``image`` and resizes it to ``size`` (h, w)."""
    img_h, img_w = image.shape[-2:]
    y, h = fraction_to_pixels(top, height, img_h)
    x, w = fraction_to_pixels(left, width, img_w)
    crop = image[..., y : y + h, x : x + w]
    if (h, w) == tuple(size):
        return crop.clone()
    return F.resize(crop, list(size), interpolation=interpolation, antialias=antialias)


def horizontal_flip(image: torch.Tensor) -> torch.Tensor:
    """Mirrors ``image`` left to right."""
    return F.horizontal_flip(image)


def erase(
    image: torch.Tensor, top: float, left: float, height: float, width: float, value: Sequence[int]
) -> torch.Tensor:
    """Returns a copy of ``image`` whose fractional box is filled with the per-channel ``value``."""
    img_h, img_w = image.shape[-2:]
    y, h = fraction_to_pixels(top, height, img_h)
    x, w = fraction_to_pixels(left, width, img_w)
    fill = torch.tensor(_per_channel(value, image.shape[0]), dtype=image.dtype).view(-1, 1, 1)
    out = image.clone()
    out[:, y : y + h, x : x + w] = fill
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
    img_h, img_w = image.shape[-2:]
    y, h = fraction_to_pixels(top, height, img_h)
    x, w = fraction_to_pixels(left, width, img_w)
    out = image.clone()
    out[:, y : y + h, x : x + w] = partner[:, y : y + h, x : x + w]
    return out


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Scales a ``uint8`` image to ``[0, 1]`` and normalizes it per channel (returns ``float32``)."""
    channels = image.shape[0]
    mean_t = torch.tensor(_per_channel(mean, channels), dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(_per_channel(std, channels), dtype=torch.float32).view(-1, 1, 1)
    return (image.float().div_(255.0) - mean_t).div_(std_t)


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
