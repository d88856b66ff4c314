"""Lazy replay on streamed datasets: :class:`ReinforcedIterableDataset` and the per-example replay it maps.

``datasets.IterableDataset`` has no ``set_transform``; the replay is a lazy ``.map``. Its epoch is the dataset's own
``_epoch``, a shared-memory tensor that ``IterableDataset.set_epoch`` updates in place (so it reaches persistent
DataLoader workers): the dataset and the replay hold the *same* tensor. Methods that derive a new dataset
(``shuffle``, ``map``, ``filter``, ``take``, ``skip``, ``shard``...) build a fresh ``IterableDataset`` with a fresh
epoch; :class:`ReinforcedIterableDataset` makes them share the replay's epoch instead, so
``ds.shuffle(...).set_epoch(e)`` advances both the shuffle and the choice of record.
``datasets.distributed.split_dataset_by_node`` is a function that builds a plain ``IterableDataset``: importing this
module wraps the private function it calls for iterable datasets (:func:`_split_keeping_epoch`), so the split of a
reinforced stream is a :class:`ReinforcedIterableDataset` sharing the epoch too, and the ``set_epoch`` that the
Trainer, accelerate or a user calls on the split selects that epoch's records. ``set_epoch`` refuses an epoch that is
not an integer in ``[0, 2**31 - 1]`` (:func:`hf_dr.data.epochs.check_epoch`).

A streamed sample is ``{"key", "pixel_values", "labels"}`` and equals the map-style one for the same (seed, epoch).

A self-contained stream's rows hold all N records (400 for ImageNet+), and ``datasets`` would turn every one of them
into Python objects for each row. Its replay runs in two steps instead: :class:`ChosenRecords`, a batched map on the
stream's Arrow tables, keeps of each row only the record of the current epoch (taken with ``pyarrow.compute.take``,
nothing converted), then :class:`StreamReplay`, the per-example replay both layouts share, decodes the image and
replays that one record.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import datasets.distributed
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hf_dr.data.codec import CLASSES_COLUMN
from hf_dr.data.columns import check_columns
from hf_dr.data.epochs import check_epoch
from hf_dr.data.keys import content_key, image_digest, refuse_changed_image
from hf_dr.data.parquet_rows import ParquetRows, Part
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.errors import DataMismatchError, InvalidConfigError

_DERIVING_METHODS = (
    "map", "filter", "shuffle", "skip", "take", "repeat", "shard", "reshard", "batch", "with_format", "add_column",
    "rename_column", "rename_columns", "remove_columns", "select_columns", "cast_column", "cast", "decode", "_step",
    "_resolve_features",
)
CHOSEN_KEY = "hf_dr_key"  # the column ChosenRecords passes each self-contained row's key on in, as text
CHOSEN_RECORD = "hf_dr_record"  # ... and its record of the current epoch
CHOSEN_INDEX = "hf_dr_index"  # ... and that record's index among the row's N (it seeds seeded params)
CHOSEN_CLASSES = "hf_dr_classes"  # ... and its class set (class-set codecs: hf_dr.data.codec)
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
    def sharing_epoch(cls, dataset: datasets.IterableDataset, replay: ReinforcedTransform
                      ) -> ReinforcedIterableDataset:
        """``dataset`` (a fresh one, changed in place) made to read and set the epoch of ``replay``, the transform
        it replays with (a shared tensor in place of ``datasets``' own epoch; the transform also gives its classes
        and image mode, :func:`hf_dr.model_arguments`)."""
        dataset.__class__ = cls
        dataset._epoch, dataset._replay = replay._epoch, replay
        return dataset

    def set_epoch(self, epoch: int) -> None:
        """Selects the records (and the shuffle) of ``epoch`` in this stream and every stream sharing its epoch."""
        super().set_epoch(check_epoch(epoch))


def _keep_epoch(name: str) -> Any:
    method = getattr(datasets.IterableDataset, name)

    @functools.wraps(method)
    def derive(self: ReinforcedIterableDataset, *args: Any, **kwargs: Any) -> Any:
        if name == "shard":
            _check_shards(self, kwargs.get("num_shards", args[0] if args else None))
        result = method(self, *args, **kwargs)
        if isinstance(result, datasets.IterableDataset) and result is not self:
            result = ReinforcedIterableDataset.sharing_epoch(result, self._replay)
        return result

    return derive


def _check_shards(dataset: datasets.IterableDataset, num_shards: int | None) -> None:
    """Refuses ``shard(num_shards=...)`` beyond the stream's own shards (``datasets`` fails with an IndexError)."""
    if num_shards is not None and num_shards > dataset.num_shards:
        raise InvalidConfigError(
            f"this stream has {dataset.num_shards} shard(s), fewer than num_shards={num_shards} (a metadata-only "
            "stream has one per source data file its push recorded, else one): split it across ranks with "
            "datasets.distributed.split_dataset_by_node (each rank reads every row and keeps its share; the split "
            "shares the replay's epoch), or load it map-style (streaming=False).")


