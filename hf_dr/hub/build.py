"""Writing a push's data files: in parallel processes, and only those whose inputs changed since the last push of the
same run to the same repo (the build record).

Each planned file is one :class:`FileJob`: its rows as slices of the run's shards (read, and checked against the
manifest's SHA-256, by the process that writes the file), its row groups, schema and zstd level. A metadata-only
push runs the jobs in ``num_proc`` processes (``concurrent.futures.ProcessPoolExecutor``: pyarrow compresses a file
on one thread, measured in ``benchmarks/push_cost.py``), at most ``num_proc`` jobs ahead of the upload, so at most
about ``num_proc + 1`` files are on disk at once. Every file is written by one process from the same inputs, so its
bytes do not depend on ``num_proc``. A self-contained push writes in its own process (the source images it joins
stay there).

The build record, ``{run}/.hf-dr-push/{org}--{name}.json``, written after each successful push, holds per data file
the digest of its inputs (:meth:`FileJob.digest`: the shards' SHA-256 and the rows taken from each, the run's skipped
keys, schema, level, row groups, file name and pyarrow's version, and the source's identity for self-contained) and
what was written (SHA-256, size, rows, bytes); and the run's card statistics under the digest of the shards. A later
push to the same repo does not write a file whose inputs digest is recorded and whose recorded SHA-256 is the one the
repo holds at that path (the Hub's LFS SHA-256, from the listing the push reads anyway): an unchanged re-push reads
no shard and writes no data file. A file the record does not vouch for is written and compared as before.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, HfApi

from hf_dr.files import file_sha256, write_json_atomic
from hf_dr.generate.parquet import write_parquet_batches
from hf_dr.hub.packing import FilePlan, RunShards, SourceImages, read_verified, without_skipped
from hf_dr.hub.upload import RepoGuard, Target, hub_call

logger = logging.getLogger(__name__)

RECORD_DIR = ".hf-dr-push"
RECORD_FORMAT = 1


def default_num_proc() -> int:
    """The processes a push writes its data files with by default: ``min(8, cores)`` where processes start by fork;
    1 elsewhere (spawn and forkserver, Python 3.14's Linux default, import the user's script again, which fails
    without an ``if __name__ == "__main__":`` guard; pass ``num_proc=8`` there from guarded code), as
    :func:`hf_dr.generate.loading.default_num_proc` decides."""
    if multiprocessing.get_context().get_start_method() != "fork":
        return 1
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class FileJob:
    """One data file to write: ``slices`` holds ``(shard path, shard SHA-256, first, stop)`` in the shard's kept rows
    (the run's skipped rows left out), in order; ``group_rows`` the rows per row group; ``schema_ipc`` the file's
    schema in Arrow IPC (pickling a ``pa.Schema`` renames fixed-size-list children ``element`` to ``item`` in pyarrow
    26, which would change the bytes a worker writes); ``source`` what identifies the joined images (self-contained;
    ``None`` for metadata-only)."""

    name: str
    slices: tuple[tuple[str, str, int, int], ...]
    group_rows: int
    schema_ipc: bytes
    level: int
    key_name: str
    skipped: frozenset[str]
    source: str | None = None

    def digest(self) -> str:
        """SHA-256 of everything the file's bytes depend on (paths excluded: a moved run keeps its digests)."""
        inputs = {"format": RECORD_FORMAT, "pyarrow": pa.__version__, "name": self.name, "level": self.level,
                  "group_rows": self.group_rows, "rows": [[sha, first, stop] for _, sha, first, stop in self.slices],
                  "schema": hashlib.sha256(self.schema_ipc).hexdigest(), "key": self.key_name,
                  "skipped": sorted(self.skipped), "source": self.source}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    @property
    def schema(self) -> pa.Schema:
        """The file's schema, metadata included."""
        return pa.ipc.read_schema(pa.py_buffer(self.schema_ipc))


@dataclass(frozen=True)
class WrittenFile:
    """A data file as written: its name in the repo, SHA-256, size, rows and uncompressed row-group bytes; ``path``
    where it lies (``None`` for one kept from an earlier push)."""

    name: str
    sha256: str
    size: int
    num_rows: int
    num_bytes: int
    path: str | None = None


def plan_jobs(plan: FilePlan, shards: RunShards, schema: pa.Schema, level: int, source: str | None = None
              ) -> list[FileJob]:
    """The :class:`FileJob` of each planned file: file ``i`` takes the next ``plan.num_rows[i]`` kept rows of the
    shards, in order."""
    ends = list(itertools.accumulate(shards.num_rows))
    jobs, start, schema_ipc = [], 0, schema.serialize().to_pybytes()
    for name, count, group_rows in zip(plan.names, plan.num_rows, plan.row_group_rows, strict=True):
        stop, slices = start + count, []
        for path, sha256, end, rows in zip(shards.paths, shards.sha256, ends, shards.num_rows, strict=True):
            first, last = max(start, end - rows), min(stop, end)
            if first < last:
                slices.append((path, sha256, first - (end - rows), last - (end - rows)))
        jobs.append(FileJob(name, tuple(slices), group_rows, schema_ipc, level, shards.key_name, shards.skipped,
                            source))
        start = stop
    return jobs


def write_file(job: FileJob, staging: str, images: SourceImages | None = None) -> WrittenFile:
    """Writes ``job``'s file under ``staging`` (each shard checked against its SHA-256 as it is read)."""

    def tables() -> Iterator[pa.Table]:
        for path, sha256, first, stop in job.slices:
            table = without_skipped(read_verified(path, sha256), job.key_name, job.skipped).slice(first, stop - first)
            yield images.join(table, job.key_name) if images is not None else table

    path = str(write_parquet_batches(tables(), os.path.join(staging, job.name), job.schema,
                                     row_group_rows=job.group_rows, compression_level=job.level))
    meta = pq.read_metadata(path)
    num_bytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    return WrittenFile(job.name, file_sha256(path), os.path.getsize(path), meta.num_rows, num_bytes, path)


def write_files(jobs: Sequence[FileJob], staging: str, num_proc: int, images: SourceImages | None = None
                ) -> Iterator[WrittenFile]:
    """The files of ``jobs``, written and yielded in order: in ``num_proc`` processes (at most ``num_proc`` jobs
    ahead of the consumer), or in this process for one job, ``num_proc=1`` or self-contained ``images``."""
    if num_proc <= 1 or len(jobs) <= 1 or images is not None:
        for job in jobs:
            yield write_file(job, staging, images)
        return
    pool = ProcessPoolExecutor(min(num_proc, len(jobs)))
    try:
        waiting, pending = iter(jobs), collections.deque[Future]()
        for job in waiting:
            pending.append(pool.submit(write_file, job, staging))
            if len(pending) == num_proc:
                break
        while pending:
            written = pending.popleft().result()
            for job in waiting:  # one more job for the one done
                pending.append(pool.submit(write_file, job, staging))
                break
            yield written
    finally:  # an error or an interrupt: jobs not started are cancelled, running ones finish into the staging folder
        pool.shutdown(wait=True, cancel_futures=True)


# -- uploads ----------------------------------------------------------------------------------------------------------
def push_data_files(api: HfApi, guard: RepoGuard, repo_id: str, staging: str, jobs: Sequence[FileJob],
                    record: BuildRecord, target: Target, images: SourceImages | None, num_proc: int,
                    on_first: Callable[[str], None], create_pr: bool = False
                    ) -> tuple[list[CommitOperationAdd], list[WrittenFile]]:
    """Writes the files of ``jobs`` the build record does not vouch for (in ``num_proc`` processes), uploads each as
    it comes (``preupload_lfs_files``, retried) and deletes it once uploaded; returns their commit operations and
    every planned file (``path=None``: kept from an earlier push). ``on_first(path)`` runs while the first file is on
    disk (self-contained: always written, for the card's samples grid). The repo (and branch) is created just before
    the first upload."""
    kept = {job.name: record.kept(job, target.lfs_sha256.get(job.name)) for job in jobs}
    if images is not None:
        kept[jobs[0].name] = None
    todo = [job for job in jobs if kept[job.name] is None]
    if len(todo) < len(jobs):
        logger.info("%d of %d data files are unchanged since the last push of this run (build record %s): not "
                    "written again.", len(jobs) - len(todo), len(jobs), record.path)
    operations, written = [], {}
    for file in write_files(todo, staging, num_proc, images):
        if file.name == jobs[0].name:
            on_first(file.path)
        guard.ensure()
        operation = CommitOperationAdd(path_in_repo=file.name, path_or_fileobj=file.path)
        hub_call(f"upload {file.name}", api.preupload_lfs_files, repo_id, additions=[operation], repo_type="dataset",
                 revision=guard.branch, create_pr=create_pr or None)
        if operation.path_or_fileobj == b"":  # uploaded (LFS or Xet): the commit needs only its hash and size
            os.remove(file.path)
        operations.append(operation)
        written[file.name] = file
        logger.info("Uploaded %s: %d rows, %.1f MB.", file.name, file.num_rows, file.size / 1e6)
    return operations, [kept[job.name] or written[job.name] for job in jobs]


# -- the build record -----------------------------------------------------------------------------------------------
class BuildRecord:
    """What the last successful pushes of a run to ``repo_id`` wrote (see the module's docstring).

    Args:
        output_dir (`str`): the run folder (the record lives in its ``.hf-dr-push/``).
        repo_id (`str`): the dataset repo.
    """

    def __init__(self, output_dir: str, repo_id: str) -> None:
        self.path = os.path.join(output_dir, RECORD_DIR, repo_id.replace("/", "--") + ".json")
        self.data: dict[str, Any] = {"format": RECORD_FORMAT, "repo_id": repo_id, "files": {}, "stats": {}}
        try:
            with open(self.path) as f:
                data = json.load(f)
            if data.get("format") == RECORD_FORMAT and data.get("repo_id") == repo_id:
                self.data = data
        except (OSError, ValueError):  # none yet, unreadable or damaged: every file is written
            pass

    def kept(self, job: FileJob, repo_sha256: str | None) -> WrittenFile | None:
        """The file recorded for ``job``'s inputs, if the repo holds it at ``job.name`` (``repo_sha256``); else
        ``None`` (it must be written)."""
        entry = self.data["files"].get(job.name)
        if entry is None or entry["inputs"] != job.digest() or repo_sha256 is None or entry["sha256"] != repo_sha256:
            return None
        return WrittenFile(job.name, entry["sha256"], entry["size"], entry["num_rows"], entry["num_bytes"])

    def stats(self, inputs: str) -> dict[str, Any] | None:
        """The card statistics recorded for the shards whose digest is ``inputs``."""
        return self.data["stats"].get("value") if self.data["stats"].get("inputs") == inputs else None

    def save(self, jobs: Sequence[FileJob], files: Sequence[WrittenFile], stats_inputs: str,
             stats: dict[str, Any]) -> None:
        """Records the files of a successful push (other files' entries are kept) and the statistics; a run folder
        that cannot be written only loses the record (the next push writes every file again)."""
        for job, written in zip(jobs, files, strict=True):
            self.data["files"][job.name] = {"inputs": job.digest(), **asdict(written) | {"path": None}}
        self.data["stats"] = {"inputs": stats_inputs, "value": stats}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_json_atomic(self.path, self.data)
        except OSError as err:
            logger.warning("Cannot write the push's build record %s (%s): the next push writes every file again.",
                           self.path, err.strerror)


def shards_digest(shards: RunShards, fingerprint: str) -> str:
    """SHA-256 of the run's shards (their SHA-256 in order), skipped keys and config fingerprint: the card
    statistics' inputs."""
    inputs = {"sha256": shards.sha256, "skipped": sorted(shards.skipped), "fingerprint": fingerprint}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def source_identity(source: dict[str, Any], dataset: Any, images: SourceImages | None) -> str | None:
    """What identifies the images a self-contained push joins (part of its files' inputs): the recorded source and
    the dataset's fingerprint; ``None`` for metadata-only."""
    if images is None:
        return None
    return json.dumps([source, getattr(dataset, "_fingerprint", None)], sort_keys=True, default=str)
