"""A run's records read from its Parquet row groups when first needed (:class:`RowGroupRecords`), instead of one
conversion pass over every shard before the first batch.

Decoding the nested records is the cost of loading a run (~0.08 ms per image at N=400 in one process, whatever the
compression: pyarrow rebuilds the list levels of every leaf). Training needs only the rows of its next batches, so
each row group is decoded the first time any process asks for one of its rows and written, as an uncompressed Arrow
file, to a cache shared by every process and DataLoader worker of the machine; later lookups memory-map it, as the
``datasets`` cache is. The first batch then costs the row groups its samples fall in, and the rest of the run is
decoded by the loader workers over the first epoch's first batches. Runs write row groups of ~2 MB of decoded records
(:func:`row_group_rows`); runs written before hold one group per shard, decoded whole on a first lookup.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hf_dr.errors import DataMismatchError
from hf_dr.files import write_atomic

if TYPE_CHECKING:
    import datasets

ROW_GROUP_BYTES = 2 * 2**20  # decoded (Arrow) bytes per row group of a run's shard: the most a record lookup decodes
MAX_OPEN_GROUPS = 4096  # row groups a process keeps mapped (~9 KB of objects each); others are mapped again (~0.3 ms)


def row_group_rows(table: pa.Table) -> int:
    """Rows per row group for a shard holding ``table``: about :data:`ROW_GROUP_BYTES` of decoded records each, so
    the first lookup of a row decodes ~2 MB (~90 rows at N=400, k=10; 1.3% more Parquet bytes than one group per
    shard of 1,000 rows) instead of the whole shard.

    Example:
        >>> row_group_rows(pa.table({"x": pa.array(range(1000), pa.int64())}))
        1000
    """
    per_row = table.nbytes / max(table.num_rows, 1)
    return max(1, min(max(table.num_rows, 1), int(ROW_GROUP_BYTES // max(per_row, 1.0))))


class RowGroupRecords:
    """The records of a run's rows, read by row from its shards' row groups (see the module docstring).

    Args:
        files (`Sequence[str]`): the run's shards, in row order.
        key_column (`str`): the key column: each lookup checks the key found at the row.
        records_column (`str`): the records column.
        cache_dir (`str`): the folder of this run version's decoded row groups (one Arrow file each).
        skipped (`Sequence[int]`, *optional*): rows of the files left out of the loaded rows: row ``i`` of a lookup
            is the ``i``-th row not skipped.
        features (`datasets.Features`, *optional*): the run's features (its description included).

    Pickled for spawn workers without the row groups it has opened; every process maps the shared files itself.
    """

    def __init__(self, files: Sequence[str], key_column: str, records_column: str, cache_dir: str,
                 skipped: Sequence[int] = (), features: datasets.Features | None = None) -> None:
        self.files, self.key_column, self.records_column = list(files), key_column, records_column
        self.cache_dir, self.features = cache_dir, features
        self._groups: list[tuple[int, int]] = []  # (file, row group in it)
        self._starts: list[int] = []  # the first row of each group
        total = 0
        for index, path in enumerate(self.files):
            metadata = pq.read_metadata(path)
            for group in range(metadata.num_row_groups):
                self._groups.append((index, group))
                self._starts.append(total)
                total += metadata.row_group(group).num_rows
        self.num_rows = total
        kept = np.delete(np.arange(total, dtype=np.int64), np.asarray(sorted(set(skipped)), dtype=np.int64))
        self._kept = kept if len(skipped) else None  # loaded row -> file row
        self._open: OrderedDict[int, tuple[pa.Array, pa.Array]] = OrderedDict()  # least recently used first

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": OrderedDict()}

    def __len__(self) -> int:
        return self.num_rows if self._kept is None else len(self._kept)

    def records(self, row: int, key: str) -> pa.Array:
        """The Arrow array of row ``row``'s records (``row`` counts the loaded rows, skipped ones left out); its key
        must be ``key``, else :class:`DataMismatchError` names both (the shards changed under their cache)."""
        file_row = int(row if self._kept is None else self._kept[row])
        group = bisect.bisect_right(self._starts, file_row) - 1
        keys, records = self._group(group)
        offset = file_row - self._starts[group]
        self._check_key(group, row, keys[offset].as_py(), key)
        return records[offset].values

    def parts(self, rows: Sequence[int], keys: Sequence[str]) -> list[tuple[pa.ListArray, np.ndarray, np.ndarray]]:
        """Where the records of a batch of ``rows`` are, one part per row group they fall in: the group's records
        (one list per row), the rows' positions in it and their positions in the batch; nothing is copied. Each
        row's key must be the one in ``keys`` (see :meth:`records`)."""
        file_rows = np.asarray(rows, dtype=np.int64)
        file_rows = file_rows if self._kept is None else self._kept[file_rows]
        groups = np.searchsorted(np.asarray(self._starts, dtype=np.int64), file_rows, side="right") - 1
        parts = []
        for group in np.unique(groups).tolist():
            positions = np.flatnonzero(groups == group)
            group_keys, records = self._group(group)
            local = file_rows[positions] - self._starts[group]
            for position, found in zip(positions.tolist(), group_keys.take(pa.array(local)).to_pylist(), strict=True):
                self._check_key(group, rows[position], found, keys[position])
            parts.append((records, local, positions))
        return parts

    def _check_key(self, group: int, row: int, found: str, key: str) -> None:
        if found != key:
            path, index = self.files[self._groups[group][0]], self._groups[group][1]
            raise DataMismatchError(
                f"row {row} of the run holds key {found!r} in row group {index} of {path}, where its rows hold "
                f"{key!r}: the files changed after they were opened. Open them again (hf_dr.open_reinforced).")

    def _group(self, group: int) -> tuple[pa.Array, pa.Array]:
        """Row group ``group``'s key and records, memory-mapped from the shared cache (decoded into it first when no
        process has yet)."""
        arrays = self._open.get(group)
        if arrays is not None:
            self._open.move_to_end(group)
        else:
            path = os.path.join(self.cache_dir, f"{group:06d}.arrow")
            if not os.path.exists(path):
                self._decode(group, path)
            batch = pa.ipc.open_file(pa.memory_map(path)).get_batch(0)  # zero-copy: pages shared by every process
            arrays = self._open[group] = (batch.column(self.key_column), batch.column(self.records_column))
            if len(self._open) > MAX_OPEN_GROUPS:
                self._open.popitem(last=False)
        return arrays

    def _decode(self, group: int, path: str) -> None:
        """Writes row group ``group`` (key and records) to ``path`` as an Arrow file, atomically: processes decoding
        the same group at once each write their own file and the last rename wins (their contents are equal)."""
        index, row_group = self._groups[group]
        table = pq.ParquetFile(self.files[index]).read_row_group(
            row_group, columns=[self.key_column, self.records_column], use_threads=False
        ).replace_schema_metadata(None)  # the features' JSON (~17 KB) would be held once per opened group
        def write(temporary: str) -> None:
            with pa.OSFile(temporary, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table.combine_chunks(), max_chunksize=max(table.num_rows, 1))  # one batch

        write_atomic(path, write)
