"""``load_reinforced``: a pushed reinforced dataset, ready to train on, from the Hub.

The repo revision is resolved to one commit first, so ``hf_dr.json``, ``reinforce_config.json`` and the data all come
from the same commit. Self-contained repos load with ``datasets.load_dataset``; metadata-only repos also load the
source recorded in ``hf_dr.json`` (repo id, pinned revision, split) and join the two by key, after checking that
the source holds exactly the reinforced rows. Source keys are recomputed as the run made them (its recorded
``columns["key_source"]``: a key column, the image file's name or a content hash), and the image digests the run
stored are compared with the source's images, so an image that changed under its key is refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import datasets
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hf_dr.data.bundled import bundled_name
from hf_dr.data.keys import (
    DIGEST_SAMPLE_SIZE,
    check_verify_images,
    content_key,
    image_digest,
    missing_path,
    path_key,
    refuse_changed_image,
)
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.data.sources import (
    check_columns,
    check_image_digests,
    image_feature,
    keyed,
    keys_sha256,
    load_source,
    looks_local,
)
from hf_dr.data.streaming import ReinforcedIterableDataset, empty_reinforcements, stream_replay, zip_records
from hf_dr.errors import ConfigConflictError, DataMismatchError, HubNotFoundError, InvalidConfigError
from hf_dr.files import read_json
from hf_dr.generate.loading import default_num_proc
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import CONFIG_FILE
from hf_dr.hub.packing import TARGET_FILE_BYTES
from hf_dr.hub.push import HUB_FORMAT, HUB_META_FILE, SELF_CONTAINED, resolve_revision, split_files
from hf_dr.hub.shards import pushed_stream, stream_parts

MAX_KEYS_SHOWN = 5
STREAM_KEY = "hf_dr_key"  # the column a streamed metadata-only source gets its recomputed keys in


def load_reinforced(
    repo_id: str,
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
    """Loads a dataset pushed by :func:`hf_dr.push_to_hub` with the replay of its reinforcements set.

    Args:
        repo_id (`str`): the reinforced dataset repo.
        split (`str`, *optional*, defaults to ``"train"``): the split.
        revision (`str`, *optional*): a branch, tag or commit id of ``repo_id``; the default branch by default.
        streaming (`bool`, *optional*, defaults to False): return a lazily replayed :class:`ReinforcedIterableDataset`
            (``set_epoch`` advances the choice) instead of a map-style Dataset. Metadata-only, the source and the
            reinforcement files are both streamed and zipped in the run's row order (nothing converted first), each
            row's key checked against the reinforced row's: a source that lost, gained or reordered rows raises at
            that row; with the recorded source, one shard per source data file (per row group of a source of few
            files) the push recorded, else one. Self-contained: at least 8 shards (row ranges). Workers split them.
        source (`str` or `datasets.Dataset`, *optional*): metadata-only layout: the images, as a Hub id, a local
            folder or file, or a loaded dataset; by default the recorded source at its pinned revision.
        source_revision (`str`, *optional*): metadata-only layout: another revision of the source.
        verify_source (`bool`, *optional*, defaults to True): metadata-only layout: refuse a source whose rows are not
            exactly the reinforced ones in the recorded order. With False, extra rows are dropped and the order is
            free (rows are always joined by key); missing keys are refused either way.
        verify_images (`str`, *optional*, defaults to ``"sample"``): metadata-only layout: compare the image digests
            the run stored (runs keyed by a column or by path; a content key is a digest itself) with the source's
            images of the same keys and refuse a changed one: ``"sample"`` reads 64 rows drawn at random up front, then
            every row the first time a process replays it (:class:`hf_dr.data.digests.RowDigests`), ``"full"`` every
            row up front, ``"off"`` none (the soft labels were computed on the recorded images). A stream checks
            every row as it arrives; the self-contained layout checks its rows as they are replayed.
        cache_dir (`str`, *optional*): the ``datasets`` cache.
        token (`str`, *optional*): a Hub token; the logged-in one by default.
        num_proc (`int`, *optional*): processes converting the downloaded files into the ``datasets`` cache, once
            per machine (ImageNet+: minutes in one process); by default one per data file, at most 8 and the CPU count,
            for repos of more than one file (:func:`hf_dr.generate.loading.default_num_proc`).
        transform_options: passed to :class:`hf_dr.ReinforcedTransform` (``size``, ``seed``, ``mean``, ``std``,
            ``data_config``, ``leftover``).

    Returns:
        A `datasets.Dataset` whose rows are ``{"pixel_values", "labels"}`` (call ``hf_dr.set_epoch(ds, e)``
        or the transform's ``set_epoch`` every epoch), or with ``streaming=True`` a :class:`ReinforcedIterableDataset`
        of ``{"key", "pixel_values", "labels"}``.

    Example (4 bundled digits pushed as a source repo, reinforced by a random ``test_resnet``, pushed without their
    images; loading joins the recorded source by key, map-style or streamed):
        >>> import tempfile, safetensors.torch, timm
        >>> from hf_dr import load_reinforced, push_to_hub, reinforce
        >>> from hf_dr.data.bundled import load_bundled
        >>> digits, weights = load_bundled("digits").select(range(4)), tempfile.mkdtemp() + "/teacher.safetensors"
        >>> _ = digits.push_to_hub("me/digits")  # the source, as on the Hub
        >>> safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), weights)
        >>> teacher = {"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}
        >>> run = reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0, output_dir=tempfile.mkdtemp(),
        ...                 key_column="key", source={"id": "me/digits", "split": "train"}, progress=False)
        >>> _ = push_to_hub(run, "me/digits-reinforced", layout="metadata-only")
        >>> train = load_reinforced("me/digits-reinforced", size=32)  # loads me/digits at its pinned commit
        >>> train[0]["pixel_values"].shape, train[0]["labels"].shape
        (torch.Size([3, 32, 32]), torch.Size([10]))
        >>> stream = load_reinforced("me/digits-reinforced", size=32, streaming=True)
        >>> stream.set_epoch(1)  # another stored view of every sample
        >>> sorted(next(iter(stream)))
        ['key', 'labels', 'pixel_values']
        >>> load_reinforced("me/digits-reinforced", source=digits.select([0, 1, 3]), size=32)
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: ...
    """
    check_verify_images(verify_images)
    commit = resolve_revision(HfApi(token=token), repo_id, revision)
    meta, config = read_split_meta(repo_id, split, commit, token)
    columns = meta["columns"]
    files = meta.get("data_files") or []
    if num_proc is None and not streaming:  # packed files of up to TARGET_FILE_BYTES each
        num_proc = default_num_proc(len(files) * TARGET_FILE_BYTES, len(files))
    reinforced = datasets.load_dataset(repo_id, split=split, revision=commit, cache_dir=cache_dir, token=token,
                                       streaming=streaming, num_proc=None if streaming else num_proc)
    run = ReinforceConfig(**config)  # checked against the data's fingerprint by read_split_meta
    options = {**run.replay_options(reinforced), **transform_options}  # none: the data carries its policy and classes
    if meta["layout"] == SELF_CONTAINED:
        reinforced = pushed_stream(repo_id, commit, meta, reinforced, token) if streaming else reinforced
        return _self_contained(reinforced, columns, streaming, {**options, "verify_images": verify_images})
    images = _source_dataset(meta["source"], source, source_revision, streaming, cache_dir, token)
    transform_columns = {"key_column": columns["key"], "label_column": columns["label"]}
    recorded = {**meta["source"], **run.columns.source_view()}  # old pushes' hf_dr.json has no key_source
    image_column = recorded["image_column"]
    if streaming:  # both sides streamed, zipped in the run's row order
        table = empty_reinforcements(reinforced.features, columns["key"], columns["reinforcements"])
        transform = ReinforcedTransform(table, **transform_columns, **options)
        keys = _keyed_stream(images, recorded)
        digests = DIGEST_COLUMN if verify_images != "off" and DIGEST_COLUMN in reinforced.column_names else None
        fix = (f"Load {_recorded_version(recorded)}, or load map-style (streaming=False), which joins the rows by key "
               "and drops extra ones with verify_source=False.")
        recorded_source = source is None and source_revision in (None, recorded["revision"])
        split = stream_parts(repo_id, commit, meta, keys, recorded_source, token)  # keys resharded to match
        return zip_records(split.source if split else keys, reinforced, transform, image_column, STREAM_KEY,
                           columns["key"], columns["reinforcements"], meta.get("skipped_rows", []), digests, fix,
                           split and split[:2])
    images = _matched_source(images, reinforced, recorded, columns["key"], verify_source, verify_images)
    transform = ReinforcedTransform(reinforced, images=images, image_column=image_column, **transform_columns,
                                    verify_images=verify_images, **options)
    return transform.attach(images)


def read_split_meta(repo_id: str, split: str, commit: str, token: str | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``hf_dr.json`` and ``reinforce_config.json`` of ``split`` at ``commit``: the root files are the last pushed
    split's, other splits have theirs under ``splits/{split}/``; a split the repo does not hold, or a config that is
    not the run its data came from, is refused."""
    meta_file, config_file = HUB_META_FILE, CONFIG_FILE  # the last pushed split's
    meta = read_repo_json(repo_id, meta_file, commit, token)
    if meta.get("split") != split:  # another split: its own files, where the repo has them
        with contextlib.suppress(HubNotFoundError):
            meta = read_repo_json(repo_id, split_files(split)[0], commit, token)
            meta_file, config_file = split_files(split)
    _check_meta(meta, repo_id, split)
    config = read_repo_json(repo_id, config_file, commit, token)
    _check_config(meta, config, repo_id, commit)
    return meta, config


