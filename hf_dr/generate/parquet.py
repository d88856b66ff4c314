"""Compact, atomic Parquet writes for reinforcement tables.

Measured on ``rrc+ra_re`` records at k=10 (``benchmarks/storage.py``): zstd level 19 without dictionary pages and
with BYTE_STREAM_SPLIT on every numeric leaf is the smallest layout tried (snappy 45 B, default zstd 42 B, this
39 B per reinforcement); the ``huggingface`` schema metadata is kept, so ``datasets`` reads the declared features
back.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def write_parquet(table: pa.Table, path: str | os.PathLike, compression_level: int = 19) -> Path:
    """Writes ``table`` to ``path`` atomically (:func:`hf_dr.files.write_atomic`) in the compact layout.

    Example:
        >>> import pyarrow as pa, tempfile, os
        >>> out = write_parquet(pa.table({"x": [1, 2]}), os.path.join(tempfile.mkdtemp(), "t.parquet"))
        >>> pa.parquet.read_table(out).num_rows
        2
    """
    numeric = _numeric_columns(table.schema)

    def write(temporary: str) -> None:
        pq.write_table(
            table, temporary, compression="zstd", compression_level=compression_level, use_dictionary=False,
            column_encoding={c: "BYTE_STREAM_SPLIT" for c in numeric} or None, write_statistics=False,
        )

    return Path(write_atomic(path, write))
