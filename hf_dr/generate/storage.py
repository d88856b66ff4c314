"""The files of a reinforcement run: atomic writes, shard files with checksums, the manifest, and loading them back.

Layout of an output folder::

    reinforce_config.json                       the resolved configuration (see hf_dr.generate.run_config)
    shards/reinforcements-00000.parquet         rows [0, shard_size) of the source dataset
    shards/reinforcements-00000.parquet.done    written after the shard: its rows, size, SHA-256, run fingerprint
    ...
    manifest.json                               written last, once every shard is done: the run is complete

Every file is written by :func:`hf_dr.files.write_atomic` (a temporary next to the target, fsync, rename), so a
killed run leaves either a whole file or none (temporaries are removed on the next run). A shard counts as done only
if its ``.done`` record exists and the file's size and SHA-256 match it.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from hf_dr.errors import ConfigConflictError, CorruptShardError, IncompleteRunError
from hf_dr.files import file_sha256, find_temporaries, read_json, write_json_atomic
from hf_dr.generate.parquet import write_parquet
from hf_dr.generate.plan import SHARDS_DIR, Shard

MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "reinforce_config.json"
DONE_SUFFIX = ".done"
FORMAT = "hf-dr-reinforcements"
FORMAT_VERSION = 1


# -- temporaries --------------------------------------------------------------------------------------------------
def remove_temporaries(output_dir: str, shard: Shard | None = None) -> None:
    """Deletes the temporaries (:func:`hf_dr.files.find_temporaries`) that killed runs left in ``output_dir`` (those
    of ``shard`` only, when given)."""
    if shard is None:
        paths = find_temporaries(output_dir, recursive=True)
    else:
        folder, name = os.path.split(shard.path)
        paths = find_temporaries(os.path.join(output_dir, folder), name)
    for path in paths:
        os.remove(path)


# -- shards -------------------------------------------------------------------------------------------------------
def write_shard(output_dir: str, shard: Shard, table: pa.Table, fingerprint: str) -> dict[str, Any]:
    """Writes a shard's Parquet file, then its ``.done`` record; returns the record."""
    if table.num_rows != shard.num_rows:
        raise CorruptShardError(f"{shard.path}: built {table.num_rows} rows for a shard of {shard.num_rows}")
    path = os.path.join(output_dir, shard.path)
    write_parquet(table, path)
    record = {"path": shard.path, "start": shard.start, "stop": shard.stop, "num_rows": shard.num_rows,
              "num_bytes": os.path.getsize(path), "sha256": file_sha256(path), "fingerprint": fingerprint}
    write_json_atomic(path + DONE_SUFFIX, record)
    return record


def shard_record(output_dir: str, shard: Shard, fingerprint: str) -> dict[str, Any] | None:
    """The ``.done`` record of a finished, intact shard; None if the shard is missing, unfinished or damaged.

    Raises :class:`ConfigConflictError` if the shard was made by a run with another configuration.
    """
    path = os.path.join(output_dir, shard.path)
    try:
        record = read_json(path + DONE_SUFFIX)
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint:
        raise ConfigConflictError(
            f"{path} was made by a run with another configuration (fingerprint {record.get('fingerprint')!r}, this "
            f"run {fingerprint!r}); refusing to mix them. Use a new output directory, or overwrite=True (--overwrite)."
        )
    if (record.get("start"), record.get("stop")) != (shard.start, shard.stop) or not os.path.exists(path):
        return None
    if os.path.getsize(path) != record.get("num_bytes") or file_sha256(path) != record.get("sha256"):
        return None
    return record


def clear_run(output_dir: str) -> None:
    """Removes a previous run's files (config, manifest, shards); leaves anything else in the folder alone."""
    for name in (MANIFEST_FILE, CONFIG_FILE):
        if os.path.exists(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))
    shutil.rmtree(os.path.join(output_dir, SHARDS_DIR), ignore_errors=True)


