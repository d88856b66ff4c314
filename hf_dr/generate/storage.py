"""The files of a reinforcement run: atomic writes, shard files with checksums, the manifest, and loading them back.

Layout of an output folder::

    reinforce_config.json                       the resolved configuration (see hf_dr.generate.run_config)
    shards/reinforcements-00000.parquet         rows [0, shard_size) of the source dataset
    shards/reinforcements-00000.parquet.done    written after the shard: its rows, size, SHA-256, run fingerprint
    ...
    manifest.json                               written last, once every shard is done: the run is complete
    .hf-dr.lock                                 held by the run in progress (see hf_dr.generate.lock)

Every file is written by :func:`hf_dr.files.write_atomic` (a temporary next to the target, fsync, rename), so a
killed run leaves either a whole file or none (temporaries are removed on the next run). A shard counts as done only
if its ``.done`` record exists and the file's size and SHA-256 match it. A finished folder is read only if its
``reinforce_config.json`` is the configuration its manifest was made with (same fingerprint), its manifest lists
exactly the planned shards (:func:`check_shard_list`), and every path it names stays inside it (:func:`run_file`).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from hf_dr.errors import ConfigConflictError, CorruptShardError, IncompleteRunError
from hf_dr.files import file_sha256, find_temporaries, read_json, write_json_atomic
from hf_dr.generate.parquet import write_parquet_batches
from hf_dr.generate.plan import SHARDS_DIR, Shard, plan_shards
from hf_dr.generate.row_groups import row_group_rows
from hf_dr.generate.run_config import CONFIG_FILE, ReinforceConfig

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
RUN_COMPRESSION_LEVEL = 3  # zstd 19 costs ~35 s per N=400 shard for 6% fewer bytes; pushes write 3 too (push.md)
VERIFIED_FILE = ".hf-dr-verified.json"  # shards whose SHA-256 a verification checked, with the file's identity then
# a file changed less than this before it was hashed is not stamped: a second change within the file system's
# timestamp granularity (10 ms locally, up to 1 s on network file systems) would keep its size, times and inode
RACY_NS = 2 * 10**9
DONE_SUFFIX = ".done"
FORMAT = "hf-dr-reinforcements"
FORMAT_VERSION = 1
# what runs write, and nothing else: shard files, their .done records, and temporaries of those and of the JSON files
_SHARD_FILE = re.compile(r"reinforcements-\d+\.parquet(\.done)?")
_SHARD_TEMPORARY = re.compile(r"\.?reinforcements-\d+\.parquet(\.done)?\.tmp-\w+")
_TOP_TEMPORARY = re.compile(rf"\.?({re.escape(MANIFEST_FILE)}|{re.escape(CONFIG_FILE)}|{re.escape(VERIFIED_FILE)})"
                            r"\.tmp-\w+")


# -- temporaries --------------------------------------------------------------------------------------------------
def remove_temporaries(output_dir: str, shard: Shard | None = None) -> None:
    """Deletes the temporaries (:func:`hf_dr.files.find_temporaries`) that killed runs left in ``output_dir``: those
    of ``shard`` only, when given, else those of every file a run writes (the user's own files are left alone)."""
    if shard is None:
        paths = _run_files(output_dir, _TOP_TEMPORARY, _SHARD_TEMPORARY)
    else:
        folder, name = os.path.split(shard.path)
        paths = find_temporaries(os.path.join(output_dir, folder), name)
    for path in paths:
        os.remove(path)


def _run_files(output_dir: str, top: re.Pattern | None, shards: re.Pattern) -> list[str]:
    """Files in ``output_dir`` whose names match ``top``, and in its ``shards/`` folder those matching ``shards``."""
    found = []
    for folder, pattern in ((output_dir, top), (os.path.join(output_dir, SHARDS_DIR), shards)):
        names = os.listdir(folder) if pattern is not None and os.path.isdir(folder) else []
        found += [os.path.join(folder, n) for n in sorted(names) if pattern.fullmatch(n)]
    return found


# -- shards -------------------------------------------------------------------------------------------------------
def write_shard(output_dir: str, shard: Shard, table: pa.Table, fingerprint: str,
                skipped: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Writes a shard's Parquet file, then its ``.done`` record; returns the record. ``skipped`` lists the shard's
    rows whose image could not be decoded (``{"row", "key", "error"}``, rows without records), kept in the record."""
    if table.num_rows != shard.num_rows:
        raise CorruptShardError(f"{shard.path}: built {table.num_rows} rows for a shard of {shard.num_rows}")
    path = os.path.join(output_dir, shard.path)
    write_parquet_batches([table], path, table.schema, row_group_rows=row_group_rows(table),
                          compression_level=RUN_COMPRESSION_LEVEL)  # small groups: a lookup decodes one
    record = {"path": shard.path, "start": shard.start, "stop": shard.stop, "num_rows": shard.num_rows,
              "num_bytes": os.path.getsize(path), "sha256": _sha256_once(path), "fingerprint": fingerprint,
              "identity": list(_identity(path))}
    if skipped:
        record["skipped"] = list(skipped)
    write_json_atomic(path + DONE_SUFFIX, record)
    return record


class ShardWriter:
    """Writes finished shards (:func:`write_shard`) on a background thread, off the teacher's critical path: Parquet
    compression releases the GIL, so the teacher keeps running while a shard is written. At most one shard waits
    (memory stays at two shard tables); a write's error is raised in the run at the next shard or at the end, and a
    run killed mid-write leaves no partial file (writes are atomic, the ``.done`` record comes last).

    Example:
        >>> with ShardWriter("reinforced/", fingerprint) as writer:  # doctest: +SKIP
        ...     writer.submit(shard, table)
    """

    def __init__(self, output_dir: str, fingerprint: str) -> None:
        self.output_dir, self.fingerprint = output_dir, fingerprint
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-dr-shard-writer")
        self._pending: Future | None = None
        self.waited = 0.0  # seconds the run spent waiting for a write: the writes' share of the critical path

    def submit(self, shard: Shard, table: Any, skipped: Sequence[dict[str, Any]] = ()) -> None:
        """Queues ``shard``'s table, after waiting for the previous write (its error, if any, is raised here)."""
        self._wait()
        remove_temporaries(self.output_dir, shard)
        self._pending = self._pool.submit(write_shard, self.output_dir, shard, table, self.fingerprint, skipped)

    def _wait(self) -> None:
        if self._pending is not None:
            start = time.perf_counter()
            pending, self._pending = self._pending, None
            pending.result()
            self.waited += time.perf_counter() - start

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if exc_info[0] is None:
                self._wait()
        finally:
            self._pool.shutdown(wait=True)
        if self.waited:
            logger.info("waited %.1f s for shard writes", self.waited)


def shard_record(output_dir: str, shard: Shard, fingerprint: str) -> dict[str, Any] | None:
    """The ``.done`` record of a finished, intact shard; None if the shard is missing, unfinished or damaged.

    Raises :class:`ConfigConflictError` if the shard was made by a run with another configuration.
    """
    path = os.path.join(output_dir, shard.path)
    record = _done_record(path)
    if record is None:
        return None
    if record.get("fingerprint") != fingerprint:
        raise ConfigConflictError(
            f"{path} was made by a run with another configuration (fingerprint {record.get('fingerprint')!r}, this "
            f"run {fingerprint!r}); refusing to mix them. Use a new output directory, or overwrite=True (--overwrite)."
        )
    if (record.get("start"), record.get("stop")) != (shard.start, shard.stop) or not os.path.exists(path):
        return None
    if os.path.getsize(path) != record.get("num_bytes") or _trusted_sha256(path, record) != record.get("sha256"):
        return None
    return record


def _trusted_sha256(path: str, known: dict[str, Any] | None) -> str:
    """The SHA-256 of ``path``: ``known["sha256"]`` when ``known["identity"]`` (size, mtime, ctime, inode when it was
    hashed) is the file's identity now, so the file was not written, replaced or touched since; else hashed (once per
    process). A resume decides on 1,282 ImageNet+ shards by ``stat`` alone."""
    if known is not None and known.get("identity") == list(_identity(path)) and known.get("sha256"):
        return known["sha256"]
    return _sha256_once(path)


# SHA-256 of the shard files this process wrote or checked, by path, with the file's identity when hashed: a resume
# checks each finished shard once when planning, and the manifest does not hash it again (nor the ones just written).
_HASHED: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def _identity(path: str) -> tuple[int, int, int, int]:
    """What changes whenever a file is written, replaced or touched: size, mtime, ctime (not settable) and inode."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _sha256_once(path: str) -> str:
    """``file_sha256(path)``, computed again only if the file changed (size, mtime, ctime or inode) since this process
    last hashed it."""
    identity = _identity(path)
    known = _HASHED.get(os.path.abspath(path))
    if known is not None and known[0] == identity:
        return known[1]
    digest = file_sha256(path)
    _HASHED[os.path.abspath(path)] = (identity, digest)
    return digest


def clear_run(output_dir: str) -> None:
    """Removes what a previous run wrote: config, manifest, ``shards/reinforcements-*.parquet`` with their ``.done``
    records, and the temporaries of all of them. Anything else stays, in ``shards/`` too (the folder goes only if
    left empty), and so does the lock file (held by the run that clears)."""
    remove_temporaries(output_dir)
    for name in (MANIFEST_FILE, CONFIG_FILE, VERIFIED_FILE):
        if os.path.exists(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))
    for path in _run_files(output_dir, None, _SHARD_FILE):
        os.remove(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(output_dir, SHARDS_DIR))


# -- manifest -----------------------------------------------------------------------------------------------------
def write_manifest(output_dir: str, shards: Sequence[Shard], fingerprint: str, num_samples: int) -> dict[str, Any]:
    """Checks every shard and writes ``manifest.json``, which marks the run complete. The rows the shards skipped
    (undecodable images, see :func:`write_shard`) are listed, in row order, under ``"skipped"``.

    Raises :class:`CorruptShardError` naming the first missing or damaged shard.
    """
    records, skipped = [], []
    for shard in shards:
        record = shard_record(output_dir, shard, fingerprint)
        if record is None:
            raise CorruptShardError(
                f"{os.path.join(output_dir, shard.path)} is missing, unfinished or does not match its checksum; rerun "
                "the same command to regenerate it"
            )
        records.append({k: v for k, v in record.items() if k not in ("fingerprint", "skipped", "identity")})
        skipped += record.get("skipped", [])
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
                "num_rows": sum(r["num_rows"] for r in records), "num_samples": num_samples, "shards": records}
    if skipped:
        manifest["skipped"] = skipped
        logger.warning("%d image(s) could not be decoded; their rows have no records (keys and errors under "
                       "'skipped' in %s)", len(skipped), os.path.join(output_dir, MANIFEST_FILE))
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
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as err:
        raise IncompleteRunError(
            f"{path} is damaged (not readable JSON: {err}); delete it and rerun the same reinforce command, which "
            "checks the finished shards and writes it again."
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IncompleteRunError(
            f"{path} is not a hf-dr reinforcement manifest (format {found!r}); check the path, or delete it and "
            "rerun the same reinforce command to write it again."
        )
    check_config(output_dir, manifest)
    check_shard_list(output_dir, manifest)
    return manifest


def run_file(output_dir: str, relative: Any, where: str = MANIFEST_FILE) -> str:
    """The path of the run file ``relative`` (a path read from ``where``), confined to ``output_dir``: an absolute
    path, a ``..`` part, or a link that resolves outside the folder raises :class:`CorruptShardError`. Every path a
    run's files name goes through here before it is read.

    Example:
        >>> run_file("run", "shards/reinforcements-00000.parquet")
        'run/shards/reinforcements-00000.parquet'
        >>> run_file("run", "../../outside/x.parquet")
        Traceback (most recent call last):
        ...
        hf_dr.errors.CorruptShardError: run/manifest.json names the file '../../outside/x.parquet', which is not...
    """
    inside = isinstance(relative, str) and bool(relative) and not os.path.isabs(relative) \
        and ".." not in re.split(r"[/\\]", relative)
    path = os.path.join(output_dir, relative) if inside else ""
    root = os.path.realpath(output_dir)
    if not inside or os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise CorruptShardError(
            f"{os.path.join(output_dir, where)} names the file {relative!r}, which is not inside the run folder "
            f"{output_dir!r}; a run's files are named relative to it. Delete {where} and rerun the same reinforce "
            "command, which writes it again from the finished shards."
        )
    return path


def shard_paths(output_dir: str, manifest: dict[str, Any]) -> list[str]:
    """The paths of the manifest's shard files (each checked by :func:`run_file`), in manifest order."""
    return [run_file(output_dir, record.get("path")) for record in manifest["shards"]]


def check_shard_list(output_dir: str, manifest: dict[str, Any]) -> None:
    """Raises :class:`CorruptShardError` unless the manifest lists exactly the run's planned shards, each once, in
    order: the plan of :func:`hf_dr.generate.plan.plan_shards` from the config's row count and shard size (without
    a config, from the manifest's row count and its largest shard). A duplicated, dropped or foreign entry would
    otherwise train on some rows twice and publish others never."""
    path = os.path.join(output_dir, MANIFEST_FILE)
    entries = manifest.get("shards")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise IncompleteRunError(f"{path} has no list of shard records; delete it and rerun the same reinforce "
                                 "command to write it again.")
    shard_paths(output_dir, manifest)
    config = ReinforceConfig.load(output_dir)
    if config is not None and config.dataset.get("num_rows") is not None:
        num_rows, shard_size, source = config.dataset["num_rows"], config.shard_size, CONFIG_FILE
    else:
        sizes = [e.get("stop", 0) - e.get("start", 0) for e in entries if isinstance(e.get("start"), int)]
        num_rows, shard_size, source = manifest.get("num_rows"), max(sizes, default=1), MANIFEST_FILE
    planned = [(s.path, s.start, s.stop) for s in plan_shards(int(num_rows or 0), max(int(shard_size), 1))]
    found = [(e.get("path"), e.get("start"), e.get("stop")) for e in entries]
    if found == planned and manifest.get("num_rows") == num_rows:
        return
    counts = {entry: found.count(entry) for entry in found}
    problems = [f"{label} {_names(names)}" for label, names in [
        ("listed more than once:", [e[0] for e in planned if counts.get(e, 0) > 1]),
        ("missing:", [e[0] for e in planned if e not in counts]),
        ("not in the plan:", [f"{e[0]} rows [{e[1]}, {e[2]})" for e in counts if e not in planned]),
    ] if names]
    if manifest.get("num_rows") != num_rows:
        problems.append(f"num_rows {manifest.get('num_rows')}, planned {num_rows}")
    if not problems:
        problems.append("the shards are out of order")
    raise CorruptShardError(
        f"{path} does not list the run's planned shards ({num_rows} rows in shards of {shard_size} by {source}: "
        f"{len(planned)} shards): {'; '.join(problems)}. Delete {MANIFEST_FILE} and rerun the same reinforce command, "
        "which checks the finished shards and writes it again."
    )


def _names(names: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(str(n) for n in names[:shown]) + more


def check_config(output_dir: str, manifest: dict[str, Any]) -> None:
    """Raises :class:`ConfigConflictError` if the folder's ``reinforce_config.json`` is not the configuration its
    manifest (and so its shards) was made with: the folder mixes the files of two runs."""
    config = ReinforceConfig.load(output_dir)
    if config is None or config.fingerprint() == manifest.get("fingerprint"):
        return
    raise ConfigConflictError(
        f"{os.path.join(output_dir, CONFIG_FILE)} (fingerprint {config.fingerprint()[:12]}...) is not the "
        f"configuration {os.path.join(output_dir, MANIFEST_FILE)} and its shards were made with (fingerprint "
        f"{str(manifest.get('fingerprint'))[:12]}...): the folder mixes two runs' files, e.g. of two runs started "
        "into it at once. Regenerate it with the reinforce command you want and overwrite=True (--overwrite), or use "
        "a new output directory (--output-dir)."
    )


def verify_run(output_dir: str) -> dict[str, Any]:
    """Checks that every shard in the manifest exists with its recorded size and SHA-256; returns the manifest.

    Each shard is hashed once: its ``.done`` record (written with it) and :data:`VERIFIED_FILE` (written by a check of
    a copied or downloaded folder) hold its SHA-256 with the file's size, mtime, ctime and inode when hashed, and a
    shard is hashed again only if it was written, replaced or touched since.

    Example (a run over 4 bundled digits with a random ``test_resnet`` teacher; then one shard damaged):
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> manifest = verify_run(run)
        >>> manifest["num_rows"], len(manifest["shards"])
        (4, 1)
        >>> with open(os.path.join(run, manifest["shards"][0]["path"]), "r+b") as shard:
        ...     _ = shard.write(b"damaged")
        >>> verify_run(run)
        Traceback (most recent call last):
        ...
        hf_dr.errors.CorruptShardError: ...
    """
    manifest = read_manifest(output_dir)
    verified = _read_verified(output_dir)
    changed = False
    for record, path in zip(manifest["shards"], shard_paths(output_dir, manifest), strict=True):
        if not os.path.exists(path):
            raise CorruptShardError(f"{path} is listed in the manifest but missing; restore it or regenerate the run")
        known = verified.get(record["path"]) or _done_record(path)
        if os.path.getsize(path) != record["num_bytes"] or _trusted_sha256(path, known) != record["sha256"]:
            raise CorruptShardError(
                f"{path} does not match the checksum in {MANIFEST_FILE} (truncated or modified); delete it and "
                "rerun the same reinforce command to regenerate it"
            )
        stamp = {"identity": list(_identity(path)), "sha256": record["sha256"]}
        racy = time.time_ns() - stamp["identity"][2] < RACY_NS  # changed too recently for its ctime to tell a change
        if not racy and (known is None or known.get("identity") != stamp["identity"]):
            verified[record["path"]], changed = stamp, True
    if changed:
        with contextlib.suppress(OSError):  # a read-only copy is verified again next time
            write_json_atomic(os.path.join(output_dir, VERIFIED_FILE), verified)
    return manifest


def _done_record(path: str) -> dict[str, Any] | None:
    """The ``.done`` record of the shard at ``path``; None if it is missing or not a readable record."""
    return _json_object(path + DONE_SUFFIX)


def _read_verified(output_dir: str) -> dict[str, Any]:
    return _json_object(os.path.join(output_dir, VERIFIED_FILE)) or {}


def _json_object(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if the file is missing, unreadable or holds something else."""
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
