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

A self-contained stream's rows hold all N records (400 for ImageNet+), and ``datasets`` would turn every one of them
into Python objects for each row. Its replay runs in two steps instead: :class:`ChosenRecords`, a batched map on the
stream's Arrow tables, keeps of each row only the record of the current epoch (taken with ``pyarrow.compute.take``,
nothing converted), then :class:`StreamReplay`, the per-example replay both layouts share, decodes the image and
replays that one record.
"""

from __future__ import annotations

import functools
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from hf_dr.augment.seeding import choose_index
from hf_dr.data.keys import content_key
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.sources import check_columns
from hf_dr.errors import InvalidConfigError

_DERIVING_METHODS = (
    "map", "filter", "shuffle", "skip", "take", "repeat", "shard", "reshard", "batch", "with_format", "add_column",
    "rename_column", "rename_columns", "remove_columns", "select_columns", "cast_column", "cast", "decode", "_step",
    "_resolve_features",
)
CHOSEN_KEY = "hf_dr_key"  # the column ChosenRecords passes each self-contained row's key on in, as text
CHOSEN_RECORD = "hf_dr_record"  # ... and its record of the current epoch
CHOOSE_BATCH_SIZE = 64  # rows per Arrow batch ChosenRecords maps: N records each stay in Arrow until chosen


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
    """The per-example function of a streamed reinforced dataset (both layouts).

    Args:
        transform (`ReinforcedTransform`): the replay options (policy, size, normalization, seed, class count) and,
            for the metadata-only layout, the reinforcements looked up by key.
        image_feature (`datasets.Image`): decodes the image cells, which are streamed undecoded.
        image_column (`str`): the image column of the stream.
        key_column (`str`, *optional*): the key column; without one the key is the hash of the image bytes.
        record_column (`str`, *optional*): a column holding each row's record of the current epoch, chosen by
            :class:`ChosenRecords` (the self-contained layout); without one the record is looked up in ``transform``.
    """

    def __init__(self, transform: ReinforcedTransform, image_feature: datasets.Image, image_column: str,
                 key_column: str | None, record_column: str | None = None) -> None:
        if transform.policy.needs_partner:
            raise InvalidConfigError(
                f"policy {transform.policy.name!r} mixes each image with a partner image looked up by key, which a "
                "stream cannot fetch; load the dataset map-style (streaming=False)."
            )
        self.transform, self.image_feature = transform, image_feature
        self.image_column, self.key_column, self.record_column = image_column, key_column, record_column

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        cell = row[self.image_column]
        key = str(row[self.key_column]) if self.key_column else content_key(cell)
        image = self.image_feature.decode_example(cell)
        if self.record_column is None:
            pixel_values, labels = self.transform.replay(image, key)
        else:  # the one record ChosenRecords kept: record 0 of a one-record list
            pixel_values, labels = self.transform.replay(image, key, index=0, records=(row[self.record_column],))
        return {"key": key, "pixel_values": pixel_values, "labels": labels}


class ChosenRecords:
    """The first step of a self-contained stream: a batched map on Arrow tables that keeps, of each row's N records,
    only the one of the current epoch, without turning any record into Python objects.

    It returns the image cells (undecoded), the keys as text in :data:`CHOSEN_KEY` and the chosen records in
    :data:`CHOSEN_RECORD`, for :class:`StreamReplay`. The choice is :meth:`ReinforcedTransform.record`'s:
    ``choose_index(N, seed, epoch, key)``, with the epoch read from ``transform`` when a batch is mapped.

    Args:
        transform (`ReinforcedTransform`): gives the seed and the (shared) epoch.
        image_column (`str`): the image column, passed on.
        key_column (`str`, *optional*): the key column; without one the key is the hash of the image bytes.
        records_column (`str`): the column holding each row's N records.

    Example:
        >>> choose = ChosenRecords(transform, "image", "key", "reinforcements")  # doctest: +SKIP
        >>> choose(table).column_names  # doctest: +SKIP
        ['image', 'hf_dr_key', 'hf_dr_record']
    """

    def __init__(self, transform: ReinforcedTransform, image_column: str, key_column: str | None,
                 records_column: str) -> None:
        self.transform = transform
        self.image_column, self.key_column, self.records_column = image_column, key_column, records_column

    def __call__(self, table: pa.Table) -> pa.Table:
        cells = table.column(self.image_column)
        if self.key_column:
            keys = [str(key) for key in table.column(self.key_column).to_pylist()]
        else:
            keys = [content_key(cell) for cell in cells.to_pylist()]
        column = table.column(self.records_column)
        records = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        chosen = pc.take(records.values, self._positions(records, keys))
        return pa.table({self.image_column: cells, CHOSEN_KEY: pa.array(keys, pa.string()), CHOSEN_RECORD: chosen})

    def _positions(self, records: pa.ListArray, keys: list[str]) -> np.ndarray:
        """Where each row's chosen record lies in ``records.values``."""
        counts = pc.fill_null(pc.list_value_length(records), 0).to_numpy(zero_copy_only=False)
        seed, epoch = self.transform.seed, self.transform.epoch
        index = np.empty(len(keys), dtype=np.int64)
        for row, (count, key) in enumerate(zip(counts.tolist(), keys, strict=True)):
            if count == 0:
                self.transform.record(key, records=())  # raises the map-style error for a row without records
            index[row] = choose_index(count, seed, epoch, key)
        return records.offsets.to_numpy()[:-1] + index