def reinforced_repo(repo_id: str, split: str = "train", revision: str | None = None, token: str | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``hf_dr.json`` and ``reinforce_config.json`` of ``split`` of ``repo_id`` if hf-dr pushed it, None for a plain
    dataset or no dataset repo: training entry points ask it first, so a reinforced repo never trains plainly.

    Example:
        >>> reinforced_repo("digits") is None  # a bundled dataset's name: no Hub repo is asked
        True
    """
    if os.path.exists(repo_id) or looks_local(repo_id) or bundled_name(repo_id) is not None or "/" not in repo_id:
        return None
    if constants.HF_HUB_OFFLINE:  # only the cache can tell: a repo loaded reinforced before has hf_dr.json there
        try:
            meta = read_json(hf_hub_download(repo_id, HUB_META_FILE, repo_type="dataset", revision=revision,
                                             token=token))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None
        return meta, read_json(hf_hub_download(repo_id, CONFIG_FILE, repo_type="dataset", revision=revision,
                                               token=token))
    try:  # a network error propagates: guessing "plain" would train on the wrong targets
        commit = resolve_revision(HfApi(token=token), repo_id, revision)
        meta = read_repo_json(repo_id, HUB_META_FILE, commit, token)
    except HubNotFoundError:  # no such dataset repo, or one without hf_dr.json: not an hf-dr push
        return None
    if meta.get("format") != HUB_FORMAT:
        return None
    return read_split_meta(repo_id, split, commit, token)


def read_repo_json(repo_id: str, filename: str, revision: str, token: str | None = None) -> dict[str, Any]:
    """A JSON file of a dataset repo at ``revision``; :class:`HubNotFoundError` if the repo has no such file."""
    try:
        path = hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision, token=token)
    except EntryNotFoundError as err:  # LocalEntryNotFoundError is one: not reached, not missing
        if isinstance(err, LocalEntryNotFoundError):
            raise
        raise HubNotFoundError(
            f"the dataset repo {repo_id!r} (revision {revision}) has no {filename}: it was not pushed by "
            "hf_dr.push_to_hub. Load it with datasets.load_dataset, or reinforce and push it with hf-dr."
        ) from err
    return read_json(path)


def _check_meta(meta: dict[str, Any], repo_id: str, split: str) -> None:
    if meta.get("format") != HUB_FORMAT:
        raise HubNotFoundError(f"{HUB_META_FILE} of {repo_id!r} is not an hf-dr file (format {meta.get('format')!r})")
    if meta["split"] != split:
        raise InvalidConfigError(f"{repo_id!r} holds the reinforced split {meta['split']!r}, not {split!r}; pass "
                                 f"split={meta['split']!r}.")


def _check_config(meta: dict[str, Any], config: dict[str, Any], repo_id: str, commit: str) -> None:
    """Refuses a repo whose ``reinforce_config.json`` is not the run its data came from (``run_fingerprint`` in
    ``hf_dr.json``; repos pushed before it was recorded are not checked)."""
    recorded = meta.get("run_fingerprint")
    if recorded is None:
        return
    try:
        fingerprint = ReinforceConfig(**config).fingerprint()
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigConflictError(f"{CONFIG_FILE} of {repo_id!r} (revision {commit}) is not a hf-dr reinforce config "
                                  f"({err}); push the run again with hf_dr.push_to_hub.") from err
    if fingerprint != recorded:
        raise ConfigConflictError(
            f"{CONFIG_FILE} of {repo_id!r} (revision {commit}, fingerprint {fingerprint[:12]}...) is not the "
            f"configuration its data was made with ({HUB_META_FILE} records {str(recorded)[:12]}...): the repo mixes "
            "two runs' files. Push the run again with hf_dr.push_to_hub, or load a revision that was pushed whole."
        )


def _self_contained(reinforced: datasets.Dataset | datasets.IterableDataset, columns: dict[str, Any],
                    streaming: bool, options: dict[str, Any]) -> datasets.Dataset | ReinforcedIterableDataset:
    names = {"image_column": columns["image"], "key_column": columns["key"], "label_column": columns["label"],
             "reinforcements_column": columns["reinforcements"]}
    if streaming:
        table = empty_reinforcements(reinforced.features, columns["key"], columns["reinforcements"])
        transform = ReinforcedTransform(table, **names, **options)
        return stream_replay(reinforced, transform, columns["image"], columns["key"], columns["reinforcements"])
    return ReinforcedTransform(reinforced, **names, **options).attach(reinforced)


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


def _matched_source(images: datasets.Dataset, reinforced: datasets.Dataset, recorded: dict[str, Any],
                    key_name: str, verify_source: bool, verify_images: str) -> datasets.Dataset:
    """``images`` checked against the reinforced keys and image digests, with a key column; extra rows dropped when
    not verifying."""
    image_column, key_column, key_source = recorded["image_column"], recorded["key_column"], recorded["key_source"]
    _check_source_columns(images, recorded)
    image_feature(images, image_column)
    images, keys = keyed(images, image_column, key_column, key_source, key_name)
    keep = check_source_keys(keys, reinforced.data.column(key_name).to_pylist(), recorded, verify_source)
    check_image_digests(images, image_column, keys, reinforced, key_name, verify_images, "the source",
                        _changed_fix(recorded))
    return images.select(keep) if keep is not None else images


def _check_source_columns(images: datasets.Dataset | datasets.IterableDataset, recorded: dict[str, Any]) -> None:
    key_column = recorded["key_column"] if recorded["key_source"] == "column" else None
    fix = (f"The run read these columns: load {_recorded_version(recorded)}, or pass source= with the dataset that "
           "was reinforced.")
    check_columns(images, role="source", fix=fix, image_column=recorded["image_column"], key_column=key_column)


def _recorded_version(recorded: dict[str, Any]) -> str:
    return f"the recorded version ({recorded.get('id')} at revision {recorded.get('revision')})"


def _changed_fix(recorded: dict[str, Any]) -> str:
    return (f"Load {_recorded_version(recorded)}, or pass source= with the dataset that was reinforced "
            f"(verify_images='sample' reads {DIGEST_SAMPLE_SIZE} random rows up front and every row when it is first "
            "replayed, verify_images='full' every row up front; verify_images='off' accepts changed images).")


def _keyed_stream(images: datasets.IterableDataset, recorded: dict[str, Any]) -> datasets.IterableDataset:
    """The streamed source with its keys in :data:`STREAM_KEY`, recomputed as the run made them."""
    if images.features is None:  # e.g. after a user's .map(): infer them from the first rows to know the columns
        images = images._resolve_features()
    _check_source_columns(images, recorded)
    image_column, feature = recorded["image_column"], images.features[recorded["image_column"]]
    if not isinstance(feature, datasets.Image):
        raise InvalidConfigError(f"column {image_column!r} of the source stream holds {feature!r}, not images")
    undecoded = images.cast_column(image_column, datasets.Image(decode=False))
    features = datasets.Features({**undecoded.features, STREAM_KEY: datasets.Value("string")})
    keys = StreamKeys(image_column, recorded["key_column"], recorded["key_source"], {}, _changed_fix(recorded))
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


def check_source_keys(keys: Sequence[str], reinforced_keys: Sequence[str], recorded: dict[str, Any],
                      verify_source: bool = True) -> list[int] | None:
    """Checks a source's keys against the reinforced ones; returns the rows to keep (None: all).

    Missing keys are always refused (:class:`DataMismatchError` naming a few and their count). Extra rows and a
    different order are refused when ``verify_source``: the source is then not the version that was reinforced.

    Example:
        >>> recorded = {"id": "me/src", "revision": "abc", "num_rows": 2, "keys_sha256": keys_sha256(["a", "b"])}
        >>> check_source_keys(["b", "a"], ["a", "b"], recorded, verify_source=False) is None
        True
        >>> check_source_keys(["a"], ["a", "b"], recorded)
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: the source lacks 1 of the 2 reinforced keys (first: ['b'])...
    """
    present = set(keys)
    missing = [key for key in reinforced_keys if key not in present]
    where = _recorded_version(recorded)
    if missing:
        raise DataMismatchError(
            f"the source lacks {len(missing)} of the {len(reinforced_keys)} reinforced keys (first: "
            f"{missing[:MAX_KEYS_SHOWN]}): it lost rows or is another version. Load {where}, or pass source= with the "
            "dataset that was reinforced."
        )
    reinforced_set = set(reinforced_keys)
    extra = [row for row, key in enumerate(keys) if key not in reinforced_set]
    if extra and verify_source:
        raise DataMismatchError(
            f"the source has {len(extra)} rows that were not reinforced (first keys: "
            f"{[keys[row] for row in extra[:MAX_KEYS_SHOWN]]}): it is not {where}, or the run reinforced only some "
            "of its rows (--limit). Load that version, or pass verify_source=False to train on the reinforced rows "
            "only."
        )
    if verify_source and recorded.get("keys_sha256") and keys_sha256(keys) != recorded["keys_sha256"]:
        raise DataMismatchError(
            f"the source holds the reinforced keys in another order than the run read (SHA-256 of its keys "
            f"{keys_sha256(keys)[:12]}..., recorded {recorded['keys_sha256'][:12]}...): it is not {where}. Rows are "
            "joined by key, so training stays correct: pass verify_source=False to accept the new order, or load the "
            "recorded version."
        )
    return [row for row, key in enumerate(keys) if key in reinforced_set] if extra else None
