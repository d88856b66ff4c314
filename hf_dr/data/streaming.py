"""Lazy replay on streamed datasets: :class:`ReinforcedIterableDataset` and the per-example replay it maps.

``datasets.IterableDataset`` has no ``set_transform``; the replay is a lazy ``.map``. Its epoch is the dataset's own
``_epoch``, a shared-memory tensor that ``IterableDataset.set_epoch`` updates in place (so it reaches persistent
DataLoader workers): the dataset and the replay hold the *same* tensor. Methods that derive a new dataset
(``shuffle``, ``map``, ``filter``, ``take``...) build a fresh ``IterableDataset`` with a fresh epoch;
:class:`ReinforcedIterableDataset` makes them share the replay's epoch instead, so ``ds.shuffle(...).set_epoch(e)``
advances both the shuffle and the choice of record. ``datasets.distributed.split_dataset_by_node`` is a function, not
a method, and returns a plain ``IterableDataset`` whose ``set_epoch`` would not reach the replay: split across ranks
with ``ds.shard(num_shards=world_size, index=rank)`` instead.

A streamed sample is ``{"key", "pixel_values", "labels"}`` and equals the map-style one for the same (seed, epoch).
"""

from __future__ import annotations

import functools
from typing import Any

import datasets
import torch

from hf_dr.data.keys import content_key
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.sources import check_columns
from hf_dr.errors import InvalidConfigError

_DERIVING_METHODS = (
    "map", "filter", "shuffle", "skip", "take", "repeat", "shard", "reshard", "batch", "with_format", "add_column",
    "rename_column", "rename_columns", "remove_columns", "select_columns", "cast_column", "cast", "decode", "_step",
    "_resolve_features",
)


class ReinforcedIterableDataset(datasets.IterableDataset):
    """A streamed reinforced dataset: ``set_epoch(epoch)`` picks each sample's record of that epoch.

    Made by :func:`hf_dr.load_reinforced` with ``streaming=True``; datasets derived from it keep sharing its epoch.

    Example:
        >>> stream = load_reinforced("me/cifar100-plus", streaming=True, size=32)  # doctest: +SKIP
        >>> stream = stream.shuffle(seed=0, buffer_size=1000)  # doctest: +SKIP
        >>> for epoch in range(3):  # doctest: +SKIP
        ...     stream.set_epoch(epoch)  # new shuffle and new stored augmentations
        ...     for batch in torch.utils.data.DataLoader(stream, batch_size=128):
        ...         ...
    """

    @classmethod
    def sharing_epoch(cls, dataset: datasets.IterableDataset, epoch: torch.Tensor) -> ReinforcedIterableDataset:
        """``dataset`` (a fresh one, changed in place) made to read and set the shared ``epoch`` tensor."""
        dataset.__class__ = cls
        dataset._epoch = epoch
        return dataset


def _keep_epoch(name: str) -> Any:
    method = getattr(datasets.IterableDataset, name)

    @functools.wraps(method)
    def derive(self: ReinforcedIterableDataset, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        if isinstance(result, datasets.IterableDataset) and result is not self:
            result = ReinforcedIterableDataset.sharing_epoch(result, self._epoch)
        return result

    return derive


for _name in _DERIVING_METHODS:
    if hasattr(datasets.IterableDataset, _name):
        setattr(ReinforcedIterableDataset, _name, _keep_epoch(_name))


class StreamReplay:
    """The per-example function of a streamed reinforced dataset.

    Args:
        transform (`ReinforcedTransform`): the replay options (policy, size, normalization, seed, class count) and,
            for the metadata-only layout, the reinforcements looked up by key.
        image_feature (`datasets.Image`): decodes the image cells, which are streamed undecoded.
        image_column (`str`): the image column of the stream.
        key_column (`str`, *optional*): the key column; without one the key is the hash of the image bytes.
        records_column (`str`, *optional*): a column holding each row's own records (the self-contained layout);
            without one the records are looked up in ``transform``.
    """

    def __init__(self, transform: ReinforcedTransform, image_feature: datasets.Image, image_column: str,
                 key_column: str | None, records_column: str | None = None) -> None:
        if transform.policy.needs_partner:
            raise InvalidConfigError(
                f"policy {transform.policy.name!r} mixes each image with a partner image looked up by key, which a "
                "stream cannot fetch; load the dataset map-style (streaming=False)."
            )
        self.transform, self.image_feature = transform, image_feature
        self.image_column, self.key_column, self.records_column = image_column, key_column, records_column

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        cell = row[self.image_column]
        key = str(row[self.key_column]) if self.key_column else content_key(cell)
        image = self.image_feature.decode_example(cell)
        records = None if self.records_column is None else row[self.records_column]
        pixel_values, labels = self.transform.replay(image, key, records=records)
        return {"key": key, "pixel_values": pixel_values, "labels": labels}


def stream_replay(stream: datasets.IterableDataset, transform: ReinforcedTransform, image_column: str,
                  key_column: str | None, records_column: str | None = None) -> ReinforcedIterableDataset:
    """``stream`` mapped lazily through :class:`StreamReplay`, sharing ``transform``'s epoch with the dataset."""
    if stream.features is None:  # e.g. after a user's .map(): infer them from the first rows to know the columns
        stream = stream._resolve_features()
    check_columns(stream, role="stream", image_column=image_column, key_column=key_column,
                  reinforcements_column=records_column)
    feature = stream.features[image_column]
    if not isinstance(feature, datasets.Image):
        raise InvalidConfigError(f"column {image_column!r} of the stream holds {feature!r}, not images")
    replay = StreamReplay(transform, datasets.Image(mode=feature.mode), image_column, key_column, records_column)
    undecoded = stream.cast_column(image_column, datasets.Image(decode=False))
    mapped = undecoded.map(replay, remove_columns=list(stream.column_names))
    return ReinforcedIterableDataset.sharing_epoch(mapped, transform._epoch)


def empty_reinforcements(features: datasets.Features, key_column: str, records_column: str) -> datasets.Dataset:
    """A 0-row table with the stream's key and records features: lets a :class:`ReinforcedTransform` carry the
    replay options of a stream whose rows hold their own records."""
    subset = datasets.Features({key_column: features[key_column], records_column: features[records_column]})
    return datasets.Dataset.from_dict({key_column: [], records_column: []}, features=subset)
