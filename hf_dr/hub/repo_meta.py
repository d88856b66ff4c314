"""What a pushed reinforced repo records of itself, read at one resolved commit: ``hf_dr.json`` and
``reinforce_config.json`` of a split (:func:`read_split_meta`), each checked (an hf-dr file, the split asked for, the
config its data was made with), and whether a dataset named by the user is such a repo (:func:`reinforced_repo`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from hf_dr.data.bundled import bundled_name
from hf_dr.data.sources import looks_local
from hf_dr.errors import ConfigConflictError, HubNotFoundError, InvalidConfigError
from hf_dr.files import read_json
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import CONFIG_FILE
from hf_dr.hub.push import HUB_FORMAT, HUB_META_FILE, resolve_revision, split_files


def read_split_meta(repo_id: str, split: str, commit: str, token: str | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``hf_dr.json`` and ``reinforce_config.json`` of ``split`` at ``commit``: the root files are the last pushed
    split's, other splits have theirs under ``splits/{split}/``; a split the repo does not hold, or a config that is
    not the run its data came from, is refused. ``repo_id`` may be a local folder of a pushed repo's files (a
    download of it; ``commit`` and ``token`` are then not used)."""
    local = os.path.isdir(repo_id)

    def read(filename: str) -> dict[str, Any]:
        if not local:
            return read_repo_json(repo_id, filename, commit, token)
        if not os.path.isfile(os.path.join(repo_id, filename)):
            raise HubNotFoundError(f"the folder {repo_id!r} has no {filename}: it is not a pushed reinforced dataset. "
                                   "Pass a folder downloaded from a repo hf_dr.push_to_hub made, or a run folder.")
        return read_json(os.path.join(repo_id, filename))

    meta_file, config_file = HUB_META_FILE, CONFIG_FILE  # the last pushed split's
    meta = read(meta_file)
    if meta.get("split") != split:  # another split: its own files, where the repo has them
        with contextlib.suppress(HubNotFoundError):
            meta = read(split_files(split)[0])
            meta_file, config_file = split_files(split)
    _check_meta(meta, repo_id, split)
    config = read(config_file)
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
