"""Advancing the per-epoch draws of a dataset's ``set_transform`` hook (the stored record a sample replays, or the
plain augmentation it draws), whatever wraps it. Light on purpose: no transformers, timm or accelerate import."""

from __future__ import annotations

from typing import Any

import datasets

from hf_dr.data.preloaded import PreloadedDataset


def transform_of(dataset: Any) -> Any:
    """The ``set_transform`` hook of a ``datasets.Dataset`` or the transform of a
    :class:`~hf_dr.data.preloaded.PreloadedDataset` (None when it has none)."""
    if isinstance(dataset, datasets.Dataset):
        return dataset.format.get("format_kwargs", {}).get("transform")
    if isinstance(dataset, PreloadedDataset):
        return dataset.transform
    return None


def set_epoch(dataset: Any, epoch: int) -> None:
    """Advances the per-epoch draws of the dataset's transform (reinforced record or plain augmentation).

    Call it at the start of every epoch; the epoch reaches persistent DataLoader workers through shared memory.

    Example:
        >>> from hf_dr import AugmentTransform
        >>> train = datasets.Dataset.from_dict({"image": [], "label": [], "key": []})
        >>> transform = AugmentTransform("rrc", size=28).attach(train).format["format_kwargs"]["transform"]
        >>> set_epoch(train, 3)
        >>> transform.epoch
        3
    """
    for target in (transform_of(dataset), dataset):
        if target is not None and hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
            return