for _name in _DERIVING_METHODS:
    if hasattr(datasets.IterableDataset, _name):
        setattr(ReinforcedIterableDataset, _name, _keep_epoch(_name))


def _split_keeping_epoch(split: Any) -> Any:
    """Wraps ``split``, the function ``datasets.distributed.split_dataset_by_node`` calls for iterable datasets (it
    builds a plain ``IterableDataset`` with a fresh epoch), so that the split of a :class:`ReinforcedIterableDataset`
    shares the replay's epoch; other datasets pass through unchanged."""
    if getattr(split, "keeps_hf_dr_epoch", False):
        return split

    @functools.wraps(split)
    def split_keeping_epoch(dataset: datasets.IterableDataset, *args: Any, **kwargs: Any) -> Any:
        result = split(dataset, *args, **kwargs)
        if isinstance(dataset, ReinforcedIterableDataset) and not isinstance(result, ReinforcedIterableDataset):
            result = ReinforcedIterableDataset.sharing_epoch(result, dataset._replay)
        return result

    split_keeping_epoch.keeps_hf_dr_epoch = True
    return split_keeping_epoch


# split_dataset_by_node looks this name up in its module at every call, so the wrapper also reaches callers that
# imported split_dataset_by_node before hf_dr; were a datasets release to rename it, the public function is wrapped
# (reaching calls through the module), and tests/data/test_streaming.py says so
_SPLIT = next(name for name in ("_split_by_node_iterable_dataset", "split_dataset_by_node")
              if hasattr(datasets.distributed, name))
setattr(datasets.distributed, _SPLIT, _split_keeping_epoch(getattr(datasets.distributed, _SPLIT)))


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
        else:  # the one record ChosenRecords kept, with its index
            pixel_values, labels = self.transform.replay(image, key, classes=row.get(CHOSEN_CLASSES),
                                                         chosen=(row[CHOSEN_INDEX], row[self.record_column]))
        return {"key": key, "pixel_values": pixel_values, "labels": labels}


class ChosenRecords:
    """The first step of a self-contained stream: a batched map on Arrow tables that keeps, of each row's N records,
    only the one of the current epoch, without turning any record into Python objects.

    It returns the image cells (undecoded), the keys as text in :data:`CHOSEN_KEY` and the chosen records in
    :data:`CHOSEN_RECORD`, for :class:`StreamReplay`. The choice is :meth:`ReinforcedTransform.choose`, the one
    map-style rows get, with the epoch read from ``transform`` when a batch is mapped.

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
        starts, index = self._positions(records, keys)
        chosen = pc.take(records.values, starts + index)
        columns = {self.image_column: cells, CHOSEN_KEY: pa.array(keys, pa.string()), CHOSEN_RECORD: chosen,
                   CHOSEN_INDEX: pa.array(index, pa.int32())}
        if self.transform.codec.class_set:
            columns[CHOSEN_CLASSES] = table.column(CLASSES_COLUMN)
        return pa.table(columns)

    def _positions(self, records: pa.ListArray, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Where each row's records start in ``records.values``, and the index of each row's chosen record."""
        counts = pc.fill_null(pc.list_value_length(records), 0).to_numpy(zero_copy_only=False).tolist()
        index = [self.transform.choose(key, count) for count, key in zip(counts, keys, strict=True)]
        return records.offsets.to_numpy()[:-1], np.asarray(index, dtype=np.int64)


