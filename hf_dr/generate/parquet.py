"""Compact, atomic Parquet writes for reinforcement tables, whole (:func:`write_parquet`) or streamed
(:func:`write_parquet_batches`, fed by :func:`split_rows`).

Measured on ``rrc+ra_re`` records at k=10 (``benchmarks/storage.py``): zstd level 19 without dictionary pages and
with BYTE_STREAM_SPLIT on every numeric leaf is the smallest layout tried (snappy 45 B, default zstd 42 B, this
39 B per reinforcement); the ``huggingface`` schema metadata is kept, so ``datasets`` reads the declared features
back. Both writers take their options from :func:`writer_options`, so a streamed file has the same layout as a
whole one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hf_dr.files import write_atomic


def _numeric_columns(schema: pa.Schema) -> list[str]:
    """Dotted leaf paths of numeric columns (nested lists and structs included)."""
    paths: list[str] = []

    def visit(field_type: pa.DataType, path: str) -> None:
        if pa.types.is_struct(field_type):
            for child in field_type:
                visit(child.type, f"{path}.{child.name}")
        elif pa.types.is_list(field_type) or pa.types.is_fixed_size_list(field_type) or pa.types.is_large_list(
            field_type
        ):
            visit(field_type.value_type, f"{path}.list.element")
        elif pa.types.is_floating(field_type) or pa.types.is_integer(field_type):
            paths.append(path)

    for field in schema:
        visit(field.type, field.name)
    return paths


def writer_options(schema: pa.Schema, compression_level: int = 19) -> dict[str, Any]:
    """The keyword arguments of :class:`pyarrow.parquet.ParquetWriter` for the compact layout of ``schema``.

    Example:
        >>> options = writer_options(pa.schema([("x", pa.float32()), ("key", pa.string())]))
        >>> options["compression"], options["column_encoding"]
        ('zstd', {'x': 'BYTE_STREAM_SPLIT'})
    """
    numeric = _numeric_columns(schema)
    return {"compression": "zstd", "compression_level": compression_level, "use_dictionary": False,
            "column_encoding": {c: "BYTE_STREAM_SPLIT" for c in numeric} or None, "write_statistics": False}


def write_parquet(table: pa.Table, path: str | os.PathLike, compression_level: int = 19) -> Path:
    """Writes ``table`` to ``path`` atomically (:func:`hf_dr.files.write_atomic`) in the compact layout.

    Example:
        >>> import pyarrow as pa, tempfile, os
        >>> out = write_parquet(pa.table({"x": [1, 2]}), os.path.join(tempfile.mkdtemp(), "t.parquet"))
        >>> pa.parquet.read_table(out).num_rows
        2
    """
    return write_parquet_batches([table], path, table.schema, compression_level=compression_level)


def write_parquet_batches(tables: Iterable[pa.Table], path: str | os.PathLike, schema: pa.Schema, *,
                          row_group_rows: int | None = None, compression_level: int = 19) -> Path:
    """Streams ``tables`` into one Parquet file at ``path``, atomically and in the compact layout of
    :func:`write_parquet`; only the table being written (and a row group's worth of rows) is held in memory.

    Args:
        tables (`Iterable[pa.Table]`): the rows, in order; each table has ``schema`` (its metadata aside).
        path (`str` or `os.PathLike`): the file to (re)place.
        schema (`pa.Schema`): the file's schema, metadata included (e.g. the ``huggingface`` features).
        row_group_rows (`int`, *optional*): rows per row group: every group but the last holds exactly this many,
            whatever the sizes of the tables (rows are buffered across them). By default each table is written as
            it comes (row groups of at most 1Mi rows, cut at table boundaries), as :func:`pyarrow.parquet.write_table`
            does.
        compression_level (`int`, *optional*, defaults to 19): the zstd level.

    Returns:
        `Path`: ``path``.

    Example:
        >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
        >>> parts = [pa.table({"x": [1, 2, 3]}), pa.table({"x": [4, 5]})]
        >>> out = write_parquet_batches(parts, os.path.join(tempfile.mkdtemp(), "t.parquet"), parts[0].schema,
        ...                             row_group_rows=2)
        >>> meta = pq.ParquetFile(out).metadata
        >>> [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        [2, 2, 1]
    """
    if row_group_rows is not None and row_group_rows < 1:
        raise ValueError(f"row_group_rows should be a positive integer, but got {row_group_rows} instead.")

    def write(temporary: str) -> None:
        with pq.ParquetWriter(temporary, schema, **writer_options(schema, compression_level)) as writer:
            pending, count = [], 0
            for table in tables:
                if row_group_rows is None:
                    writer.write_table(table)
                    continue
                pending.append(table)
                count += table.num_rows
                if count >= row_group_rows:  # write the full groups, keep the rest for the next table
                    buffered, full = pa.concat_tables(pending), count - count % row_group_rows
                    writer.write_table(buffered.slice(0, full), row_group_size=row_group_rows)
                    pending, count = [buffered.slice(full)], count - full
            if count:
                writer.write_table(pa.concat_tables(pending), row_group_size=row_group_rows)

    return Path(write_atomic(path, write))


def split_rows(tables: Iterable[pa.Table], counts: Sequence[int]) -> Iterator[Iterator[pa.Table]]:
    """Cuts a stream of tables into consecutive parts of ``counts`` rows: one iterator of zero-copy slices per count,
    reading the stream lazily (consume each part before the next).

    Raises:
        ValueError: when the tables hold fewer or more rows than ``counts`` asks for (more: once the last part is
            read).

    Example:
        >>> import pyarrow as pa
        >>> parts = split_rows([pa.table({"x": [0, 1, 2]}), pa.table({"x": [3, 4]})], [2, 3])
        >>> [[t.column("x").to_pylist() for t in part] for part in parts]
        [[[0, 1]], [[2], [3, 4]]]
    """
    stream, rest = iter(tables), []

    def part(count: int) -> Iterator[pa.Table]:
        while count > 0:
            table = rest.pop() if rest else next(stream, None)
            if table is None:
                raise ValueError(f"the tables ended {count} rows short of the {sum(counts)} rows asked for")
            if table.num_rows > count:
                rest.append(table.slice(count))
                table = table.slice(0, count)
            count -= table.num_rows
            if table.num_rows:
                yield table

    for count in counts:
        yield part(count)
    left = sum(t.num_rows for t in rest) + sum(t.num_rows for t in stream)
    if left:
        raise ValueError(f"the tables hold {left} rows more than the {sum(counts)} rows asked for")
