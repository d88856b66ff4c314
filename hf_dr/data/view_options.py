"""The one check of the view options every ``set_transform`` hook of hf_dr takes (:class:`hf_dr.ReinforcedTransform`,
:class:`hf_dr.AugmentTransform`, :class:`hf_dr.EvalTransform`): output size, normalisation, timm data config, seed.
A value that would train silently wrong (a size ``"28"`` read as 2x8, a zero std giving NaN pixels, a seed 0.5 drawn
as 0) is refused with :class:`~hf_dr.errors.InvalidConfigError` naming the argument, the value and the fix."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import datasets
from PIL import Image

from hf_dr.errors import DataMismatchError, InvalidConfigError

__all__ = ["ViewOptions", "check_channels", "check_seed", "mode_channels", "refuse_channels", "refuse_stream",
           "view_options"]

ViewOptions = tuple[tuple[int, int], tuple[float, ...], tuple[float, ...], int | None]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: Any) -> int:
    """``seed`` as an ``int``; anything else (``0.5``, ``"1"``, ``True``) is refused, not truncated.

    Example:
        >>> check_seed(3)
        3
        >>> check_seed(0.5)
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: seed should be an integer, but got 0.5 (float): pass an int such as 0.
    """
    if not _is_int(seed):
        raise InvalidConfigError(f"seed should be an integer, but got {seed!r} ({type(seed).__name__}): pass an int "
                                 "such as 0.")
    return int(seed)


def _size(size: Any, option: str) -> tuple[int, int]:
    sizes = (size, size) if _is_int(size) else size
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) != 2 \
            or not all(_is_int(s) and s > 0 for s in sizes):
        raise InvalidConfigError(f"{option} should be a positive int or (height, width) of positive ints, but got "
                                 f"{size!r}: e.g. {option}=224 or {option}=(224, 224).")
    return int(sizes[0]), int(sizes[1])


def _stats(values: Any, option: str, positive: bool) -> tuple[float, ...]:
    ok = not isinstance(values, (str, bytes)) and isinstance(values, Sequence) and len(values) > 0 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        for v in values)
    if not ok:
        what = "positive finite numbers (a 0 std divides by zero: NaN pixels)" if positive else "finite numbers"
        raise InvalidConfigError(f"{option} should be a non-empty sequence of {what}, one per channel or one for "
                                 f"all, but got {values!r}: e.g. {option}=(0.5, 0.5, 0.5).")
    return tuple(float(v) for v in values)


def view_options(size: Any, mean: Any, std: Any, data_config: dict[str, Any] | None = None) -> ViewOptions:
    """The checked ``size`` as ``(height, width)``, ``mean`` and ``std`` as float tuples, and the channel count of a
    timm ``data_config`` (``input_size`` ``(C, H, W)``, ``mean``, ``std``; it overrides the other three) or None.

    Example:
        >>> view_options(28, (0.5,), (0.5,))
        ((28, 28), (0.5,), (0.5,), None)
        >>> view_options(224, (0.5,), (0.5,), {"input_size": (1, 32, 32), "mean": (0.2,), "std": (0.3,)})[::3]
        ((32, 32), 1)
        >>> view_options("28", (0.5,), (0.5,))
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: size should be a positive int or (height, width) of positive ints, but got...
    """
    channels = None
    if data_config is not None:
        input_size = data_config.get("input_size") if isinstance(data_config, dict) else None
        if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence) or len(input_size) != 3 \
                or not all(_is_int(v) and v > 0 for v in input_size):
            raise InvalidConfigError(f"data_config should be a timm data config with input_size (C, H, W) of positive "
                                     f"ints, mean and std, but got {data_config!r}: pass "
                                     "timm.data.resolve_model_data_config(model).")
        channels, size = int(input_size[0]), tuple(input_size[1:])
        mean, std = data_config.get("mean", mean), data_config.get("std", std)
        option = "data_config['{}']"
    else:
        option = "{}"
    return (_size(size, option.format("input_size") if data_config is not None else "size"),
            _stats(mean, option.format("mean"), positive=False), _stats(std, option.format("std"), positive=True),
            channels)


def mode_channels(mode: str) -> int:
    """The channel count of a Pillow mode (``"L"``: 1, ``"RGB"``: 3)."""
    return len(Image.new(mode, (1, 1)).getbands())


def check_channels(channels: int | None, mode: str | None, where: str) -> None:
    """Refuses a data config whose channel count contradicts the image mode the views have (``where`` names it)."""
    if channels is not None and mode is not None and mode_channels(mode) != channels:
        raise InvalidConfigError(
            f"data_config's input_size has {channels} channel(s), but {where} {mode!r} images "
            f"({mode_channels(mode)} channel(s)): the views would not fit the model. Make the model for "
            f"{mode_channels(mode)} channel(s) (timm.create_model(..., in_chans={mode_channels(mode)})) and pass its "
            "data config.")


def refuse_channels(channels: int | None, found: int, key: str) -> None:
    """Refuses a view of ``found`` channels when a data config asked for ``channels``, naming the key."""
    if channels is not None and found != channels:
        raise DataMismatchError(
            f"the view of sample key {key!r} has {found} channel(s), but data_config's input_size asks for "
            f"{channels}: the run's images are not in the mode the model reads. Make the model for {found} "
            f"channel(s) (timm.create_model(..., in_chans={found})) and pass its data config.")


def refuse_stream(dataset: Any, what: str, images: Any = None) -> None:
    """Refuses a streamed ``datasets.IterableDataset`` where a hook needs a map-style Dataset (``what`` names it), and
    a streamed ``images`` dataset beside it."""
    if images is not None:
        refuse_stream(images, "images")
    if isinstance(dataset, datasets.IterableDataset):
        raise InvalidConfigError(
            f"{what} is a streamed datasets.IterableDataset: ReinforcedTransform is the set_transform hook of a "
            "map-style Dataset. Stream a reinforced dataset with hf_dr.load_reinforced(..., streaming=True), or load "
            "it map-style (datasets.load_dataset without streaming=True).")
