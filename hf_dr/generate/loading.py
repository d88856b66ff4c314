"""Loading a finished run as a ``datasets.Dataset``: verified, converted once into the ``datasets`` cache (in parallel
for large runs) or read into memory when it fits, without the rows the run skipped; or opened without a conversion
pass (:func:`open_run_records`): its row-level columns read at once, its records by row group when first needed; a
push's downloaded data files open the same way (:func:`open_parquet_records`)."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import warnings
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from hf_dr.data.description import read_description
from hf_dr.data.run_columns import RunColumns
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.row_groups import RowGroupRecords
from hf_dr.generate.storage import MANIFEST_FILE, read_manifest, shard_paths, verify_run

logger = logging.getLogger(__name__)


def load_run_records(
    output_dir: str, verify: bool = True, keep_in_memory: bool = False, cache_dir: str | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Loads a finished run as a :class:`datasets.Dataset` (key, label, reinforcements), in source row order.

    Args:
        output_dir (`str`): the folder a run wrote.
        verify (`bool`, *optional*, defaults to True): check every shard against the manifest first
            (:func:`hf_dr.generate.storage.verify_run`: its size, and its SHA-256, hashed once per file version).
        keep_in_memory (`bool`, *optional*, defaults to False): read the shards into memory (nothing is written;
            refused above half the available memory); by default they are converted once into the ``datasets``
            cache and memory-mapped, shared by every process and worker.
        cache_dir (`str`, *optional*): the ``datasets`` cache to use when not ``keep_in_memory``.
        num_proc (`int`, *optional*): processes converting the shards into the ``datasets`` cache, once per machine;
            by default :func:`default_num_proc` (where processes fork, one per 256 MB of shards, at most 8 and the CPU
            count): decoding the records costs ~0.15-0.3 ms per image at N=400 in one process, minutes for ImageNet+.

    Rows the run skipped because their image could not be decoded (``on_bad_image="skip"``) hold no records; they
    are left out, with a warning naming how many and where they are listed (``"skipped"`` in ``manifest.json``).

    Example (a run over 4 bundled digits with a random ``test_resnet`` teacher, loaded and replayed):
        >>> from hf_dr import ReinforcedTransform, load_run_records
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> reinforcements = load_run_records(run)
        >>> reinforcements.column_names, len(reinforcements[0]["reinforcements"])
        (['key', 'label', 'image_digest', 'reinforcements'], 2)
        >>> sorted(reinforcements[0]["reinforcements"][0])  # one record: the view's params, the teacher's top-k
        ['ids', 'params', 'probs']
        >>> train = ReinforcedTransform(reinforcements, size=32).attach(digits)  # policy, classes: the run's own
        >>> train[0]["pixel_values"].shape, train[0]["labels"].shape
        (torch.Size([3, 32, 32]), torch.Size([10]))
    """
    manifest = verify_run(output_dir) if verify else read_manifest(output_dir)
    files = [os.path.abspath(path) for path in shard_paths(output_dir, manifest)]
    if keep_in_memory:
        _check_fits_in_memory(files)
        table = pa.concat_tables([pq.read_table(f) for f in files])
        # the run's content identity as the fingerprint: datasets would otherwise hash the whole table (peak ~5x it)
        dataset = datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=_identity(manifest))
    else:
        num_bytes = sum(r["num_bytes"] for r in manifest["shards"])
        num_proc = default_num_proc(num_bytes, len(files)) if num_proc is None else num_proc
        dataset = datasets.Dataset.from_parquet(files, cache_dir=cache_dir, num_proc=num_proc)
    return _without_skipped(dataset, manifest.get("skipped", []), os.path.join(output_dir, MANIFEST_FILE))


def load_reinforcements(*args: Any, **kwargs: Any) -> datasets.Dataset:
    """Deprecated name of :func:`load_run_records` (it read like :func:`hf_dr.load_reinforced`, which opens a pushed
    repo ready to train on); kept for one release."""
    warnings.warn("hf_dr.load_reinforcements is renamed load_run_records (a local run's records); the old name goes "
                  "in the next release", FutureWarning, stacklevel=2)
    return load_run_records(*args, **kwargs)


def open_run_records(output_dir: str, verify: bool = True, cache_dir: str | None = None
                     ) -> tuple[datasets.Dataset, RowGroupRecords]:
    """Opens a finished run without converting its records first: its row-level columns (key, label and the others
    but the records) as a :class:`datasets.Dataset` read at once, and its records as a
    :class:`~hf_dr.generate.row_groups.RowGroupRecords`, decoded one row group at a time when a row of it is first
    looked up, into a cache shared by every process of the machine. Pass both to
    :class:`~hf_dr.ReinforcedTransform` (``ReinforcedTransform(rows, records=records)``); the rows are those of
    :func:`load_run_records`, skipped rows left out, and each replay reads the same records.

    Args:
        output_dir (`str`): the folder a run wrote.
        verify (`bool`, *optional*, defaults to True): check every shard against the manifest first (as
            :func:`load_run_records`).
        cache_dir (`str`, *optional*): the ``datasets`` cache to keep the decoded row groups under (its default
            otherwise), in ``hf-dr-row-groups/<the run version>``.

    Example:
        >>> rows, records = open_run_records("reinforced/")  # doctest: +SKIP
        >>> transform = ReinforcedTransform(rows, records=records, size=224)  # doctest: +SKIP
    """
    manifest = verify_run(output_dir) if verify else read_manifest(output_dir)
    files = [os.path.abspath(path) for path in shard_paths(output_dir, manifest)]
    skipped = manifest.get("skipped", [])
    rows, records = open_parquet_records(files, _identity(manifest), cache_dir, [int(e["row"]) for e in skipped])
    return _without_skipped(rows, skipped, os.path.join(output_dir, MANIFEST_FILE)), records


