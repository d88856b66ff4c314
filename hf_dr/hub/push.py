"""Publishing a reinforcement run on the Hugging Face Hub: :func:`push_to_hub` and the repo layout it writes.

A pushed repo holds::

    README.md                                  dataset card (YAML: license, tags, configs, dataset_info; prose)
    hf_dr.json                                 layout, split, columns and the source (id, pinned revision, keys)
    reinforce_config.json                      the run's configuration (policy, N, k, seed, teacher and hashes)
    splits/{split}/hf_dr.json                  each split's own copies of the two (the root ones: the last pushed)
    splits/{split}/reinforce_config.json
    data/{split}-00000-of-0000N.parquet        the run's rows in order, packed into files of a few hundred MB
    assets/teacher_confidence.png              figures shown by the card

in one of two layouts:

- ``self-contained``: every row holds the image, label, key and its N reinforcements (for redistributable data);
  ``datasets.load_dataset(repo_id)`` gives a Dataset :class:`hf_dr.ReinforcedTransform` works on directly.
- ``metadata-only``: rows hold the key, label and reinforcements only (for data such as ImageNet whose images cannot
  be redistributed); :func:`hf_dr.load_reinforced` loads the source recorded in ``hf_dr.json`` and joins by key.

Data files: the run's shards are streamed, one at a time, into files of a few hundred MB, 1 or a multiple of 8 (see
:mod:`hf_dr.hub.packing`), written in parallel processes (:mod:`hf_dr.hub.build`). Uploads: each data file is uploaded
(``HfApi.preupload_lfs_files``) as soon as it is written and then deleted (about ``num_proc + 1`` on disk at once);
one ``create_commit`` then adds them with the card and JSON files and deletes the files of this split and the
``assets/`` files the push no longer has. Like ``Dataset.push_to_hub``, the repo's other splits are kept (their files,
and their entries in the card's ``configs`` and ``dataset_info``); a split whose columns differ from theirs (another
layout) is refused. Files are written deterministically (whatever ``num_proc``), and the run's build record says
which files the repo already holds from the same inputs: pushing the same run again writes and uploads no data file
(no commit is made), and a changed card uploads only the card. Everything that can be refused (an incomplete run,
missing or changed source images) is refused before the repo is created or anything is uploaded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from hf_dr.data.bundled import bundled_name
from hf_dr.data.description import public_paths
from hf_dr.data.sources import check_split, load_source
from hf_dr.errors import HubNotFoundError, IncompleteRunError, InvalidConfigError
from hf_dr.files import write_atomic, write_json_atomic
from hf_dr.generate.builder import LAYOUTS, METADATA_ONLY, SELF_CONTAINED
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import CONFIG_FILE, verify_run
from hf_dr.hub.build import (
    BuildRecord,
    WrittenFile,
    default_num_proc,
    plan_jobs,
    push_data_files,
    shards_digest,
    source_identity,
)
from hf_dr.hub.packing import (  # noqa: F401  (data_file_name, DATA_DIR: this module's names before packing.py)
    DATA_DIR,
    SourceImages,
    data_file_name,
    file_schema,
    plan_files,
    read_shards,
)
from hf_dr.hub.shards import source_data_files
from hf_dr.hub.upload import (
    RepoGuard,
    check_auth,
    check_repo_id,
    commit_once,
    read_target,
    run_locked,
    staging_folder,
    with_retries,
)

logger = logging.getLogger(__name__)

HUB_META_FILE = "hf_dr.json"
HUB_FORMAT = "hf-dr-hub"
HUB_FORMAT_VERSION = 1
IMAGE_COMPRESSION_LEVEL = 3  # images are already compressed; zstd 19 on them costs minutes and saves nothing
# metadata-only files: zstd 3, chosen by benchmarks/push_cost.py (docs/push.md): the whole push of ImageNet+ in
# 11-14 CPU-minutes for 1.06x the bytes of level 19, which costs 6-10 ms per N=400 row of one core (2+ CPU-hours)
DATA_COMPRESSION_LEVEL = 3
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# the licences of hf_dr.data.bundled's datasets: UCI's digits, Zalando's Fashion-MNIST, shapes drawn by hf-dr
BUNDLED_LICENSES = {"digits": "cc-by-4.0", "fashion-mnist": "mit", "shapes": "apache-2.0"}


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
    compression_level: int = DATA_COMPRESSION_LEVEL,
    branch: str | None = None,
    create_pr: bool = False,
    num_proc: int | None = None,
) -> str:
    """Uploads a finished reinforcement run to the dataset repo ``repo_id`` with its dataset card.

    The run's rows are packed into data files of a few hundred MB (:mod:`hf_dr.hub.packing`), each uploaded as soon
    as it is written and deleted once uploaded; one commit then adds them with the card and removes what an earlier
    push of the same split left that this one does not write. Like ``Dataset.push_to_hub``, the repo's other splits
    are kept: their data files stay and the card's ``configs`` and ``dataset_info`` list them with this one.

    The token is checked (``whoami``) once the run's manifest holds, before any other Hub request, image check or
    packing; the run folder is locked against ``hf-dr reinforce`` for the whole push and every shard is checked
    against the manifest's SHA-256 as it is packed; transient Hub errors are retried with backoff
    (:mod:`hf_dr.hub.upload`); the staging folder is removed on every exit; a repo this push created is deleted again
    if the push fails before its commit. The commit either publishes the whole run or nothing.

    Args:
        output_dir (`str`): the folder :func:`hf_dr.reinforce` wrote; refused unless its manifest and checksums hold.
        repo_id (`str`): ``"org/name"`` of the dataset repo (created if needed).
        layout (`str`, *optional*, defaults to ``"self-contained"``): ``"self-contained"`` (rows carry the images)
            or ``"metadata-only"`` (keys and reinforcements; the images stay in the source repo).
        dataset (`datasets.Dataset`, *optional*): the source rows, for the self-contained layout; by default the
            source recorded by the run is loaded. Rows are matched to reinforcements by key, never by position.
        split (`str`, *optional*): the repo's split name; defaults to the reinforced source split, else ``"train"``
            (the source split the run read stays recorded as the one to join).
        source_id (`str`, *optional*): the source's Hub id, when the run did not record it (metadata-only).
        source_revision (`str`, *optional*): the source revision the run read; pinned to its commit.
        license (`str`, *optional*): the card's license; defaults to the source repo's (a bundled source's own),
            else ``"unknown"``.
        pretty_name (`str`, *optional*): the card's title.
        generation_cost (`str`, *optional*): what the run cost, e.g. ``"3.1 GPU-hours on one H100"``.
        private (`bool`, *optional*): visibility of a newly created repo.
        commit_message (`str`, *optional*): the commit message.
        token (`str`, *optional*): a Hub token; the logged-in one by default.
        compression_level (`int`, *optional*, defaults to 3): the zstd level of metadata-only files; 3 costs
            ~0.25 ms per N=400 row of one core, 19 saves every download 6% and costs ~6 ms (docs/push.md). A
            re-push writes only the files whose inputs changed (the run's build record) and uploads nothing
            unchanged.
        branch (`str`, *optional*): the repo branch to commit to (created from ``main`` if missing); ``main`` by
            default.
        create_pr (`bool`, *optional*, defaults to False): open a pull request against ``branch`` instead of
            committing to it.
        num_proc (`int`, *optional*): the processes that write metadata-only data files; by default ``min(8,
            cores)`` where processes start by fork, else 1 (:func:`hf_dr.hub.build.default_num_proc`). The files'
            bytes do not depend on it.

    Returns:
        `str`: the commit id of the repo after the push (the existing head when nothing changed; the pull request's
        commit with ``create_pr``).

    Example (a run over 4 bundled digits with a random ``test_resnet`` teacher, pushed with its images, loaded back;
    a run of a Hub dataset whose images may not be redistributed pushes ``layout="metadata-only"`` instead):
        >>> from hf_dr import load_reinforced, push_to_hub
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> commit = push_to_hub(run, "me/digits-plus", dataset=digits)  # the images: the source rows given here
        >>> train = load_reinforced("me/digits-plus", size=32)
        >>> train.num_rows, train[0]["pixel_values"].shape, train[0]["labels"].shape
        (4, torch.Size([3, 32, 32]), torch.Size([10]))
        >>> push_to_hub(run, "me/digits-plus", dataset=digits) == commit  # the same run again: nothing to upload
        True
    """
    if layout not in LAYOUTS:
        raise InvalidConfigError(f"layout should be one of {list(LAYOUTS)}, but got {layout!r} instead.")
    num_proc = default_num_proc() if num_proc is None else num_proc
    if not isinstance(num_proc, int) or num_proc < 1:
        raise InvalidConfigError(f"num_proc should be a positive integer, but got {num_proc!r} instead.")
    check_repo_id(repo_id)
    api = HfApi(token=token)
    with run_locked(output_dir):  # `hf-dr reinforce` cannot change the folder while it is packed
        return _push(api, output_dir, repo_id, layout=layout, dataset=dataset, split=split, source_id=source_id,
                     source_revision=source_revision, license=license, pretty_name=pretty_name,
                     generation_cost=generation_cost, private=private, commit_message=commit_message,
                     compression_level=compression_level, branch=branch, create_pr=create_pr, num_proc=num_proc)


def _push(api: HfApi, output_dir: str, repo_id: str, *, layout: str, dataset: datasets.Dataset | None,
          split: str | None, source_id: str | None, source_revision: str | None, license: str | None,
          pretty_name: str | None, generation_cost: str | None, private: bool | None, commit_message: str | None,
          compression_level: int, branch: str | None, create_pr: bool, num_proc: int) -> str:
    from hf_dr.hub.card import build_card, refuse_other_features, reinforcement_stats, save_figures  # matplotlib
    from hf_dr.hub.card_sections import teacher_metrics

    manifest = verify_run(output_dir)
    config = _run_config(output_dir)
    check_auth(api)  # after the run's own files, before any Hub read, image check or packing
    source = source_reference(config, layout, split, source_id, source_revision, api)
    shards = read_shards(output_dir, manifest, config)
    images = None
    if layout == SELF_CONTAINED:  # every image is checked here, before the repo is created
        dataset = dataset if dataset is not None else _load_recorded_source(source, config)
        images = SourceImages(dataset, config, shards)
        shards = images.add_bytes(shards)
    split = check_split(split or source["split"])  # the repo's split (in file names); source["split"]: the run read
    plan = plan_files(split, shards.num_rows, shards.num_bytes, max(shards.row_bytes, default=1.0))
    schema = file_schema(shards, images)
    target = read_target(api, repo_id, branch)
    refuse_other_features(target, split, datasets.Features.from_arrow_schema(schema), repo_id, api)
    card_options = {"license": license or _source_license(api, source), "license_given": license is not None,
                    "teacher_metrics": teacher_metrics(config.teacher), "pretty_name": pretty_name,
                    "generation_cost": generation_cost, "previous": target.card,
                    "other_download_bytes": target.other_bytes(split)}
    record = BuildRecord(output_dir, repo_id)
    stats_inputs = shards_digest(shards, config.fingerprint())
    stats = record.stats(stats_inputs) or reinforcement_stats(shards.paths, manifest, config)
    meta = hub_metadata(layout, split, config, source, plan.names,
                        sorted(int(entry["row"]) for entry in manifest.get("skipped", [])),
                        source_data_files(source, api.token) if layout == METADATA_ONLY else None)
    guard = RepoGuard(api, repo_id, target.exists, private, branch, target.branch_exists)
    with staging_folder() as staging, guard:
        figures = []

        def on_first(path: str) -> None:
            figures.extend(save_figures(staging, [os.path.relpath(path, staging)], stats, config, layout))

        level = compression_level if images is None else IMAGE_COMPRESSION_LEVEL
        jobs = plan_jobs(plan, shards, schema, level, source_identity(source, dataset, images))
        operations, files = push_data_files(api, guard, repo_id, staging, jobs, record, target, images, num_proc,
                                            on_first, create_pr)
        if not figures:  # no data file written (all unchanged): the metadata-only figures need none
            figures = save_figures(staging, [], stats, config, layout)
        card = build_card(repo_id, meta, public_config(config), stats, figures,
                          _dataset_info(files, schema, meta["split"]), **card_options)
        small = [*_stage_metadata(staging, meta, public_config(config), card), *(f["path"] for f in figures)]
        operations += [CommitOperationAdd(name, os.path.join(staging, name)) for name in small]
        message = commit_message or f"Upload reinforced {split} split ({layout}) with hf-dr"
        kept = [written.name for written in files if written.path is None]
        guard.ensure()  # a new branch, when no data file was uploaded
        commit = commit_once(api, repo_id, [*target.stale_files(meta["split"], operations, kept), *operations],
                             message, branch, create_pr, target.head or guard.head)
        guard.committed = True
    record.save(jobs, files, stats_inputs, stats)
    return commit


def _stage_metadata(staging: str, meta: dict[str, Any], config: dict[str, Any], card: Any) -> list[str]:
    """Writes the card, ``hf_dr.json`` and ``reinforce_config.json`` (at the root: the last pushed split's; and the
    split's own copies, so that load_reinforced finds every split) into ``staging``; returns their repo paths."""
    write_atomic(os.path.join(staging, "README.md"), card.save)
    names = ["README.md"]
    for meta_file, config_file in ((HUB_META_FILE, CONFIG_FILE), split_files(meta["split"])):
        write_json_atomic(_staged(staging, meta_file), meta)
        write_json_atomic(_staged(staging, config_file), config)
        names += [meta_file, config_file]
    return names


def split_files(split: str) -> tuple[str, str]:
    """The split's own copies of ``hf_dr.json`` and ``reinforce_config.json`` (the root ones are the last pushed
    split's): ``splits/{split}/...``, read by :func:`hf_dr.load_reinforced`.

    Example:
        >>> split_files("test")
        ('splits/test/hf_dr.json', 'splits/test/reinforce_config.json')
    """
    return f"splits/{split}/{HUB_META_FILE}", f"splits/{split}/{CONFIG_FILE}"


def _staged(staging: str, name: str) -> str:
    os.makedirs(os.path.dirname(os.path.join(staging, name)), exist_ok=True)
    return os.path.join(staging, name)


def source_reference(config: ReinforceConfig, layout: str, split: str | None = None, source_id: str | None = None,
                     source_revision: str | None = None, api: HfApi | None = None) -> dict[str, Any]:
    """Where the reinforced rows came from, as recorded in ``hf_dr.json``.

    For the metadata-only layout the source must be a Hub repo and its revision is pinned to a commit id. Its
    ``split`` is the source split the run read (``split``, the repo's split name, only when the run recorded none).
    """
    recorded = config.dataset
    ident = source_id or recorded.get("id")
    revision = source_revision or recorded.get("revision")
    if layout == METADATA_ONLY:
        if not ident or os.path.exists(ident) or bundled_name(ident):
            raise InvalidConfigError(
                f"the metadata-only layout needs the source's Hub repo id, but the run recorded {ident!r}: pass "
                "source_id= (--source-id) and source_revision= (--revision) of the dataset that was reinforced."
            )
        revision = pin_revision(api or HfApi(), ident, revision)
    elif ident and os.path.exists(ident) and not bundled_name(ident):
        ident, revision = None, None  # a local path means nothing to others (and may be private)
    return {
        "id": ident, "revision": revision, "split": recorded.get("split") or split or "train",
        **config.columns.source_view(),  # image_column, label_column, key_column, key_source
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
                 data_files: Sequence[str], skipped_rows: Sequence[int] = (),
                 source_files: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The content of ``hf_dr.json``: what a loader needs besides ``reinforce_config.json`` (``skipped_rows``: source
    rows the run gave no records, which a metadata-only stream leaves out; ``source_files``: the source's data files
    and row counts, :func:`hf_dr.hub.shards.source_data_files`, as ``source["data_files"]``: one stream shard each)."""
    source = {**source, "data_files": list(source_files)} if source_files else source
    return {
        "format": HUB_FORMAT, "format_version": HUB_FORMAT_VERSION, "layout": layout, "split": split,
        "columns": config.columns.pushed_view(with_image=layout == SELF_CONTAINED),
        "num_rows": config.dataset.get("num_rows"), "source": source, "data_files": list(data_files),
        "run_fingerprint": config.fingerprint(),  # binds the data to reinforce_config.json (checked on load)
        "skipped_rows": list(skipped_rows),
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
    """The source's licence: a bundled dataset's own, a Hub repo's card's (read once, retried), else unknown."""
    if not source["id"]:
        return "unknown"
    if bundled_name(source["id"]):
        return BUNDLED_LICENSES.get(bundled_name(source["id"]), "unknown")
    try:
        card_data = with_retries("read the source's licence", api.dataset_info, source["id"],
                                 revision=source["revision"]).card_data
    except HfHubHTTPError as err:  # not found, gated, or the Hub failing: the card says unknown, the push goes on
        logger.warning("Cannot read the licence of the source %s (%s); the card says 'unknown': pass license= "
                       "(--license).", source["id"], str(err).splitlines()[0])
        return "unknown"
    license = card_data.get("license") if card_data is not None else None
    return license or "unknown"


# -- the card -------------------------------------------------------------------------------------------------------
def _dataset_info(files: Sequence[WrittenFile], schema: pa.Schema, split: str) -> datasets.DatasetInfo:
    """Features, row count and sizes of the data files, for the card's ``dataset_info``."""
    num_rows = sum(file.num_rows for file in files)
    num_bytes = sum(file.num_bytes for file in files)
    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name=split, num_bytes=num_bytes, num_examples=num_rows))
    return datasets.DatasetInfo(features=datasets.Features.from_arrow_schema(schema), splits=splits,
                                download_size=sum(file.size for file in files), dataset_size=num_bytes)
