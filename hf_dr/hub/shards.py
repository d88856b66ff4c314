"""Sharded metadata-only streams: what a push records of the source's data files, and the parts a stream of the
pushed repo splits into (:mod:`hf_dr.data.parquet_rows`).

A push records the source split's data files at its pinned revision, in the order ``datasets`` streams them, with
their row counts (:func:`source_data_files`, in ``hf_dr.json``: ``source["data_files"]``). Loading the repo as a
stream of the recorded source then makes one part per source file (:func:`stream_parts`): the source stream's shard
of that file, zipped with the range of reinforcement rows that holds its rows. Pushes without the field, a source
given by the user, or a stream that does not have one shard per recorded file stay one shard.
"""

from __future__ import annotations

import logging
from typing import Any

import datasets
import pyarrow.parquet as pq
from huggingface_hub import HfFileSystem

from hf_dr.data.parquet_rows import ParquetRows, Part, plan_parts

logger = logging.getLogger(__name__)


def source_data_files(source: dict[str, Any], token: str | None = None) -> list[dict[str, Any]] | None:
    """The source split's data files at its pinned revision as ``datasets`` streams them, ``{"path", "num_rows"}``
    each (the row counts read from the Parquet footers); None for a source that is not Parquet files on the Hub or
    cannot be read (its stream then stays one shard).

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
            files.append({"path": url[len(prefix):], "num_rows": pq.read_metadata(file).num_rows})
    return files


def stream_parts(repo_id: str, commit: str, meta: dict[str, Any], images: datasets.IterableDataset,
                 recorded_source: bool, token: str | None = None) -> tuple[list[Part], ParquetRows] | None:
    """The parts of a metadata-only stream and the reader of its reinforcement rows; None (one shard) when the push
    recorded no source files, the source is not the recorded one, or its stream does not have one shard per file.

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
    rows = ParquetRows.read([f"hf://datasets/{repo_id}@{commit}/{name}" for name in names], {"token": token})
    parts = plan_parts(files, meta.get("skipped_rows", []), rows.total)
    return (parts, rows) if parts is not None else None


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
