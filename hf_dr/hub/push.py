"""Publishing a reinforcement run on the Hugging Face Hub: :func:`push_to_hub` and the repo layout it writes.

A pushed repo holds::

    README.md                                  dataset card (YAML: license, tags, configs, dataset_info; prose)
    hf_dr.json                                 layout, split, columns and the source (id, pinned revision, keys)
    reinforce_config.json                      the run's configuration (policy, N, k, seed, teacher and hashes)
    data/{split}-00000-of-0000N.parquet        one file per shard of the run, zstd Parquet with the features
    assets/teacher_confidence.png              figures shown by the card

in one of two layouts:

- ``self-contained``: every row holds the image, label, key and its N reinforcements (for redistributable data);
  ``datasets.load_dataset(repo_id)`` gives a Dataset :class:`hf_dr.ReinforcedTransform` works on directly.
- ``metadata-only``: rows hold the key, label and reinforcements only (for data such as ImageNet whose images cannot
  be redistributed); :func:`hf_dr.load_reinforced` loads the source recorded in ``hf_dr.json`` and joins by key.

Files are written deterministically, so pushing the same run again uploads nothing (the client skips files whose
hash the repo already has) and a changed card uploads only the card.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from hf_dr.data.description import public_paths
from hf_dr.data.keys import KeyIndex, bytes_digest, refuse_changed_image, resolve_key_source
from hf_dr.data.schema import DIGEST_COLUMN, KEY_COLUMN, REINFORCEMENTS_COLUMN
from hf_dr.data.sources import image_feature, keys_sha256, load_source, scan_keys
from hf_dr.errors import DataMismatchError, HubNotFoundError, IncompleteRunError, InvalidConfigError
from hf_dr.files import write_atomic, write_json_atomic
from hf_dr.generate.parquet import write_parquet
from hf_dr.generate.recipe import LAYOUTS, METADATA_ONLY, SELF_CONTAINED
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import CONFIG_FILE, verify_run

logger = logging.getLogger(__name__)

HUB_META_FILE = "hf_dr.json"
HUB_FORMAT = "hf-dr-hub"
HUB_FORMAT_VERSION = 1
DATA_DIR = "data"
ASSETS_DIR = "assets"
IMAGE_COMPRESSION_LEVEL = 3  # images are already compressed; zstd 19 on them costs minutes and saves nothing
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")




# -- public API -----------------------------------------------------------------------------------------------------
def push_to_hub(
    output_dir: str,
    repo_id: str,
    *,
    layout: str = SELF_CONTAINED,
    dataset: datasets.Dataset | None = None,
    split: str | None = None,
    source_id: str | None = None,
    source_revision: str | None = None,
    license: str | None = None,
    pretty_name: str | None = None,
    generation_cost: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Uploads a finished reinforcement run to the dataset repo ``repo_id`` with its dataset card.

    Args:
        output_dir (`str`): the folder :func:`hf_dr.reinforce` wrote; refused unless its manifest and checksums hold.
        repo_id (`str`): ``"org/name"`` of the dataset repo (created if needed).
        layout (`str`, *optional*, defaults to ``"self-contained"``): ``"self-contained"`` (rows carry the images)
            or ``"metadata-only"`` (keys and reinforcements; the images stay in the source repo).
        dataset (`datasets.Dataset`, *optional*): the source rows, for the self-contained layout; by default the
            source recorded by the run is loaded. Rows are matched to reinforcements by key, never by position.
        split (`str`, *optional*): the split name; defaults to the reinforced source split, else ``"train"``.
        source_id (`str`, *optional*): the source's Hub id, when the run did not record it (metadata-only).
        source_revision (`str`, *optional*): the source revision the run read; pinned to its commit.
        license (`str`, *optional*): the card's license; defaults to the source repo's, else ``"unknown"``.
        pretty_name (`str`, *optional*): the card's title.
        generation_cost (`str`, *optional*): what the run cost, e.g. ``"3.1 GPU-hours on one H100"``.
        private (`bool`, *optional*): visibility of a newly created repo.
        commit_message (`str`, *optional*): the commit message.
        token (`str`, *optional*): a Hub token; the logged-in one by default.

    Returns:
        `str`: the commit id of the repo after the push (the existing head when nothing changed).

    Example:
        >>> from hf_dr import push_to_hub, load_reinforced
        >>> push_to_hub("reinforced/", "me/cifar100-plus")  # doctest: +SKIP
        >>> push_to_hub("imagenet-run/", "me/imagenet-plus", layout="metadata-only")  # doctest: +SKIP
        >>> train = load_reinforced("me/cifar100-plus", split="train", size=32)  # doctest: +SKIP
    """
    if layout not in LAYOUTS:
        raise InvalidConfigError(f"layout should be one of {list(LAYOUTS)}, but got {layout!r} instead.")
    manifest = verify_run(output_dir)
    config = _run_config(output_dir)
    api = HfApi(token=token)
    source = source_reference(config, layout, split, source_id, source_revision, api)
    card_options = {"license": license or _source_license(api, source), "pretty_name": pretty_name,
                    "generation_cost": generation_cost}
    with tempfile.TemporaryDirectory(prefix="hf-dr-push-") as staging:
        shard_paths = [os.path.join(output_dir, record["path"]) for record in manifest["shards"]]
        skipped = {entry["key"] for entry in manifest.get("skipped", [])}
        if layout == SELF_CONTAINED:
            dataset = dataset if dataset is not None else _load_recorded_source(source, config)
            data_files = _write_self_contained(staging, shard_paths, dataset, config, source["split"], skipped)
        else:
            data_files = _write_metadata_only(staging, shard_paths, source["split"], config, skipped)
        meta = hub_metadata(layout, source["split"], config, source, data_files)
        write_json_atomic(os.path.join(staging, HUB_META_FILE), meta)
        write_json_atomic(os.path.join(staging, CONFIG_FILE), public_config(config))
        _write_card(staging, repo_id, meta, config, shard_paths, manifest, card_options)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=staging, repo_id=repo_id, repo_type="dataset",
            commit_message=commit_message or f"Upload reinforced {source['split']} split ({layout}) with hf-dr",
            delete_patterns=[f"{DATA_DIR}/*", f"{ASSETS_DIR}/*"],  # a new run may have fewer shards
        )
    return commit.oid