# -- manifest -----------------------------------------------------------------------------------------------------
def write_manifest(output_dir: str, shards: Sequence[Shard], fingerprint: str, num_samples: int) -> dict[str, Any]:
    """Checks every shard and writes ``manifest.json``, which marks the run complete.

    Raises :class:`CorruptShardError` naming the first missing or damaged shard.
    """
    records = []
    for shard in shards:
        record = shard_record(output_dir, shard, fingerprint)
        if record is None:
            raise CorruptShardError(
                f"{os.path.join(output_dir, shard.path)} is missing, unfinished or does not match its checksum; rerun "
                "the same command to regenerate it"
            )
        records.append({k: v for k, v in record.items() if k != "fingerprint"})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
                "num_rows": sum(r["num_rows"] for r in records), "num_samples": num_samples, "shards": records}
    write_json_atomic(os.path.join(output_dir, MANIFEST_FILE), manifest)
    return manifest


def read_manifest(output_dir: str) -> dict[str, Any]:
    """The manifest of a finished run, or :class:`IncompleteRunError` explaining what to do."""
    path = os.path.join(output_dir, MANIFEST_FILE)
    if not os.path.exists(path):
        done = len(glob.glob(os.path.join(output_dir, SHARDS_DIR, "*" + DONE_SUFFIX)))
        raise IncompleteRunError(
            f"{output_dir!r} holds no finished reinforcement run (no {MANIFEST_FILE}; {done} shard(s) done). Rerun "
            "the same reinforce command to resume it, or check the path."
        )
    manifest = read_json(path)
    if manifest.get("format") != FORMAT:
        raise IncompleteRunError(f"{path} is not a hf-dr reinforcement manifest (format {manifest.get('format')!r})")
    return manifest


def verify_run(output_dir: str) -> dict[str, Any]:
    """Checks that every shard in the manifest exists with its recorded size and SHA-256; returns the manifest.

    Example:
        >>> verify_run("reinforced/")  # doctest: +SKIP
    """
    manifest = read_manifest(output_dir)
    for record in manifest["shards"]:
        path = os.path.join(output_dir, record["path"])
        if not os.path.exists(path):
            raise CorruptShardError(f"{path} is listed in the manifest but missing; restore it or regenerate the run")
        if os.path.getsize(path) != record["num_bytes"] or file_sha256(path) != record["sha256"]:
            raise CorruptShardError(
                f"{path} does not match the checksum in {MANIFEST_FILE} (truncated or modified); delete it and "
                "rerun the same reinforce command to regenerate it"
            )
    return manifest


def load_reinforcements(
    output_dir: str, verify: bool = True, keep_in_memory: bool = False, cache_dir: str | None = None
) -> datasets.Dataset:
    """Loads a finished run as a :class:`datasets.Dataset` (key, label, reinforcements), in source row order.

    Args:
        output_dir (`str`): the folder a run wrote.
        verify (`bool`, *optional*, defaults to True): check every shard's SHA-256 against the manifest first.
        keep_in_memory (`bool`, *optional*, defaults to False): read the shards into memory (nothing is written);
            by default they are converted once into the ``datasets`` cache and memory-mapped.
        cache_dir (`str`, *optional*): the ``datasets`` cache to use when not ``keep_in_memory``.

    Example:
        >>> reinforcements = load_reinforcements("reinforced/")  # doctest: +SKIP
        >>> transform = ReinforcedTransform(reinforcements, policy=config["policy"], size=224)  # doctest: +SKIP
    """
    manifest = verify_run(output_dir) if verify else read_manifest(output_dir)
    files = [os.path.abspath(os.path.join(output_dir, r["path"])) for r in manifest["shards"]]
    if keep_in_memory:
        table = pa.concat_tables([pq.read_table(f) for f in files])
        return datasets.Dataset(datasets.table.InMemoryTable(table))
    return datasets.Dataset.from_parquet(files, cache_dir=cache_dir)
