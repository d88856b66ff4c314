"""Stateless image kernels. One backend serves generation and replay: Pillow.

Pillow is both the fastest CPU backend for these ops (tensor affine/rotate/sharpness run 5-20x slower) and
deterministic; NOTES lists how tensor and Pillow outputs differ, which is why generation and replay must share
this one code path. Geometric arguments are *fractions* of the image they act on, so stored parameters do not
depend on resolution. Mixing works on ``uint8 [C, H, W]`` tensors, after the per-image ops.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from hf_dr.errors import CorruptImageError, InvalidConfigError

ImageLike = Image.Image | torch.Tensor | np.ndarray

# ImageNet's per-channel statistics in [0, 1] (timm.data.IMAGENET_DEFAULT_MEAN/STD): the default normalisation
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_pil(image: ImageLike, mode: str | None = None) -> Image.Image:
    """Converts a Pillow image, ``[H, W(, C)]`` uint8 array or ``uint8 [C, H, W]`` tensor to an "L" or "RGB" image.

    With ``mode`` ("RGB" or "L", a run's image mode) every image is converted to it by :func:`convert_mode`. Without
    it grayscale stays one channel (16-bit and other wide one-band images are rescaled to "L", never clipped) and
    every other mode becomes RGB. The input is never modified.

    Example:
        >>> to_pil(np.zeros((3, 4, 3), dtype=np.uint8)).size
        (4, 3)
        >>> to_pil(Image.new("L", (4, 3)), mode="RGB").mode
        'RGB'
    """
    if isinstance(image, Image.Image):
        return convert_mode(image, mode or natural_mode(image))
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        return to_pil(Image.fromarray(image if image.ndim == 2 or image.shape[2] != 1 else image[:, :, 0]), mode)
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3:
        return to_pil(F.to_pil_image(image), mode)
    raise TypeError(f"expected a PIL image, a uint8 numpy array or a uint8 [C, H, W] tensor, got {type(image)}")


def to_tensor(image: ImageLike, mode: str | None = None) -> torch.Tensor:
    """Converts any supported image to a ``uint8 [C, H, W]`` tensor (1 or 3 channels), by :func:`to_pil`'s rules.

    A ``uint8 [C, H, W]`` tensor is returned as is (if it has ``mode``'s channel count); arrays and images are copied.

    Example:
        >>> to_tensor(Image.new("RGB", (4, 3))).shape
        torch.Size([3, 3, 4])
        >>> to_tensor(Image.new("RGB", (4, 3)), mode="L").shape
        torch.Size([1, 3, 4])
    """
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3 and (
        mode is None or image.shape[0] == MODE_CHANNELS.get(mode)
    ):
        return image
    if mode is None and isinstance(image, np.ndarray) and image.dtype == np.uint8 and (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))
    ):  # what Pillow would give, without the round trip; a copy, so the array is never shared
        return torch.from_numpy((image[:, :, None] if image.ndim == 2 else image).transpose(2, 0, 1).copy())
    return F.pil_to_tensor(to_pil(image, mode))


# -- image modes ----------------------------------------------------------------------------------------------------
MODE_CHANNELS = {"RGB": 3, "L": 1}  # the image modes a run can have, and their channel counts
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
WIDE_MODES = (*SIXTEEN_BIT_MODES, "I", "F")  # one band of more than 8 bits: Pillow's convert() clips them to 255


def check_image_mode(mode: str | None, option: str = "image_mode") -> str | None:
    """``mode`` if it is an image mode of :data:`MODE_CHANNELS` (or None), else :class:`InvalidConfigError`."""
    if mode is not None and mode not in MODE_CHANNELS:
        raise InvalidConfigError(f"{option} should be one of {list(MODE_CHANNELS)}, but got {mode!r} instead.")
    return mode


def natural_mode(image: Image.Image) -> str:
    """The mode :func:`to_pil` gives ``image`` without a run mode: "L" for one 8-bit or wider band, else "RGB"."""
    return "L" if image.mode == "L" or image.mode in WIDE_MODES else "RGB"


def convert_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode`` ("RGB" or "L"): the one image-mode conversion of generation and replay.

    The rules, in order:

    - 16-bit grayscale (``I;16`` and its byte orders) becomes "L" by ``round(value / 257)``: the full 16-bit range onto
      0-255 (Pillow's own ``convert`` clips every value above 255, turning most 16-bit photos white).
    - 32-bit "I" and "F" images are rescaled by the range their values really take: values within [0, 1] ("F" only)
      are multiplied by 255, values within [0, 255] are kept, "I" values within [0, 65535] (16-bit data) are divided
      by 257, anything else is stretched from its minimum to its maximum onto 0-255; everything is rounded, nothing is
      clipped, and non-finite values become 0.
    - Transparency is dropped, not composited: RGBA, LA, PA and palette ("P") images with a transparent colour keep
      the stored colour of every pixel, as ``PIL.Image.convert`` (and so torchvision's and timm's loaders) give them.
    - "1", "LA" become "L"; CMYK, YCbCr, HSV, LAB, palette and the other modes become "RGB" by Pillow's conversion.
    - Finally "L" becomes "RGB" by repeating the gray, and "RGB" becomes "L" by Pillow's luma (ITU-R 601-2).

    Raises :class:`CorruptImageError` for a mode Pillow cannot convert (e.g. premultiplied "La").

    Example:
        >>> sixteen = Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16))  # mode I;16
        >>> np.asarray(convert_mode(sixteen, "L")).tolist()
        [[0, 1, 128, 255]]
        >>> convert_mode(Image.new("CMYK", (2, 2)), "RGB").mode
        'RGB'
    """
    check_image_mode(mode, "mode")
    if image.mode == mode:
        return image
    base = _eight_bit(image)
    return base if base.mode == mode else base.convert(mode)


def _eight_bit(image: Image.Image) -> Image.Image:
    """``image`` as "L" (one band) or "RGB", by :func:`convert_mode`'s rules."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.uint32)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
    if image.mode in ("I", "F"):
        return Image.fromarray(_rescaled(np.asarray(image, dtype=np.float64), image.mode))
    try:
        return image.convert("L" if image.mode in ("1", "LA") else "RGB")
    except ValueError as err:
        raise CorruptImageError(f"cannot convert a {image.mode!r} image to RGB or L ({err}); convert such images "
                                "to RGB before reinforcing them") from err


def _rescaled(values: np.ndarray, mode: str) -> np.ndarray:
    finite = np.isfinite(values)
    low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    if mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    elif mode == "I" and low >= 0 and high <= 65535:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.rint(np.where(finite, scaled, 0.0)).clip(0, 255).astype(np.uint8)


def image_size_of(image: ImageLike) -> tuple[int, int]:
    """Height and width of a Pillow image, a ``[..., H, W]`` tensor or an ``[H, W, ...]`` array."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, torch.Tensor):
        return int(image.shape[-2]), int(image.shape[-1])
    return int(image.shape[0]), int(image.shape[1])


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
    fill = per_channel(value, len(image.getbands()))
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


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              out: torch.Tensor | None = None) -> torch.Tensor:
    """Scales ``uint8`` pixels to ``[0, 1]`` and normalises them per channel; returns ``float32``.

    The one normalisation of hf_dr: generation (the teacher's batches), replay and the plain and evaluation
    transforms all call it, so a replayed view equals the teacher's input bit for bit. The per-channel constants of
    each ``(mean, std)`` are computed once (see :class:`Normalizer`).

    Args:
        image (`torch.Tensor`): ``uint8 [C, H, W]`` or a batch ``uint8 [B, C, H, W]`` (channels at dim -3), on any
            device.
        mean (`Sequence[float]`): per-channel means in ``[0, 1]``: one value, one per channel, or RGB statistics
            on a grayscale image (their average is used).
        std (`Sequence[float]`): per-channel standard deviations, same rule.
        out (`torch.Tensor`, *optional*): a ``float32`` tensor of ``image``'s shape to write into (e.g. a batch
            buffer in shared memory, :class:`hf_dr.ReinforcedCollate`); the same values as without it.

    Example:
        >>> image = torch.full((1, 2, 2), 255, dtype=torch.uint8)  # grayscale with RGB statistics: their average
        >>> round(normalize(image, IMAGENET_MEAN, IMAGENET_STD)[0, 0, 0].item(), 4)  # (1 - 0.449) / 0.226
        2.4381
        >>> normalize(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), (0.5,), (0.5,)).shape
        torch.Size([8, 3, 4, 4])
    """
    return _normalizer(tuple(mean), tuple(std))(image, out)


class Normalizer:
    """:func:`normalize` for one ``(mean, std)``, its per-channel constants computed once per channel count and device.

    Computes ``(x - 255 * mean) * (1 / (255 * std))`` in ``float32``: the constants are made on the CPU and then
    moved, so every device gets the same values.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self._constants: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, image: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim not in (3, 4):
            got = f"{image.dtype} {tuple(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
            raise InvalidConfigError(f"normalize expects a uint8 [C, H, W] or [B, C, H, W] tensor, got {got}")
        cache_key = (image.shape[-3], image.device)
        if cache_key not in self._constants:
            with torch.inference_mode(False):  # cached constants made under inference mode must serve outside it
                channels = image.shape[-3]
                mean = torch.tensor(per_channel(self.mean, channels), dtype=torch.float32).view(-1, 1, 1)
                std = torch.tensor(per_channel(self.std, channels), dtype=torch.float32).view(-1, 1, 1)
                self._constants[cache_key] = ((mean * 255.0).to(image.device), (1.0 / (std * 255.0)).to(image.device))
        offset, scale = self._constants[cache_key]
        if out is None:
            return image.float().sub_(offset).mul_(scale)
        if out.dtype != torch.float32 or out.shape != image.shape:
            raise InvalidConfigError(f"normalize's out should be float32 {tuple(image.shape)}, got {out.dtype} "
                                     f"{tuple(out.shape)}")
        return out.copy_(image).sub_(offset).mul_(scale)  # uint8 -> float32 is exact: the same values as .float()


@functools.lru_cache(maxsize=64)
def _normalizer(mean: tuple[float, ...], std: tuple[float, ...]) -> Normalizer:
    return Normalizer(mean, std)


def per_channel(value: Sequence[float] | float, channels: int) -> list[float]:
    """Per-channel values (normalisation statistics, erasing fills) for an image of ``channels`` channels: a
    grayscale image with RGB statistics uses their average, one value serves every channel.

    Example:
        >>> per_channel((0.2, 0.4, 0.6), 1), per_channel(0.5, 3)
        ([0.4000000000000001], [0.5, 0.5, 0.5])
    """
    values = [value] if isinstance(value, (int, float)) else list(value)
    if len(values) == channels:
        return values
    if channels == 1:  # a grayscale image with RGB statistics: use their average
        return [sum(values) / len(values)]
    if len(values) == 1:
        return values * channels
    raise InvalidConfigError(f"expected 1 or {channels} per-channel values, got {len(values)}: {values}")


def _check_same_shape(image: torch.Tensor, partner: torch.Tensor) -> None:
    if image.shape != partner.shape:
        raise ValueError(f"mixing needs images of one shape, got {tuple(image.shape)} and {tuple(partner.shape)}")