def source_reference(config: ReinforceConfig, layout: str, split: str | None = None, source_id: str | None = None,
                     source_revision: str | None = None, api: HfApi | None = None) -> dict[str, Any]:
    """Where the reinforced rows came from, as recorded in ``hf_dr.json``.

    For the metadata-only layout the source must be a Hub repo and its revision is pinned to a commit id.
    """
    recorded = config.dataset
    ident = source_id or recorded.get("id")
    revision = source_revision or recorded.get("revision")
    if layout == METADATA_ONLY:
        if not ident or os.path.exists(ident):
            raise InvalidConfigError(
                f"the metadata-only layout needs the source's Hub repo id, but the run recorded {ident!r}: pass "
                "source_id= (--source-id) and source_revision= (--revision) of the dataset that was reinforced."
            )
        revision = pin_revision(api or HfApi(), ident, revision)
    elif ident and os.path.exists(ident):
        ident, revision = None, None  # a local path means nothing to others (and may be private)
    columns = config.columns
    return {
        "id": ident, "revision": revision, "split": split or recorded.get("split") or "train",
        "image_column": columns.get("image", "image"), "label_column": columns.get("label"),
        "key_column": columns.get("key"),
        "key_source": resolve_key_source(columns.get("key"), columns.get("key_source")),  # column, content or path
        "num_rows": recorded.get("num_rows"),
        "keys_sha256": recorded.get("keys_sha256"), "fingerprint": recorded.get("fingerprint"),
    }


def pin_revision(api: HfApi, repo_id: str, revision: str | None) -> str:
    """The commit id of ``revision`` (a branch, tag or commit) of the dataset repo ``repo_id``."""
    if revision and _COMMIT_SHA.match(revision):
        return revision
    sha = resolve_revision(api, repo_id, revision)
    logger.warning(
        "The run recorded source revision %r of %s, pinned now to commit %s. If that branch moved since the run, pass "
        "the commit the run read (source_revision=).", revision or "main", repo_id, sha,
    )
    return sha


