"""Row ranges of a metadata-only stream: the parts it shards into, and the reinforcement rows of each part read
straight from the pushed Parquet files.

A metadata-only stream zips the source's rows with the reinforcement rows in the run's order. Its source is a set of
data files whose row counts the push recorded (``hf_dr.json``: ``source["data_files"]``), so the run's rows split
into one :class:`Part` per source file: the source stream's shard of that file, zipped with the matching range of
reinforcement rows. :func:`plan_parts` makes the parts (rows the run skipped left out, a run over the first rows of
the split cut short); :class:`ParquetRows` reads one range of reinforcement rows by opening only the row groups that
hold it (no prefix is read and dropped). Each part is a shard of the stream: DataLoader workers and
``split_dataset_by_node`` ranks split the parts, and every row keeps its key check.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import table_cast

MIN_PARTS = 8  # a pushed split streams in at least this many parts (any of 1, 2, 4, 8 workers or ranks split them)


@dataclass(frozen=True)
class Part:
    """One shard of a metadata-only stream: a source data file and the reinforcement rows of its rows.

    Args:
        shard (`int`): the source stream's shard (its data file, in the order ``datasets`` streams them).
        path (`str`): that file's path in the source repo, for error messages.
        source_start (`int`): the index in the source split of the file's first row.
        source_rows (`int`): the file's rows as recorded (the shard must end there).
        start, stop (`int`): the range of reinforcement rows (the run's rows in order, skipped rows left out).
    """

    shard: int
    path: str
    source_start: int
    source_rows: int
    start: int
    stop: int


def plan_parts(files: Sequence[dict[str, Any]], skipped_rows: Sequence[int], num_records: int) -> list[Part] | None:
    """One :class:`Part` per source data file holding reinforced rows; None when the files hold other than the run's
    rows (more: a run over the first rows of the split, which the keys alone cannot tell from a source that gained
    rows; fewer: not the run's source): the stream then stays one shard and its row check raises where they differ.

    Args:
        files (`Sequence[dict]`): the source's data files in stream order, ``{"path", "num_rows"}`` each.
        skipped_rows (`Sequence[int]`): source rows the run gave no records.
        num_records (`int`): the reinforcement rows.

    Example:
        >>> files = [{"path": f"data/{i}.parquet", "num_rows": 10} for i in range(3)]
        >>> [(p.shard, p.source_start, p.start, p.stop) for p in plan_parts(files, [12, 13], 28)]
        [(0, 0, 0, 10), (1, 10, 10, 18), (2, 20, 18, 28)]
        >>> plan_parts(files, [12, 13], 25) is None  # the run read only the first rows
        True
    """
    skipped = sorted(set(int(r) for r in skipped_rows))
    total = sum(int(entry["num_rows"]) for entry in files)
    if total - len(skipped) != num_records or (skipped and not 0 <= skipped[0] <= skipped[-1] < total):
        return None
    parts, row, start = [], 0, 0
    for shard, entry in enumerate(files):
        count = int(entry["num_rows"])
        records = count - (bisect.bisect_left(skipped, row + count) - bisect.bisect_left(skipped, row))
        if records > 0:
            parts.append(Part(shard, str(entry["path"]), row, count, start, start + records))
        row, start = row + count, start + records
    return parts or None


@dataclass(frozen=True)
class ParquetRows:
    """Ranges of rows of a list of Parquet files read as one table (a pushed split's data files), by row group.

    Args:
        urls (`Sequence[str]`): the files, as fsspec URLs (``hf://datasets/{repo}@{commit}/{path}`` for the Hub).
        group_rows (`Sequence[Sequence[int]]`): the rows of each file's row groups.
        storage_options (`dict`, *optional*): passed to fsspec (e.g. ``{"token": ...}`` for the Hub).

    Example:
        >>> rows = ParquetRows.read(urls, {"token": token})  # doctest: +SKIP
        >>> sum(table.num_rows for table in rows.batches(16000, 16100, ["key"]))  # doctest: +SKIP
        100
    """

    urls: tuple[str, ...]
    group_rows: tuple[tuple[int, ...], ...]
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False)
    _last: dict[tuple, pa.Table] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def read(cls, urls: Sequence[str], storage_options: dict[str, Any] | None = None) -> ParquetRows:
        """The files' row groups read from their footers (one ranged read each, in threads)."""
        from concurrent.futures import ThreadPoolExecutor

        options = storage_options or {}

        def groups(url: str) -> tuple[int, ...]:
            with fsspec.open(url, "rb", **options) as file:
                meta = pq.read_metadata(file)
            return tuple(meta.row_group(group).num_rows for group in range(meta.num_row_groups))

        with ThreadPoolExecutor(max_workers=8) as pool:
            return cls(tuple(urls), tuple(pool.map(groups, urls)), options)

    @property
    def num_rows(self) -> tuple[int, ...]:
        """The rows of each file."""
        return tuple(sum(groups) for groups in self.group_rows)

    @property
    def total(self) -> int:
        return sum(self.num_rows)

    def ranges(self, min_parts: int = MIN_PARTS) -> list[tuple[int, int]]:
        """Row ranges covering every row: one per row group, each cut in equal pieces when there are fewer than
        ``min_parts`` groups (the pieces of a group that one process reads in turn decode it once).

        Example:
            >>> ParquetRows(("a", "b"), ((4, 4), (3,))).ranges(6)
            [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9), (9, 11)]
        """
        groups = [rows for file in self.group_rows for rows in file]
        pieces, ranges, start = max(1, -(-min_parts // max(len(groups), 1))), [], 0
        for rows in groups:
            cuts = [start + rows * piece // pieces for piece in range(pieces + 1)]
            ranges += [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
            start += rows
        return ranges

    def batches(self, start: int, stop: int, columns: Sequence[str] | None = None,
                batch_size: int = 64) -> Iterator[pa.Table]:
        """Rows ``start`` to ``stop - 1`` (counted across the files) of ``columns`` (all by default), in tables of
        up to ``batch_size`` rows; only the row groups holding them are read (each whole: the last one read stays
        decoded for the next range)."""
        offset = 0
        for url, groups in zip(self.urls, self.group_rows, strict=True):
            count = sum(groups)
            if offset < stop and start < offset + count:
                yield from self._file_batches(url, groups, max(start - offset, 0), min(stop - offset, count),
                                              columns, batch_size)
            offset += count

    def _file_batches(self, url: str, group_rows: Sequence[int], start: int, stop: int,
                      columns: Sequence[str] | None, batch_size: int) -> Iterator[pa.Table]:
        offset = 0
        for group, rows in enumerate(group_rows):
            if offset < stop and start < offset + rows:
                table = self._group(url, group, columns)
                first, last = max(start - offset, 0), min(stop - offset, rows)
                for begin in range(first, last, batch_size):
                    yield table.slice(begin, min(batch_size, last - begin))
            offset += rows

    def _group(self, url: str, group: int, columns: Sequence[str] | None) -> pa.Table:
        """One row group, decoded; the last one read is kept, so the next range in it (a row group cut in pieces
        read by one process in turn) does not decode it again."""
        key = (url, group, None if columns is None else tuple(columns))
        if key not in self._last:
            with fsspec.open(url, "rb", **self.storage_options) as file:
                table = pq.ParquetFile(file).read_row_group(group, columns=None if columns is None else list(columns))
            self._last.clear()
            self._last[key] = table
        return self._last[key]

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers start without the decoded row group
        return {**self.__dict__, "_last": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def stream(self, features: datasets.Features, ranges: Sequence[tuple[int, int]] | None = None,
               batch_size: int = 64) -> datasets.IterableDataset:
        """The rows as an ``IterableDataset`` of Arrow tables with one shard per range (:meth:`ranges` by default):
        DataLoader workers and ``split_dataset_by_node`` ranks split the ranges."""
        from datasets.iterable_dataset import ArrowExamplesIterable

        iterable = ArrowExamplesIterable(_RangeTables(self, features, batch_size),
                                         {"ranges": list(ranges if ranges is not None else self.ranges())})
        return datasets.IterableDataset(iterable, info=datasets.DatasetInfo(features=features))


@dataclass(frozen=True)
class _RangeTables:
    """The table generator of :meth:`ParquetRows.stream`: ``(key, table)`` of each range's batches, cast to the
    features as ``datasets`` casts the Parquet files it streams."""

    rows: ParquetRows
    features: datasets.Features
    batch_size: int

    def __call__(self, ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[str, pa.Table]]:
        schema = self.features.arrow_schema
        for start, stop in ranges:
            for index, table in enumerate(self.rows.batches(start, stop, schema.names, self.batch_size)):
                yield f"{start}_{index}", table_cast(table, schema)