class ZippedRows:
    """The rows of a streamed metadata-only dataset: the source stream and the reinforcement rows, both in the run's
    row order, zipped row by row, each row keeping only its record of the current epoch (read from Arrow batches of
    the reinforcement files, nothing else converted). Used as the generator of an ``IterableDataset``.

    Called with ``parts`` (:class:`hf_dr.data.parquet_rows.Part`, one per source data file), it zips each part's
    source shard with its range of reinforcement rows read from ``record_files``: ``datasets`` splits the parts across
    DataLoader workers and ``split_dataset_by_node`` ranks. Without, it zips the two streams whole (one shard).

    The alignment is checked on every row: a source row whose key is not the reinforcement row's (a source that lost,
    gained or reordered rows), a stream that ends before the other, or an image whose stored digest differs raises
    :class:`DataMismatchError` naming the row, the keys and the fix.

    Args:
        source (`datasets.IterableDataset`): the source rows with their keys in ``key_column`` and undecoded images.
        records (`datasets.IterableDataset`): the reinforcement rows (key, records, and image digests if stored).
        transform (`ReinforcedTransform`): gives the seed and the (shared) epoch.
        image_column, key_column (`str`): the source's image column and the column holding its recomputed keys.
        records_key, records_column (`str`): the reinforcement rows' key and records columns.
        skipped_rows (`Sequence[int]`): source rows the run gave no records (undecodable images), left out.
        digest_column (`str`, *optional*): the reinforcement rows' image digest column, compared with each image.
        fix (`str`): how to fix a mismatch, for the error messages.
        record_files (`ParquetRows`, *optional*): the reinforcement files, read by the parts' row ranges.
    """

    def __init__(self, source: datasets.IterableDataset, records: datasets.IterableDataset,
                 transform: ReinforcedTransform, image_column: str, key_column: str, records_key: str,
                 records_column: str, skipped_rows: Sequence[int] = (), digest_column: str | None = None,
                 fix: str = "", record_files: ParquetRows | None = None) -> None:
        self.source, self.records, self.transform = source, records, transform
        self.image_column, self.key_column = image_column, key_column
        self.records_key, self.records_column, self.digest_column = records_key, records_column, digest_column
        self.skipped, self.fix, self.record_files = frozenset(int(r) for r in skipped_rows), fix, record_files

    def __call__(self, parts: Sequence[Part] | None = None) -> Iterator[dict[str, Any]]:
        if parts is None:
            batches = self.records.with_format("arrow").iter(batch_size=CHOOSE_BATCH_SIZE)
            yield from self._zip(_rows(self.source), batches, 0, "")
            return
        columns = [self.records_key, self.records_column, *([self.digest_column] if self.digest_column else []),
                   *([CLASSES_COLUMN] if self.transform.codec.class_set else [])]
        for part in parts:
            shard = self.source.shard(num_shards=self.source.num_shards, index=part.shard, contiguous=True)
            batches = self.record_files.batches(part.start, part.stop, columns, CHOOSE_BATCH_SIZE)
            where = (f" (the source file {part.path}, rows {part.source_start} to "
                     f"{part.source_start + part.source_rows - 1}, holds reinforced rows {part.start} to "
                     f"{part.stop - 1})")
            yield from self._zip(_rows(shard), batches, part.source_start, where)

    def _zip(self, examples: Iterator[dict[str, Any]], batches: Iterator[pa.Table], first: int,
             where: str) -> Iterator[dict[str, Any]]:
        """``examples`` (source rows from row ``first`` on) zipped with the reinforcement rows of ``batches``."""
        table, position, row = None, 0, first - 1
        for row, example in enumerate(examples, first):
            if row in self.skipped:
                continue
            if table is None or position == table.num_rows:
                table, position = next(batches, None), 0
                if table is None:
                    raise DataMismatchError(f"row {row} of the source (key {example[self.key_column]!r}) comes after "
                                            f"the last reinforced row{where}: the source has rows the run did not "
                                            f"reinforce. {self.fix}")
            yield self._row(row, example, table, position)
            position += 1
        if (table is not None and position < table.num_rows) or next(batches, None) is not None:
            raise DataMismatchError(f"the source ended after {row + 1} rows{where}, before the last reinforced row: "
                                    f"it lost rows. {self.fix}")

    def _row(self, row: int, example: dict[str, Any], table: pa.Table, position: int) -> dict[str, Any]:
        key, cell = str(example[self.key_column]), example[self.image_column]
        stored = table.column(self.records_key)[position].as_py()
        if key != stored:
            raise DataMismatchError(f"row {row} of the source has the key {key!r} where the reinforcements hold "
                                    f"{stored!r}: a stream joins the two in order, and the source is not in the order "
                                    f"the run read. {self.fix}")
        if self.digest_column is not None:
            refuse_changed_image(key, row, "the source", image_digest(cell),
                                 table.column(self.digest_column)[position].as_py(), self.fix)
        records = table.column(self.records_column)[position].values
        index = self.transform.choose(key, 0 if records is None else len(records))
        row = {self.image_column: cell, CHOSEN_KEY: key, CHOSEN_RECORD: records[index].as_py(), CHOSEN_INDEX: index}
        if self.transform.codec.class_set:
            row[CHOSEN_CLASSES] = table.column(CLASSES_COLUMN)[position].as_py()
        return row