def stream_replay(stream: datasets.IterableDataset, transform: ReinforcedTransform, image_column: str,
                  key_column: str | None, records_column: str | None = None) -> ReinforcedIterableDataset:
    """``stream`` mapped lazily through :class:`StreamReplay`, sharing ``transform``'s epoch with the dataset.

    With ``records_column`` (the self-contained layout) :class:`ChosenRecords` first keeps each row's record of the
    epoch, on Arrow batches of :data:`CHOOSE_BATCH_SIZE` rows; without one the records are looked up by key in
    ``transform``.
    """
    if stream.features is None:  # e.g. after a user's .map(): infer them from the first rows to know the columns
        stream = stream._resolve_features()
    check_columns(stream, role="stream", image_column=image_column, key_column=key_column,
                  reinforcements_column=records_column)
    feature = stream.features[image_column]
    if not isinstance(feature, datasets.Image):
        raise InvalidConfigError(f"column {image_column!r} of the stream holds {feature!r}, not images")
    image, undecoded = datasets.Image(mode=feature.mode), datasets.Image(decode=False)
    rows = stream.cast_column(image_column, undecoded)
    if records_column is None:
        replay = StreamReplay(transform, image, image_column, key_column)
    else:
        replay = StreamReplay(transform, image, image_column, CHOSEN_KEY, CHOSEN_RECORD)
        chosen = datasets.Features({image_column: undecoded, CHOSEN_KEY: datasets.Value("string"),
                                    CHOSEN_RECORD: stream.features[records_column].feature})
        choose = ChosenRecords(transform, image_column, key_column, records_column)
        rows = rows.with_format("arrow").map(choose, batched=True, batch_size=CHOOSE_BATCH_SIZE, features=chosen)
        rows = rows.with_format(None)
    mapped = rows.map(replay, remove_columns=list(rows.column_names))
    return ReinforcedIterableDataset.sharing_epoch(mapped, transform._epoch)


def empty_reinforcements(features: datasets.Features, key_column: str, records_column: str) -> datasets.Dataset:
    """A 0-row table with the stream's key and records features: lets a :class:`ReinforcedTransform` carry the
    replay options of a stream whose rows hold their own records."""
    subset = datasets.Features({key_column: features[key_column], records_column: features[records_column]})
    return datasets.Dataset.from_dict({key_column: [], records_column: []}, features=subset)