def resolve_revision(api: HfApi, repo_id: str, revision: str | None) -> str:
    """The commit id of a dataset repo revision; :class:`HubNotFoundError` naming the repo or revision and the fix."""
    try:
        return api.dataset_info(repo_id, revision=revision).sha
    except RevisionNotFoundError as err:
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
        names = [ref.name for ref in [*refs.branches, *refs.tags]]
        raise HubNotFoundError(
            f"revision {revision!r} does not exist in the dataset repo {repo_id!r}; its branches and tags are "
            f"{names}. Pass one of them or a commit id."
        ) from err
    except RepositoryNotFoundError as err:
        raise HubNotFoundError(
            f"no dataset repo {repo_id!r} on {api.endpoint} (or the token cannot read it): check the id, and log in "
            "(`hf auth login` or token=) for a private or gated repo."
        ) from err


def hub_metadata(layout: str, split: str, config: ReinforceConfig, source: dict[str, Any],
                 data_files: Sequence[str]) -> dict[str, Any]:
    """The content of ``hf_dr.json``: what a loader needs besides ``reinforce_config.json``."""
    columns = config.columns
    return {
        "format": HUB_FORMAT, "format_version": HUB_FORMAT_VERSION, "layout": layout, "split": split,
        "columns": {"image": columns.get("image", "image") if layout == SELF_CONTAINED else None,
                    "label": columns.get("label"), "key": columns.get("key") or KEY_COLUMN,
                    "reinforcements": REINFORCEMENTS_COLUMN},
        "num_rows": config.dataset.get("num_rows"), "source": source, "data_files": list(data_files),
        "run_fingerprint": config.fingerprint(),  # binds the data to reinforce_config.json (checked on load)
    }


def public_config(config: ReinforceConfig) -> dict[str, Any]:
    """The run's config as published: local weight and dataset paths are cut to their file names."""
    return public_paths(config.to_dict())


# -- run and source -------------------------------------------------------------------------------------------------
def _run_config(output_dir: str) -> ReinforceConfig:
    config = ReinforceConfig.load(output_dir)
    if config is None:
        raise IncompleteRunError(f"{output_dir!r} has a manifest but no {CONFIG_FILE}; restore it or rerun the run.")
    return config


def _load_recorded_source(source: dict[str, Any], config: ReinforceConfig) -> datasets.Dataset:
    ident = source["id"] or config.dataset.get("id")
    if not ident:
        raise InvalidConfigError(
            "the self-contained layout needs the source images, and the run recorded no dataset id or path: pass "
            "dataset= (--dataset) with the dataset that was reinforced."
        )
    return load_source(ident, split=source["split"], revision=source["revision"] or config.dataset.get("revision"))


def _source_license(api: HfApi, source: dict[str, Any]) -> str:
    if not source["id"]:
        return "unknown"
    try:
        card_data = api.dataset_info(source["id"], revision=source["revision"]).card_data
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return "unknown"
    license = card_data.get("license") if card_data is not None else None
    return license or "unknown"


# -- data files -----------------------------------------------------------------------------------------------------
def data_file_name(split: str, index: int, count: int) -> str:
    """``data/{split}-{index:05d}-of-{count:05d}.parquet``, the naming ``datasets.push_to_hub`` uses.

    Example:
        >>> data_file_name("train", 0, 3)
        'data/train-00000-of-00003.parquet'
    """
    return f"{DATA_DIR}/{split}-{index:05d}-of-{count:05d}.parquet"


def _write_metadata_only(staging: str, shard_paths: Sequence[str], split: str, config: ReinforceConfig,
                         skipped: set[str]) -> list[str]:
    """The run's shards as they are (already compact, with features metadata), under the hub names; a shard holding
    rows the run skipped (undecodable images, listed in the manifest) is rewritten without them."""
    names = [data_file_name(split, i, len(shard_paths)) for i in range(len(shard_paths))]
    os.makedirs(os.path.join(staging, DATA_DIR))
    key_name = config.columns.get("key") or KEY_COLUMN
    for path, name in zip(shard_paths, names, strict=True):
        target = os.path.join(staging, name)
        table = pq.read_table(path) if skipped else None
        kept = _without_skipped(table, key_name, skipped) if table is not None else None
        if kept is None or kept.num_rows == table.num_rows:
            write_atomic(target, lambda temporary, source=path: shutil.copyfile(source, temporary))
        else:
            write_parquet(kept, target)
    return names


