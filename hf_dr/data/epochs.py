"""Advancing the per-epoch draws of a dataset's ``set_transform`` hook (the stored record a sample replays, or the
plain augmentation it draws), whatever wraps it. Light on purpose: no transformers, timm or accelerate import."""

from __future__ import annotations

import copy
import operator
from typing import Any

import datasets
import torch

from hf_dr.data.columns import check_columns
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.errors import InvalidConfigError

# the largest epoch: far beyond any training, and small enough for the seed arithmetic of what reads it (a shuffled
# datasets stream seeds each epoch with a random 63-bit draw minus the epoch, which must stay non-negative)
MAX_EPOCH = 2**31 - 1


def check_epoch(epoch: Any) -> int:
    """``epoch`` as an ``int`` after checking it: an integer (``int``, NumPy or 0-d torch integer) in
    ``[0, MAX_EPOCH]``; anything else raises :class:`InvalidConfigError` naming the value.

    Example:
        >>> check_epoch(3)
        3
        >>> check_epoch(2.5)
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: the epoch should be a whole number of epochs (an int), but got 2.5 (float)...
    """
    try:
        value = operator.index(epoch)
    except TypeError:
        value = None
    if value is None or isinstance(epoch, bool):
        raise InvalidConfigError(
            f"the epoch should be a whole number of epochs (an int), but got {epoch!r} ({type(epoch).__name__}); "
            "pass the index of the epoch about to start (a Trainer's fractional state.epoch is not one: use "
            "hf_dr.ReinforcedEpochCallback)")
    if not 0 <= value <= MAX_EPOCH:
        raise InvalidConfigError(f"the epoch should be in [0, 2**31 - 1] (the index of a training epoch), but got "
                                 f"{value}")
    return value


class EpochHook:
    """The part every hf_dr ``set_transform`` hook shares: the columns it reads, :meth:`attach`, and an epoch counter
    in shared memory that :meth:`set_epoch` updates in place, so it reaches persistent DataLoader workers and the
    copies ``datasets`` makes of a format (``with_transform``, ``map``). Subclasses define :attr:`column_options`.
    """

    attach_role = "dataset"  # how attach's error names the dataset

    def __init__(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def column_options(self) -> dict[str, str]:
        """The columns the hook reads, by the option naming them."""
        raise NotImplementedError

    @property
    def input_columns(self) -> list[str]:
        """The columns the hook reads: pass them to ``set_transform(columns=...)`` (see :meth:`attach`)."""
        return list(self.column_options.values())

    def attach(self, dataset: datasets.Dataset) -> datasets.Dataset:
        """Sets this hook on ``dataset`` (in place), formatting only the columns it reads; returns it."""
        check_attachable(dataset)
        check_columns(dataset, role=self.attach_role, **self.column_options)
        dataset.set_transform(self, columns=self.input_columns)
        return dataset

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Selects the draws of ``epoch`` (stored records or plain augmentations) in every worker."""
        self._epoch.fill_(check_epoch(epoch))

    def __deepcopy__(self, memo: dict) -> EpochHook:
        clone = copy.copy(self)  # copies keep sharing the epoch counter
        memo[id(self)] = clone
        return clone


def check_attachable(dataset: Any) -> None:
    """Refuses what a ``set_transform`` hook cannot be attached to (a hook is set on a map-style
    ``datasets.Dataset``), naming the fix for the usual slips."""
    if isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)):
        return  # streams are refused by the hook with their own fix
    if isinstance(dataset, datasets.DatasetDict):
        fix = f": pick a split, e.g. dataset[{next(iter(dataset), 'train')!r}]"
    elif isinstance(dataset, dict):
        fix = ": dataset[:n] is a dict of columns; take rows with dataset.select(range(n))"
    else:
        fix = ": load it with datasets.load_dataset or hf_dr.load_reinforced"
    raise InvalidConfigError(f"a transform is attached to a datasets.Dataset, not a {type(dataset).__name__}{fix}")


def transform_of(dataset: Any) -> Any:
    """The ``set_transform`` hook of a ``datasets.Dataset`` or the transform of a
    :class:`~hf_dr.data.preloaded.PreloadedDataset`, also inside a ``torch.utils.data.Subset`` (None when it has
    none)."""
    if isinstance(dataset, torch.utils.data.Subset):
        return transform_of(dataset.dataset)
    if isinstance(dataset, datasets.Dataset):
        return dataset.format.get("format_kwargs", {}).get("transform")
    if isinstance(dataset, PreloadedDataset):
        return dataset.transform
    return None


def set_epoch(dataset: Any, epoch: int) -> None:
    """Advances the per-epoch draws of the dataset's transform (reinforced record or plain augmentation).

    Call it at the start of every epoch; the epoch reaches persistent DataLoader workers through shared memory. An
    epoch that is not an integer in ``[0, 2**31 - 1]`` raises :class:`InvalidConfigError` (:func:`check_epoch`).

    Example:
        >>> from hf_dr import AugmentTransform
        >>> train = datasets.Dataset.from_dict({"image": [], "label": [], "key": []})
        >>> transform = AugmentTransform("rrc", size=28).attach(train).format["format_kwargs"]["transform"]
        >>> set_epoch(train, 3)
        >>> transform.epoch
        3
    """
    epoch = check_epoch(epoch)
    for target in (transform_of(dataset), dataset):
        if target is not None and hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
            return
