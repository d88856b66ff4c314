"""Sharded metadata-only streams: what a push records of the source's data files, and the parts a stream of the
pushed repo splits into (:mod:`hf_dr.data.parquet_rows`).

A push records the source split's data files at its pinned revision, in the order ``datasets`` streams them, with
their row counts and the rows of each of their row groups (:func:`source_data_files`, in ``hf_dr.json``:
``source["data_files"]``). Loading the repo as a stream of the recorded source then makes one part per source file
(:func:`stream_parts`): the source stream's shard of that file, zipped with the range of reinforcement rows that holds
its rows. A source of fewer files than :data:`~hf_dr.data.parquet_rows.MIN_PARTS` (CIFAR-100's one file) is cut into
one part per row group instead (``datasets``' ``IterableDataset.reshard`` gives one shard per Parquet row group).
Pushes without the field, a source given by the user, or a stream that does not have one shard per recorded file
stay one shard.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import datasets
import pyarrow.parquet as pq
from huggingface_hub import HfFileSystem

from hf_dr.data.parquet_rows import MIN_PARTS, ParquetRows, Part, plan_parts

logger = logging.getLogger(__name__)


def source_data_files(source: dict[str, Any], token: str | None = None) -> list[dict[str, Any]] | None:
    """The source split's data files at its pinned revision as ``datasets`` streams them, ``{"path", "num_rows",
    "row_groups"}`` each (the row counts of the file and of its row groups, read from the Parquet footers); None for
    a source that is not Parquet files on the Hub or cannot be read (its stream then stays one shard).

    Args:
        source (`dict`): the recorded source (``id``, ``revision``: a commit id, ``split``).
        token (`str`, *optional*): a Hub token; the logged-in one by default.
    """
    from hf_dr.hub.upload import with_retries

    try:
        return with_retries("read the source's data files", _read_source_files, source, token)
    except (OSError, ValueError) as err:  # not found, not Parquet, the Hub down: a stream without them is one shard
        logger.warning("Cannot read the data files of the source %s (%s): a stream of this repo will be one shard, "
                       "read by one DataLoader worker.", source.get("id"), str(err).splitlines()[0] if str(err) else
                       type(err).__name__)
        return None


def _read_source_files(source: dict[str, Any], token: str | None) -> list[dict[str, Any]] | None:
    builder = datasets.load_dataset_builder(source["id"], revision=source["revision"], token=token)
    urls = [str(url) for url in (builder.config.data_files or {}).get(source["split"], [])]
    prefix = f"hf://datasets/{source['id']}@{source['revision']}/"
    if builder.name != "parquet" or not urls or not all(url.startswith(prefix) for url in urls):
        return None
    fs, files = HfFileSystem(token=token), []
    for url in urls:
        with fs.open(url, "rb") as file:
            footer = pq.read_metadata(file)
        files.append({"path": url[len(prefix):], "num_rows": footer.num_rows,
                      "row_groups": [footer.row_group(g).num_rows for g in range(footer.num_row_groups)]})
    return files


class StreamParts(NamedTuple):
    """The parts of a metadata-only stream (:func:`stream_parts`)."""

    parts: list[Part]  # one per source file, or per row group of a source of few files
    rows: ParquetRows  # the reader of the reinforcement rows
    source: datasets.IterableDataset  # the source stream, with one shard per part's ``shard``


def stream_parts(repo_id: str, commit: str, meta: dict[str, Any], images: datasets.IterableDataset,
                 recorded_source: bool, token: str | None = None) -> StreamParts | None:
    """The parts of a metadata-only stream, the reader of its reinforcement rows and the source stream sharded to
    match; None (one shard) when the push recorded no source files, the source is not the recorded one, or its stream
    does not have one shard per file.

    Args:
        repo_id (`str`), commit (`str`): the reinforced repo at its resolved commit.
        meta (`dict`): its ``hf_dr.json``.
        images (`datasets.IterableDataset`): the source stream.
        recorded_source (`bool`): whether ``images`` is the recorded source at its pinned revision.
        token (`str`, *optional*): a Hub token.
    """
    files = meta["source"].get("data_files")
    names = meta.get("data_files")
    if not files or not names or not recorded_source:
        return None
    if images.num_shards != len(files):
        logger.warning("The source stream has %d shards where %s records %d data files: the stream is one shard.",
                       images.num_shards, meta["source"].get("id"), len(files))
        return None
    files, images = _by_row_group(files, images)
    rows = ParquetRows.read([f"hf://datasets/{repo_id}@{commit}/{name}" for name in names], {"token": token})
    parts = plan_parts(files, meta.get("skipped_rows", []), rows.total)
    return StreamParts(parts, rows, images) if parts is not None else None


def _by_row_group(files: list[dict[str, Any]], images: datasets.IterableDataset
                  ) -> tuple[list[dict[str, Any]], datasets.IterableDataset]:
    """A source of fewer files than :data:`MIN_PARTS` as one entry per row group and the stream resharded to one shard
    per row group, when the push recorded the row groups and ``reshard`` gives exactly those; else both unchanged."""
    groups = [{"path": f"{entry['path']} (row group {g})", "num_rows": int(rows)}
              for entry in files for g, rows in enumerate(entry.get("row_groups") or [])]
    if len(files) >= MIN_PARTS or len(groups) <= len(files) or sum(g["num_rows"] for g in groups) != sum(
            int(entry["num_rows"]) for entry in files):
        return files, images
    resharded = images.reshard()
    if resharded.num_shards != len(groups):
        logger.warning("The source's %d row groups streamed as %d shards: the stream has one shard per file.",
                       len(groups), resharded.num_shards)
        return files, images
    return groups, resharded


def pushed_stream(repo_id: str, commit: str, meta: dict[str, Any], stream: datasets.IterableDataset,
                  token: str | None = None) -> datasets.IterableDataset:
    """A self-contained repo's rows streamed in at least :data:`hf_dr.data.parquet_rows.MIN_PARTS` row ranges of its
    data files (row groups, cut in pieces when there are fewer), so that DataLoader workers and
    ``split_dataset_by_node`` ranks split them at any size; ``stream`` itself (one shard per file) for a push that
    recorded no data files.

    Args:
        repo_id (`str`), commit (`str`): the reinforced repo at its resolved commit.
        meta (`dict`): its ``hf_dr.json``.
        stream (`datasets.IterableDataset`): the repo's split streamed by ``datasets`` (its features are kept).
        token (`str`, *optional*): a Hub token.
    """
    names = meta.get("data_files")
    if not names:
        return stream
    rows = ParquetRows.read([f"hf://datasets/{repo_id}@{commit}/{name}" for name in names], {"token": token})
    return rows.stream(stream.features)