def _rows(stream: datasets.IterableDataset) -> Iterator[dict[str, Any]]:
    """Every row of ``stream``, in order, also inside a DataLoader worker: iterating a stream there gives only the
    worker's share of its files, where a zip with the other side (read whole) needs them all."""
    for batch in stream.iter(batch_size=CHOOSE_BATCH_SIZE):
        for values in zip(*batch.values(), strict=True):
            yield dict(zip(batch, values, strict=True))


def zip_records(source: datasets.IterableDataset, records: datasets.IterableDataset,
                transform: ReinforcedTransform, image_column: str, key_column: str, records_key: str,
                records_column: str, skipped_rows: Sequence[int] = (), digest_column: str | None = None,
                fix: str = "", parts: tuple[Sequence[Part], ParquetRows] | None = None) -> ReinforcedIterableDataset:
    """The replayed stream of a metadata-only dataset: :class:`ZippedRows` of ``source`` and ``records`` (see its
    arguments), then :class:`StreamReplay` of each row's chosen record.

    With ``parts`` (the parts and the reader of the reinforcement files, :func:`hf_dr.hub.shards.stream_parts`) the
    stream has one shard per part: DataLoader workers and ``split_dataset_by_node`` ranks split them. Without, it is
    one shard (the two streams' files do not line up): a DataLoader reads it with one worker, and
    ``split_dataset_by_node`` makes each rank read every row and keep its share."""
    feature = source.features[image_column]
    rows = ZippedRows(source.cast_column(image_column, datasets.Image(decode=False)), records, transform,
                      image_column, key_column, records_key, records_column, skipped_rows, digest_column, fix,
                      None if parts is None else parts[1])
    features = _chosen_features(image_column, datasets.Image(mode=feature.mode, decode=False), transform,
                                records.features, records_column)
    gen_kwargs = None if parts is None else {"parts": list(parts[0])}
    zipped = datasets.IterableDataset.from_generator(rows, features=features, gen_kwargs=gen_kwargs)
    replay = StreamReplay(transform, datasets.Image(mode=feature.mode), image_column, CHOSEN_KEY, CHOSEN_RECORD)
    mapped = zipped.map(replay, remove_columns=list(features))
    return ReinforcedIterableDataset.sharing_epoch(mapped, transform)


def stream_replay(stream: datasets.IterableDataset, transform: ReinforcedTransform, image_column: str,
                  key_column: str | None, records_column: str | None = None) -> ReinforcedIterableDataset:
    """``stream`` mapped lazily through :class:`StreamReplay`, sharing ``transform``'s epoch with the dataset.

    With ``records_column`` (the self-contained layout) :class:`ChosenRecords` first keeps each row's record of the
    epoch, on Arrow batches of :data:`CHOOSE_BATCH_SIZE` rows; without one the records are looked up by key in
    ``transform`` (a metadata-only table loaded map-style; :func:`zip_records` streams both).
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
        chosen = _chosen_features(image_column, undecoded, transform, stream.features, records_column)
        choose = ChosenRecords(transform, image_column, key_column, records_column)
        rows = rows.with_format("arrow").map(choose, batched=True, batch_size=CHOOSE_BATCH_SIZE, features=chosen)
        rows = rows.with_format(None)
    mapped = rows.map(replay, remove_columns=list(rows.column_names))
    return ReinforcedIterableDataset.sharing_epoch(mapped, transform)


def _chosen_features(image_column: str, image: datasets.Image, transform: ReinforcedTransform,
                     features: datasets.Features, records_column: str) -> datasets.Features:
    """The features of rows holding one chosen record: the image cell, the key, the record, its index, and the class
    set of the class-set codecs (the columns :class:`StreamReplay` reads)."""
    chosen = {image_column: image, CHOSEN_KEY: datasets.Value("string"),
              CHOSEN_RECORD: features[records_column].feature, CHOSEN_INDEX: datasets.Value("int32")}
    if transform.codec.class_set:
        check_columns(features, CLASSES_COLUMN, role="stream")
        chosen[CHOSEN_CLASSES] = features[CLASSES_COLUMN]
    return datasets.Features(chosen)


def empty_reinforcements(features: datasets.Features, key_column: str, records_column: str) -> datasets.Dataset:
    """A 0-row table with the stream's key, records (and class set) features: lets a :class:`ReinforcedTransform`
    carry the replay options of a stream whose rows hold their own records."""
    names = [key_column, *([CLASSES_COLUMN] if CLASSES_COLUMN in features else []), records_column]
    subset = datasets.Features({name: features[name] for name in names})
    return datasets.Dataset.from_dict({name: [] for name in names}, features=subset)
