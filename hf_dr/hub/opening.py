"""``open_reinforced``: one function that opens a reinforced dataset for training, from a local run folder or a pushed
repo (a Hub id), map-style or streamed, and returns the images with the replay of their reinforcements set.

A map-style load converts nothing first: the run's shards, or the pushed data files (downloaded once, at the resolved
commit), are opened as they are (:func:`hf_dr.generate.loading.open_parquet_records`): their row-level columns read
at once, their records decoded one row group at a time the first time a row of it is looked up, into a cache shared
by every process of the machine (:class:`hf_dr.generate.row_groups.RowGroupRecords`). Pushes write row groups of
about the rows a local run's hold (:data:`hf_dr.hub.packing.MAX_ROW_GROUP_BYTES`); older pushes (row groups of up to
64 MiB) open the same way, each first lookup in a group decoding the whole group. A self-contained push's row-level
columns (its images included) are converted into the ``datasets`` cache, flat columns only: no nested record is
decoded. The join of images and records (keys, digests, transform) is :func:`hf_dr.generate.opening.reinforced_images`,
the one behind :func:`hf_dr.train.inputs.training_data` too.

Streams are unchanged: the source and the reinforcement files are streamed and zipped in the run's row order
(:mod:`hf_dr.hub.shards`).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import datasets
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from hf_dr.data.keys import (
    check_verify_images,
    content_key,
    image_digest,
    missing_path,
    path_key,
    refuse_changed_image,
)
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.data.sources import load_source
from hf_dr.data.streaming import ReinforcedIterableDataset, empty_reinforcements, stream_replay, zip_records
from hf_dr.errors import HubNotFoundError, InvalidConfigError
from hf_dr.generate.loading import open_parquet_records, open_run_records
from hf_dr.generate.opening import (
    changed_fix,
    check_source_columns,
    recorded_source,
    recorded_version,
    reinforced_images,
    run_source,
)
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import CONFIG_FILE, MANIFEST_FILE, read_manifest
from hf_dr.hub.packing import DATA_DIR
from hf_dr.hub.push import SELF_CONTAINED, resolve_revision
from hf_dr.hub.repo_meta import read_split_meta
from hf_dr.hub.shards import pushed_stream, stream_parts

STREAM_KEY = "hf_dr_key"  # the column a streamed metadata-only source gets its recomputed keys in
DOWNLOAD_THREADS = 8


def open_reinforced(
    target: str,
    split: str = "train",
    revision: str | None = None,
    *,
    streaming: bool = False,
    source: str | datasets.Dataset | datasets.IterableDataset | None = None,
    source_revision: str | None = None,
    verify_source: bool = True,
    verify_images: str = "sample",
    cache_dir: str | None = None,
    token: str | None = None,
    num_proc: int | None = None,
    **transform_options: Any,
) -> datasets.Dataset | ReinforcedIterableDataset:
    """Opens a reinforced dataset for training: the images with the replay of their reinforcements set.

    ``target`` is a local run folder (``hf-dr reinforce --output-dir``), a repo pushed by :func:`hf_dr.push_to_hub`,
    or a local folder of such a repo's files (a download of it); folders load map-style only. Every option is
    :func:`hf_dr.load_reinforced`'s. A run folder's images are ``source`` (a loaded dataset, a Hub id or a local
    path, at ``source_revision``), else the dataset its ``reinforce_config.json`` records, at the recorded revision
    and split (``split`` and ``revision`` are the Hub repo's, not used for a folder).

    Returns:
        A `datasets.Dataset` whose rows are ``{"pixel_values", "labels"}`` (call ``hf_dr.set_epoch(ds, e)`` every
        epoch), or with ``streaming=True`` a :class:`ReinforcedIterableDataset` of ``{"key", "pixel_values",
        "labels"}``.

    Example (a local run of 4 bundled digits, opened with its images, then pushed and opened from the Hub):
        >>> import os, tempfile, safetensors.torch, timm
        >>> from hf_dr import open_reinforced, push_to_hub, reinforce
        >>> from hf_dr.data.bundled import load_bundled
        >>> folder = tempfile.mkdtemp()
        >>> weights = os.path.join(folder, "teacher.safetensors")
        >>> safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), weights)
        >>> digits = load_bundled("digits").select(range(4))
        >>> run = reinforce(digits, [{"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}], "rrc",
        ...                 num_samples=2, topk=3, key_column="key", output_dir=os.path.join(folder, "run"),
        ...                 progress=False)
        >>> train = open_reinforced(run, source=digits, size=32)  # joined by key, digests checked
        >>> train[0]["pixel_values"].shape, train[0]["labels"].shape
        (torch.Size([3, 32, 32]), torch.Size([10]))
        >>> _ = push_to_hub(run, "me/digits-opened", dataset=digits)  # self-contained: images travel with records
        >>> len(open_reinforced("me/digits-opened", size=32))
        4
    """
    check_verify_images(verify_images)
    if os.path.isfile(os.path.join(target, CONFIG_FILE)) and os.path.isfile(os.path.join(target, MANIFEST_FILE)):
        if streaming:
            raise InvalidConfigError(f"{target!r} is a local run folder, which loads map-style: leave streaming out, "
                                     "or push it (hf_dr.push_to_hub) and stream the pushed repo.")
        return _open_run(target, source, source_revision, verify_source, verify_images, cache_dir, transform_options)
    local = os.path.isdir(target)  # a pushed repo's files, downloaded
    if local and streaming:
        raise InvalidConfigError(f"{target!r} is a local folder of a pushed repo, which loads map-style: leave "
                                 "streaming out, or stream the repo from the Hub.")
    commit = "local" if local else resolve_revision(HfApi(token=token), target, revision)
    meta, config = read_split_meta(target, split, commit, token)
    run = ReinforceConfig(**config)  # checked against the data's fingerprint by read_split_meta
    columns = meta["columns"]
    if streaming:
        return _stream(target, split, commit, meta, run, source, source_revision, verify_images, cache_dir, token,
                       transform_options)
    files = pushed_files(target, split, commit, meta, token)
    stamps = [f"{os.path.realpath(f)}:{os.path.getsize(f)}:{os.stat(f).st_mtime_ns}" for f in files]
    identity = hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]  # Hub files: blobs named by content
    self_contained = meta["layout"] == SELF_CONTAINED
    rows, records = open_parquet_records(files, identity, cache_dir,
                                         image_column=columns["image"] if self_contained else None, num_proc=num_proc)
    options = {**run.replay_options(rows), **transform_options}  # the opened rows hold no records: the config's
    if self_contained:
        names = {"image_column": columns["image"], "key_column": columns["key"], "label_column": columns["label"],
                 "reinforcements_column": columns["reinforcements"]}
        transform = ReinforcedTransform(rows, **names, records=records, verify_images=verify_images, **options)
        return transform.attach(rows)
    images = _source_dataset(meta["source"], source, source_revision, False, cache_dir, token)
    images, transform = reinforced_images(images, rows, _recorded(meta, run), columns["key"], records=records,
                                          verify_source=verify_source, verify_images=verify_images,
                                          skipped_rows=meta.get("skipped_rows", []), label_column=columns["label"],
                                          **options)
    return transform.attach(images.with_format(None))  # a new Dataset: a given source is left as it was


def _open_run(target: str, source: Any, source_revision: str | None, verify_source: bool, verify_images: str,
              cache_dir: str | None, options: dict[str, Any]) -> datasets.Dataset:
    """A local run folder opened map-style, joined to its recorded (or the given) source."""
    config = ReinforceConfig.load(target)
    images = run_source(config, source, revision=source_revision)
    rows, records = open_run_records(target, cache_dir=cache_dir)
    key_name = config.columns.key_name
    options = {**config.replay_options(rows), "label_column": config.columns.label, **options}
    skipped = [int(entry["row"]) for entry in read_manifest(target).get("skipped", [])]
    images, transform = reinforced_images(images, rows, recorded_source(config), key_name, records=records,
                                          verify_source=verify_source, verify_images=verify_images,
                                          skipped_rows=skipped, **options)
    return transform.attach(images.with_format(None))  # a new Dataset: a given source is left as it was


def pushed_files(repo_id: str, split: str, commit: str, meta: dict[str, Any], token: str | None = None
                 ) -> list[str]:
    """The local paths of ``split``'s data files of a pushed repo at ``commit``, in row order, downloaded once into
    the Hub cache (at most :data:`DOWNLOAD_THREADS` at a time), or in ``repo_id`` when it is a local folder of the
    repo's files. Pushes list them in ``hf_dr.json``; for older ones they are the repo's ``data/{split}-*.parquet``
    files, sorted."""
    local = os.path.isdir(repo_id)
    names = meta.get("data_files")
    if not names:
        listed = ([os.path.relpath(os.path.join(d, f), repo_id) for d, _, fs in os.walk(repo_id) for f in fs] if local
                  else HfApi(token=token).list_repo_files(repo_id, repo_type="dataset", revision=commit))
        names = sorted(n for n in listed if n.startswith(f"{DATA_DIR}/{split}-") and n.endswith(".parquet"))
    if not names:
        raise HubNotFoundError(f"the dataset repo {repo_id!r} (revision {commit}) holds no data file of the split "
                               f"{split!r}; push the run again with hf_dr.push_to_hub.")
    if local:
        missing = [name for name in names if not os.path.isfile(os.path.join(repo_id, name))]
        if missing:
            raise HubNotFoundError(f"the folder {repo_id!r} lacks {len(missing)} data file(s) of its split {split!r} "
                                   f"(first: {missing[0]}): download the repo whole "
                                   "(huggingface_hub.snapshot_download), or load it from the Hub.")
        return [os.path.join(repo_id, name) for name in names]

    def download(name: str) -> str:
        return hf_hub_download(repo_id, name, repo_type="dataset", revision=commit, token=token)

    with ThreadPoolExecutor(min(DOWNLOAD_THREADS, len(names))) as pool:
        return list(pool.map(download, names))


def _recorded(meta: dict[str, Any], run: ReinforceConfig) -> dict[str, Any]:
    """The recorded source of a metadata-only push, with the key source the run used (old pushes' ``hf_dr.json``
    has none)."""
    return {**meta["source"], **run.columns.source_view()}


def _stream(repo_id: str, split: str, commit: str, meta: dict[str, Any], run: ReinforceConfig, source: Any,
            source_revision: str | None, verify_images: str, cache_dir: str | None, token: str | None,
            transform_options: dict[str, Any]) -> ReinforcedIterableDataset:
    """A pushed repo streamed: both sides of a metadata-only repo zipped in the run's row order."""
    columns = meta["columns"]
    reinforced = datasets.load_dataset(repo_id, split=split, revision=commit, cache_dir=cache_dir, token=token,
                                       streaming=True)
    options = {**run.replay_options(reinforced.features), **transform_options}
    if meta["layout"] == SELF_CONTAINED:
        reinforced = pushed_stream(repo_id, commit, meta, reinforced, token)
        names = {"image_column": columns["image"], "key_column": columns["key"], "label_column": columns["label"],
                 "reinforcements_column": columns["reinforcements"]}
        table = empty_reinforcements(reinforced.features, columns["key"], columns["reinforcements"])
        transform = ReinforcedTransform(table, **names, verify_images=verify_images, **options)
        return stream_replay(reinforced, transform, columns["image"], columns["key"], columns["reinforcements"])
    images = _source_dataset(meta["source"], source, source_revision, True, cache_dir, token)
    recorded = _recorded(meta, run)
    table = empty_reinforcements(reinforced.features, columns["key"], columns["reinforcements"])
    transform = ReinforcedTransform(table, key_column=columns["key"], label_column=columns["label"], **options)
    keys = _keyed_stream(images, recorded)
    digests = DIGEST_COLUMN if verify_images != "off" and DIGEST_COLUMN in reinforced.column_names else None
    fix = (f"Load {recorded_version(recorded)}, or load map-style (streaming=False), which joins the rows by key "
           "and drops extra ones with verify_source=False.")
    given_is_recorded = source is None and source_revision in (None, recorded["revision"])
    split_parts = stream_parts(repo_id, commit, meta, keys, given_is_recorded, token)  # keys resharded to match
    return zip_records(split_parts.source if split_parts else keys, reinforced, transform, recorded["image_column"],
                       STREAM_KEY, columns["key"], columns["reinforcements"], meta.get("skipped_rows", []), digests,
                       fix, split_parts and split_parts[:2])


# -- the source of a metadata-only repo -----------------------------------------------------------------------------
def _source_dataset(recorded: dict[str, Any], source: Any, source_revision: str | None, streaming: bool,
                    cache_dir: str | None, token: str | None) -> datasets.Dataset | datasets.IterableDataset:
    """The images: the given dataset, a given id or path, or the recorded repo at its pinned revision."""
    if isinstance(source, (datasets.Dataset, datasets.IterableDataset)):
        return source.to_iterable_dataset() if streaming and isinstance(source, datasets.Dataset) else source
    ident = source or recorded["id"]
    revision = source_revision or (recorded["revision"] if source is None else None)
    if os.path.exists(ident):
        local = load_source(ident, split=recorded["split"])
        return local.to_iterable_dataset() if streaming else local
    try:
        return datasets.load_dataset(ident, split=recorded["split"], revision=revision, cache_dir=cache_dir,
                                     token=token, streaming=streaming)
    except (DatasetNotFoundError, RepositoryNotFoundError, RevisionNotFoundError, FileNotFoundError) as err:
        raise HubNotFoundError(
            f"cannot load the source {ident!r} (revision {revision}, split {recorded['split']!r}) of this reinforced "
            f"dataset: {err}. Check your access to it (log in, accept its terms), or pass source= with a local copy."
        ) from err


def _keyed_stream(images: datasets.IterableDataset, recorded: dict[str, Any]) -> datasets.IterableDataset:
    """The streamed source with its keys in :data:`STREAM_KEY`, recomputed as the run made them."""
    if images.features is None:  # e.g. after a user's .map(): infer them from the first rows to know the columns
        images = images._resolve_features()
    check_source_columns(images, recorded)
    image_column, feature = recorded["image_column"], images.features[recorded["image_column"]]
    if not isinstance(feature, datasets.Image):
        raise InvalidConfigError(f"column {image_column!r} of the source stream holds {feature!r}, not images")
    undecoded = images.cast_column(image_column, datasets.Image(decode=False))
    features = datasets.Features({**undecoded.features, STREAM_KEY: datasets.Value("string")})
    keys = StreamKeys(image_column, recorded["key_column"], recorded["key_source"], {}, changed_fix(recorded))
    return undecoded.map(keys, with_indices=True, features=features).cast_column(image_column, feature)


class StreamKeys:
    """The per-row function giving a streamed source row its key (:data:`STREAM_KEY`) and checking its image digest.

    Args:
        image_column (`str`): the (undecoded) image column.
        key_column (`str`, *optional*): the key column, for ``key_source="column"``.
        key_source (`str`): how the run keyed its rows (:data:`hf_dr.data.keys.KEY_SOURCES`).
        digests (`dict`): the stored image digest of each reinforced key (empty: no check).
        fix (`str`): how to fix a changed image, for the error message.

    Example:
        >>> keys = StreamKeys("image", None, "path", {}, "")
        >>> keys({"image": {"bytes": b"...", "path": "/data/n01440764_10026.JPEG"}}, 0)
        {'hf_dr_key': 'n01440764_10026.JPEG'}
    """

    def __init__(self, image_column: str, key_column: str | None, key_source: str, digests: dict[str, int],
                 fix: str) -> None:
        self.image_column, self.key_column, self.key_source = image_column, key_column, key_source
        self.digests, self.fix = digests, fix

    def __call__(self, row: dict[str, Any], index: int) -> dict[str, str]:
        cell = row[self.image_column]
        if self.key_source == "column":
            key = str(row[self.key_column])
        elif self.key_source == "path":
            if not cell.get("path"):
                raise missing_path(index, self.image_column)
            key = path_key(cell["path"])
        else:
            key = content_key(cell)
        if key in self.digests:
            refuse_changed_image(key, index, "the source", image_digest(cell), self.digests[key], self.fix)
        return {STREAM_KEY: key}