def _without_skipped(table: pa.Table, key_name: str, skipped: set[str]) -> pa.Table:
    """``table`` without the rows whose key the run skipped (they hold no records: nothing to train on)."""
    if not skipped:
        return table
    return table.filter(pc.invert(pc.is_in(table.column(key_name), value_set=pa.array(sorted(skipped)))))


def _write_self_contained(staging: str, shard_paths: Sequence[str], dataset: datasets.Dataset,
                          config: ReinforceConfig, split: str, skipped: set[str] = frozenset()) -> list[str]:
    """One file per run shard: the source rows' images joined by key with the shard's key, label and records (rows
    the run skipped left out)."""
    image_column, key_column = config.columns.get("image", "image"), config.columns.get("key")
    key_name = key_column or KEY_COLUMN
    index = _key_index(dataset, image_column, key_column, config)
    _refuse_missing(shard_paths, key_name, index)
    feature = image_feature(dataset, image_column)
    images = dataset.select_columns([image_column]).with_format("arrow")
    os.makedirs(os.path.join(staging, DATA_DIR))
    names = []
    for i, path in enumerate(shard_paths):
        table = _without_skipped(pq.read_table(path), key_name, skipped)
        rows = [index.row(key) for key in table.column(key_name).to_pylist()]
        storage = images[rows].column(image_column).combine_chunks()
        features = datasets.Features({image_column: feature, **datasets.Features.from_arrow_schema(table.schema)})
        embedded = feature.embed_storage(storage)
        _refuse_changed(table, key_name, rows, embedded)
        combined = pa.Table.from_arrays([embedded, *table.columns], schema=features.arrow_schema)
        names.append(data_file_name(split, i, len(shard_paths)))
        write_parquet(combined, os.path.join(staging, names[-1]), compression_level=IMAGE_COMPRESSION_LEVEL)
    return names


def _key_index(dataset: datasets.Dataset, image_column: str, key_column: str | None,
               config: ReinforceConfig) -> KeyIndex:
    keys = scan_keys(dataset, image_column, key_column, config.columns.get("key_source"))
    if keys_sha256(keys) != config.dataset.get("keys_sha256"):
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


def _dataset_info(staging: str, data_files: Sequence[str], split: str) -> datasets.DatasetInfo:
    """Features, row count and sizes of the written files, for the card's ``dataset_info``."""
    files = [pq.ParquetFile(os.path.join(staging, name)) for name in data_files]
    features = datasets.Features.from_arrow_schema(files[0].schema_arrow)
    num_rows = sum(f.metadata.num_rows for f in files)
    num_bytes = sum(f.metadata.row_group(g).total_byte_size for f in files for g in range(f.metadata.num_row_groups))
    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=num_rows))
    download_size = sum(os.path.getsize(os.path.join(staging, name)) for name in data_files)
    return datasets.DatasetInfo(features=features, splits=splits, download_size=download_size, dataset_size=num_bytes)


def _write_card(staging: str, repo_id: str, meta: dict[str, Any], config: ReinforceConfig,
                shard_paths: Sequence[str], manifest: dict[str, Any], options: dict[str, Any]) -> None:
    """``README.md`` and the figures it shows, from the staged data files and the run's shards."""
    from hf_dr.hub.card import build_card, reinforcement_stats, save_figures  # matplotlib and jinja only when pushing

    stats = reinforcement_stats(shard_paths, manifest, config)
    figures = save_figures(staging, meta["data_files"], stats, config, meta["layout"])
    info = _dataset_info(staging, meta["data_files"], meta["split"])
    card = build_card(repo_id, meta, public_config(config), stats, figures, info, **options)
    write_atomic(os.path.join(staging, "README.md"), card.save)