def open_parquet_records(files: Sequence[str], identity: str, cache_dir: str | None = None,
                         skipped: Sequence[int] = (), image_column: str | None = None, num_proc: int | None = None
                         ) -> tuple[datasets.Dataset, RowGroupRecords]:
    """Reinforced Parquet files (a run's shards, or the data files of a push) opened without converting their
    records: the row-level columns as a :class:`datasets.Dataset`, the records as a :class:`RowGroupRecords` over
    the files' row groups (see :func:`open_run_records`).

    Args:
        files (`Sequence[str]`): the files, in row order, with the run's features (its description) in their schema.
        identity (`str`): the files' content identity: the decoded row groups are cached under
            ``hf-dr-row-groups/<identity>`` of ``cache_dir``, so it must change whenever a file does.
        cache_dir (`str`, *optional*): the ``datasets`` cache (its default otherwise).
        skipped (`Sequence[int]`, *optional*): rows of the files the caller leaves out of its rows.
        image_column (`str`, *optional*): a column of images (a self-contained push): the row-level columns are then
            converted into the ``datasets`` cache (flat columns: no nested records are decoded) instead of being
            read into memory.
        num_proc (`int`, *optional*): processes converting those columns (one by default).
    """
    schema = pq.read_schema(files[0])
    features = datasets.Features.from_arrow_schema(schema)
    description = read_description(features)
    recorded = description.columns if description is not None else RunColumns()  # runs before descriptions
    key_column, records_column = recorded.key_name, recorded.reinforcements
    columns = [name for name in schema.names if name != records_column]
    info = datasets.DatasetInfo(features=datasets.Features({c: features[c] for c in columns}))
    if image_column is not None and image_column in columns:
        rows = datasets.Dataset.from_parquet(list(files), columns=columns, features=info.features,
                                             cache_dir=cache_dir, num_proc=num_proc)
    else:
        table = pa.concat_tables([pq.read_table(f, columns=columns, schema=schema) for f in files]).combine_chunks()
        rows = datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=identity + "-rows", info=info)
    cache = os.path.join(cache_dir or datasets.config.HF_DATASETS_CACHE, "hf-dr-row-groups", identity)
    return rows, RowGroupRecords(files, key_column, records_column, cache, skipped, features)


def _identity(manifest: dict[str, Any]) -> str:
    """The content identity of a run's shards (its config fingerprint and every shard's SHA-256)."""
    return hashlib.sha256("".join([manifest["fingerprint"], *(r["sha256"] for r in manifest["shards"])])
                          .encode()).hexdigest()[:16]


def default_num_proc(num_bytes: int, num_files: int) -> int | None:
    """Processes for converting ``num_files`` Parquet files of ``num_bytes`` into the ``datasets`` cache: one per
    256 MB, at most 8, the CPU count and the file count; None (one, no pool to start) for small data, and where
    processes do not start by fork (spawn and forkserver, Python 3.14's Linux default, import the user's script again,
    which fails without an ``if __name__ == "__main__":`` guard): pass ``num_proc=8`` there from guarded code.

    Example:
        >>> default_num_proc(100 * 2**20, 10) is None
        True
    """
    if multiprocessing.get_context().get_start_method() != "fork":
        return None
    processes = min(8, os.cpu_count() or 1, num_files, max(1, num_bytes // (256 * 2**20)))
    return processes if processes > 1 else None


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` of ``/proc/meminfo``; physical memory where
    that file does not exist)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_fits_in_memory(files: Sequence[str]) -> None:
    """Refuses ``keep_in_memory`` for shards whose decoded size (the Parquet metadata's, read without the data) is
    above half the available memory: every process loading them holds a private copy."""
    metadata = [pq.read_metadata(f) for f in files]
    size = sum(m.row_group(i).total_byte_size for m in metadata for i in range(m.num_row_groups))
    available = available_memory()
    if size > available // 2:
        raise InvalidConfigError(
            f"keep_in_memory=True would hold {size / 2**30:.1f} GiB of records in every process that loads them, and "
            f"this machine has {available / 2**30:.1f} GiB available: leave keep_in_memory out, the records are then "
            "memory-mapped from the datasets cache and shared by every process and DataLoader worker."
        )


def _without_skipped(dataset: datasets.Dataset, skipped: Sequence[dict[str, Any]], manifest_path: str
                     ) -> datasets.Dataset:
    """``dataset`` (a run's rows, in source order) without its ``skipped`` rows; contiguous slices, no index map."""
    rows = sorted({int(entry["row"]) for entry in skipped})
    if not rows:
        return dataset
    logger.warning("leaving out %d row(s) the run skipped because their image could not be decoded (first keys: %s); "
                   "they are listed with their errors under 'skipped' in %s", len(rows),
                   [entry["key"] for entry in skipped[:3]], manifest_path)
    bounds = [-1, *rows, len(dataset)]
    parts = [dataset.select(range(start + 1, stop))
             for start, stop in zip(bounds[:-1], bounds[1:], strict=True) if stop > start + 1]
    return datasets.concatenate_datasets(parts) if parts else dataset.select([])
