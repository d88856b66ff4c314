"""How :func:`hf_dr.push_to_hub` packs a run's shards into Hub data files: the sizing rule (:func:`plan_files`), the
run's shards as a push reads them (:func:`read_shards`, :func:`read_verified`) and the source images a self-contained
push joins to them by key (:class:`SourceImages`).

A run writes shards of ``shard_size`` rows (1,000 by default: 14 MiB at N=400 metadata-only, 145 MB with ImageNet's
images); the Hub and ``datasets`` favour files of a few hundred MB with row groups under 100 MB. So the shards are
streamed, one at a time, into ``N`` files of at most about ``TARGET_FILE_BYTES`` each, estimated from the shards' bytes
per row (plus the images' bytes for self-contained). ``N`` is 1 for a small run and otherwise a multiple of
``FILES_MULTIPLE``: ``datasets.distributed.split_dataset_by_node`` gives each rank whole files only when the file
count is a multiple of the world size (else every rank reads everything and keeps 1/n), and 8 serves 1, 2, 4 and 8
ranks. The files' row counts differ by at most one; their row groups are as even as possible with each under
``MAX_ROW_GROUP_BYTES`` uncompressed (about a local run's row group: a map-style load decodes one group per first
lookup), from the shards' own uncompressed bytes per row (Parquet's, larger than Arrow's ``nbytes`` for nested
records). Files sort by name in row order, so ``datasets.load_dataset`` reads rows
in the run's order.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hf_dr.data.columns import image_feature
from hf_dr.data.keys import KeyIndex, bytes_digest, refuse_changed_image
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.data.source_keys import scan_keys
from hf_dr.errors import CorruptShardError, DataMismatchError
from hf_dr.generate.row_groups import ROW_GROUP_BYTES
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.verify import source_changes

logger = logging.getLogger(__name__)

DATA_DIR = "data"
TARGET_FILE_BYTES = 256 * 2**20  # the Hub and datasets favour data files of a few hundred MB
# Parquet-uncompressed bytes per row group: random access decodes one whole group (hf_dr.hub.opening), so groups hold
# about the rows a local run's do (ROW_GROUP_BYTES of Arrow records; Parquet counts nested records ~1.9x larger:
# 91 rows at ImageNet+'s N=400 against 86 in a run's shard). Pushes before held up to 64 MiB (~1,450 rows).
MAX_ROW_GROUP_BYTES = 2 * ROW_GROUP_BYTES
FILES_MULTIPLE = 8  # more than one file: a multiple of 8, so split_dataset_by_node shards evenly for 1, 2, 4, 8 ranks


def data_file_name(split: str, index: int, count: int) -> str:
    """``data/{split}-{index:05d}-of-{count:05d}.parquet``, the naming ``datasets.push_to_hub`` uses.

    Example:
        >>> data_file_name("train", 0, 3)
        'data/train-00000-of-00003.parquet'
    """
    return f"{DATA_DIR}/{split}-{index:05d}-of-{count:05d}.parquet"


@dataclass(frozen=True)
class FilePlan:
    """How a push cuts the run's rows into data files: file ``names[i]`` holds the next ``num_rows[i]`` rows, in row
    groups of ``row_group_rows[i]`` rows (the file's last group fewer)."""

    names: list[str]
    num_rows: list[int]
    row_group_rows: list[int]


def plan_files(split: str, num_rows: Sequence[int], num_bytes: Sequence[float], row_bytes: float) -> FilePlan:
    """The data files of a push, from estimates made on the run's shards.

    The file count is 1 when the estimated total fits in ``TARGET_FILE_BYTES``, else the smallest multiple of
    ``FILES_MULTIPLE`` that brings every file under it (at most the row count); rows are dealt in order, file ``i``
    ending at row ``total * (i + 1) // count``. Each file's row groups are as even as possible with every group under
    ``MAX_ROW_GROUP_BYTES`` at ``row_bytes`` per row.

    Args:
        split (`str`): the split the files are named after.
        num_rows (`Sequence[int]`): the rows each run shard contributes (rows the run skipped left out).
        num_bytes (`Sequence[float]`): the estimated file bytes of each shard's rows.
        row_bytes (`float`): the uncompressed bytes of a row (the largest of the shards' averages).

    Example:
        >>> plan = plan_files("train", [1000] * 1282, [15.5e6] * 1282, 46e3)  # ImageNet+ metadata-only, N=400
        >>> len(plan.names), plan.names[0], plan.num_rows[:2], plan.row_group_rows[0]
        (80, 'data/train-00000-of-00080.parquet', [16025, 16025], 91)
    """
    total_rows = sum(num_rows)
    count = 1
    if sum(num_bytes) > TARGET_FILE_BYTES:
        count = FILES_MULTIPLE * math.ceil(sum(num_bytes) / (TARGET_FILE_BYTES * FILES_MULTIPLE))
        count = min(count, total_rows // FILES_MULTIPLE * FILES_MULTIPLE) or 1  # every file holds rows
    rows = [total_rows * (i + 1) // count - total_rows * i // count for i in range(count)]
    most = max(1, int(MAX_ROW_GROUP_BYTES // max(row_bytes, 1.0)))
    groups = [math.ceil(n / math.ceil(n / most)) if n else 1 for n in rows]
    return FilePlan([data_file_name(split, i, count) for i in range(count)], rows, groups)


# -- the run's shards -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunShards:
    """A run's shards as a push reads them: per shard, the rows kept (the run's skipped rows left out), the estimated
    file bytes of those rows (Parquet footer excluded) and the uncompressed bytes per row, read from the footers, and
    the SHA-256 the manifest records (checked again as each shard is packed)."""

    paths: list[str]
    sha256: list[str]
    key_name: str
    skipped: frozenset[str]
    num_rows: list[int]
    num_bytes: list[float]
    row_bytes: list[float]


def read_shards(output_dir: str, manifest: dict[str, Any], config: ReinforceConfig) -> RunShards:
    """The :class:`RunShards` of a verified run (``manifest`` from :func:`hf_dr.generate.storage.verify_run`)."""
    paths = [os.path.join(output_dir, record["path"]) for record in manifest["shards"]]
    skipped = frozenset(entry["key"] for entry in manifest.get("skipped", []))
    key_name = config.columns.key_name
    num_rows, num_bytes, row_bytes = [], [], []
    for path in paths:
        meta = pq.read_metadata(path)
        rows = max(meta.num_rows, 1)
        kept = without_skipped(pq.read_table(path, columns=[key_name]), key_name, skipped).num_rows if skipped \
            else meta.num_rows
        num_rows.append(kept)
        num_bytes.append((os.path.getsize(path) - meta.serialized_size) * kept / rows)
        row_bytes.append(sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)) / rows)
    return RunShards(paths, [record["sha256"] for record in manifest["shards"]], key_name, skipped, num_rows,
                     num_bytes, row_bytes)


def without_skipped(table: pa.Table, key_name: str, skipped: frozenset[str]) -> pa.Table:
    """``table`` without the rows whose key the run skipped (they hold no records: nothing to train on)."""
    if not skipped:
        return table
    return table.filter(pc.invert(pc.is_in(table.column(key_name), value_set=pa.array(sorted(skipped)))))


def read_verified(path: str, sha256: str) -> pa.Table:
    """The table of the shard ``path``, read from bytes whose SHA-256 is ``sha256``; else
    :class:`~hf_dr.errors.CorruptShardError`."""
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CorruptShardError(
            f"{path} changed while it was being pushed (its SHA-256 no longer matches the run's manifest): another "
            "process (e.g. `hf-dr reinforce --overwrite`) wrote to the run folder. Nothing was committed; push again "
            "once the run is finished."
        )
    return pq.read_table(pa.BufferReader(data))


def file_schema(shards: RunShards, images: SourceImages | None = None) -> pa.Schema:
    """The data files' schema, with the ``huggingface`` features metadata."""
    schema = pq.read_schema(shards.paths[0])
    return images.schema(schema) if images is not None else schema


# -- the images of a self-contained push ----------------------------------------------------------------------------
class SourceImages:
    """The source images of a self-contained push, joined to the run's rows by key.

    Made only after checking that ``dataset`` holds every reinforced key and that every image is the one reinforced
    (compared with the digests the run stored): a push is refused before the repo is created or anything is
    uploaded. The check reads every image once more than the upload does; it also measures them: ``num_bytes``
    holds each shard's image bytes (:meth:`add_bytes` counts them in the file sizes).
    """

    def __init__(self, dataset: datasets.Dataset, config: ReinforceConfig, shards: RunShards) -> None:
        self.column = config.columns.image
        self.index = _key_index(dataset, config)
        _refuse_missing(shards.paths, shards.key_name, self.index)
        self.feature = image_feature(dataset, self.column)
        self.rows = dataset.select_columns([self.column]).with_format("arrow")
        self.num_bytes = []
        for path in shards.paths:
            columns = [shards.key_name, *[DIGEST_COLUMN] * (DIGEST_COLUMN in pq.read_schema(path).names)]
            table = without_skipped(pq.read_table(path, columns=columns), shards.key_name, shards.skipped)
            rows, embedded = self.embed(table, shards.key_name)
            _refuse_changed(table, shards.key_name, rows, embedded)
            self.num_bytes.append(pc.sum(pc.binary_length(embedded.field("bytes"))).as_py() or 0)

    def embed(self, table: pa.Table, key_name: str) -> tuple[list[int], pa.StructArray]:
        """The source rows of ``table``'s keys and their images, bytes embedded (local files read)."""
        rows = [self.index.row(key) for key in table.column(key_name).to_pylist()]
        return rows, self.feature.embed_storage(self.rows[rows].column(self.column).combine_chunks())

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """The self-contained schema: the image column, then the run's columns (with their features)."""
        features = datasets.Features.from_arrow_schema(schema)
        return datasets.Features({self.column: self.feature, **features}).arrow_schema

    def join(self, table: pa.Table, key_name: str) -> pa.Table:
        """``table`` with its rows' images in front."""
        return pa.Table.from_arrays([self.embed(table, key_name)[1], *table.columns], schema=self.schema(table.schema))

    def add_bytes(self, shards: RunShards) -> RunShards:
        """``shards`` with the image bytes counted in the file bytes and the bytes per row."""
        per_row = [b / max(n, 1) for b, n in zip(self.num_bytes, shards.num_rows, strict=True)]
        return replace(shards, num_bytes=[a + b for a, b in zip(shards.num_bytes, self.num_bytes, strict=True)],
                       row_bytes=[a + b for a, b in zip(shards.row_bytes, per_row, strict=True)])


def _key_index(dataset: datasets.Dataset, config: ReinforceConfig) -> KeyIndex:
    columns = config.columns
    keys = scan_keys(dataset, columns.image, columns.key, columns.key_source)
    if source_changes(config, keys):  # a --limit run's first rows are no change
        logger.info("The dataset's rows differ from the reinforced ones (order or content); joining by key.")
    return KeyIndex(keys, where="the dataset to push")


def _refuse_changed(table: pa.Table, key_name: str, rows: Sequence[int], embedded: pa.StructArray) -> None:
    """Every pushed image must be the one reinforced under its key: all of them are compared with the digests the run
    stored (runs keyed by a column or by path; a content key is itself a digest, checked by the key join)."""
    if DIGEST_COLUMN not in table.column_names:
        return
    fix = ("Pass dataset= with the dataset that was reinforced (or the recorded source revision), or push the "
           "metadata-only layout.")
    recorded = zip(table.column(key_name).to_pylist(), rows, embedded.field("bytes").to_pylist(),
                   table.column(DIGEST_COLUMN).to_pylist(), strict=True)
    for key, row, data, digest in recorded:
        refuse_changed_image(key, row, "the dataset to push", bytes_digest(data or b""), digest, fix)


def _refuse_missing(shard_paths: Sequence[str], key_name: str, index: KeyIndex) -> None:
    reinforced = [k for path in shard_paths for k in pq.read_table(path, columns=[key_name]).column(0).to_pylist()]
    missing = [key for key in reinforced if key not in index]
    if missing:
        raise DataMismatchError(
            f"the dataset lacks {len(missing)} of the {len(reinforced)} reinforced keys (first: {missing[:5]}); it is "
            "not the dataset that was reinforced. Pass dataset= with the reinforced rows (or the recorded source "
            "revision), or push the metadata-only layout."
        )
