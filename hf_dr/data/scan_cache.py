"""Per-row scans computed once per dataset version: content keys and image sizes, cached beside the dataset's files.

Hashing every image for its content key costs ~0.35 ms per ImageNet JPEG (7.5 minutes for 1.28M images) and
reading every header for its size ~0.15 ms; a run start, a resume, a push, a verification and every load of a
key-less source used to pay it again. :func:`cached_scan` keeps the result in a small Parquet file next to the
dataset's Arrow files, named by the ``datasets`` fingerprint of the dataset (the identity ``datasets`` itself caches
``map`` results under), the same way ``datasets`` names its own cache files::

    <the dataset's cache folder>/hf_dr-<what>-<fingerprint>.parquet

A cached scan is used only if it was made over the same files (their names, sizes and modification times are recorded)
and if the rows :func:`hf_dr.data.keys.digest_positions` picks (64, drawn at random each time) recompute to the cached
values; otherwise it is computed again, with a warning. Datasets held in memory (no cache files), datasets whose image
cells refer to files instead of embedding their bytes (an image file edited in place would go unseen), and folders that
cannot be written are scanned every time. On a first start every rank scans (in parallel); later starts read the cache.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hf_dr.data.keys import digest_positions
from hf_dr.files import write_atomic

logger = logging.getLogger(__name__)

_META_KEY = b"hf_dr_scan"


def cache_path(dataset: datasets.Dataset, what: str, image_column: str | None = None) -> str | None:
    """Where the scan ``what`` of ``dataset`` is cached, or None for a dataset without cache files, or whose
    ``image_column`` holds cells that refer to image files instead of embedding their bytes (a file edited in place
    changes neither the fingerprint nor the dataset's own files).

    Example:
        >>> cache_path(datasets.Dataset.from_dict({"x": [1]}), "content-keys-image") is None  # held in memory
        True
    """
    if not dataset.cache_files or (image_column is not None and not embeds_bytes(dataset, image_column)):
        return None
    folder = os.path.dirname(dataset.cache_files[0]["filename"])
    return os.path.join(folder, f"hf_dr-{what}-{dataset._fingerprint}.parquet")


def embeds_bytes(dataset: datasets.Dataset, image_column: str) -> bool:
    """Whether every stored cell of ``image_column`` holds its image's bytes (read from the validity bitmaps only).

    Example:
        >>> cells = {"image": [{"bytes": b"...", "path": None}, {"bytes": None, "path": "/data/a.jpg"}]}
        >>> embeds_bytes(datasets.Dataset.from_dict(cells), "image")
        False
    """
    column = dataset.data.column(image_column)
    if not pa.types.is_struct(column.type) or column.type.get_field_index("bytes") < 0:
        return False
    return all(pc.struct_field(chunk, "bytes").null_count == 0 for chunk in column.chunks)


def _files_identity(dataset: datasets.Dataset) -> list[list[Any]]:
    identity = []
    for entry in dataset.cache_files:
        stat = os.stat(entry["filename"])
        identity.append([os.path.basename(entry["filename"]), stat.st_size, stat.st_mtime_ns])
    return identity


def cached_scan(dataset: datasets.Dataset, what: str, compute: Callable[[], Sequence[Any]],
                recompute: Callable[[Sequence[int]], Sequence[Any]], value_type: pa.DataType,
                image_column: str | None = None) -> list[Any]:
    """Every row's value of a scan of ``dataset``: the cached one when it is valid, else ``compute()`` (then cached).

    Args:
        dataset (`datasets.Dataset`): the rows scanned (the scan depends on nothing else).
        what (`str`): names the scan in the cache file's name (e.g. ``"content-keys-image"``).
        compute (`Callable`): every row's value, in row order.
        recompute (`Callable`): the values of some rows (their positions given), to check a cached scan against.
        value_type (`pyarrow.DataType`): the Arrow type of a value (e.g. ``pa.string()``).
        image_column (`str`, *optional*): the image column the scan reads; a dataset whose cells refer to image
            files (no embedded bytes) is scanned every time (see :func:`cache_path`).

    Returns:
        `list`: the values, in row order.
    """
    path = cache_path(dataset, what, image_column)
    cached = _read(path, dataset) if path is not None else None
    if cached is not None:
        positions = digest_positions(len(cached))
        if pa.array(list(recompute(positions)), value_type).to_pylist() == [cached[p] for p in positions]:
            logger.info("using the %s recorded for this dataset version in %s", what, path)
            return cached
        logger.warning("%s holds %s that do not match the dataset's rows (it changed under the same fingerprint); "
                       "computing them again", path, what)
    values = list(compute())
    if path is not None:
        _write(path, dataset, values, value_type)
    return values


def _read(path: str, dataset: datasets.Dataset) -> list[Any] | None:
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[_META_KEY])
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None
    if meta.get("num_rows") != len(dataset) or meta.get("files") != _files_identity(dataset):
        return None
    return table.column(0).to_pylist()


def _write(path: str, dataset: datasets.Dataset, values: Sequence[Any], value_type: pa.DataType) -> None:
    meta = {"num_rows": len(dataset), "files": _files_identity(dataset)}
    table = pa.table({"value": pa.array(values, type=value_type)}).replace_schema_metadata(
        {_META_KEY: json.dumps(meta).encode()})
    try:
        write_atomic(path, lambda temporary: pq.write_table(table, temporary, compression="zstd"))
    except OSError as err:  # a read-only dataset folder: scanned again next time
        logger.warning("cannot record this scan in %s (%s): it will be computed again on every start; make the "
                       "dataset's folder writable, or save it with dataset.save_to_disk(...) where you can write",
                       path, err)
