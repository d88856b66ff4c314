"""A pushed reinforced dataset opened as a run, for ``hf-dr verify --dataset org/x-plus`` on any machine: its
records, its images and its recorded configuration, all read at one commit of the repo.

The images are the repo's own rows (self-contained layout) or its recorded source at the revision the push pinned
(metadata-only layout). The teacher is the one the run recorded: Hub model repos at their pinned commits
(``hf-hub:org/teacher@COMMIT``, fetched into the Hugging Face cache by :func:`hf_dr.models.teacher.create_teacher`);
a member that was a local file is refused, naming it and the fix (:func:`hf_dr.generate.verify.recorded_members`).

Example:
    >>> from hf_dr.generate.verify import verify
    >>> records, images, config = load_pushed_run("me/digits-plus")  # doctest: +SKIP
    >>> verify(records, images, config).passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os

import datasets
from huggingface_hub import HfApi

from hf_dr.data.sources import load_source
from hf_dr.errors import HubNotFoundError, InvalidConfigError
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.hub.load import reinforced_repo
from hf_dr.hub.push import SELF_CONTAINED, resolve_revision


def load_pushed_run(repo_id: str, split: str = "train", revision: str | None = None, token: str | None = None
                    ) -> tuple[datasets.Dataset, datasets.Dataset, ReinforceConfig]:
    """Loads a dataset pushed by :func:`hf_dr.push_to_hub`: (records, images, config), as
    :func:`hf_dr.generate.run_inspection.load_target` does for a run folder.

    Args:
        repo_id (`str`): the reinforced dataset repo.
        split (`str`, *optional*, defaults to ``"train"``): the split.
        revision (`str`, *optional*): a branch, tag or commit of the repo; the default branch by default.
        token (`str`, *optional*): a Hub token; the logged-in one by default.
    """
    if os.path.exists(repo_id) or "/" not in repo_id:
        raise InvalidConfigError(
            f"{repo_id!r} is {'a local path' if os.path.exists(repo_id) else 'not a Hub dataset id (ORG/NAME)'}: "
            "pass the Hub id of a pushed reinforced dataset, or --run-dir with the folder `hf-dr reinforce` wrote "
            "(and --dataset with its source images when they moved).")
    commit = resolve_revision(HfApi(token=token), repo_id, revision)
    found = reinforced_repo(repo_id, split, commit, token)
    if found is None:
        raise HubNotFoundError(
            f"the dataset repo {repo_id!r} was not pushed by hf-dr (it has no hf_dr.json): it holds no stored "
            "reinforcements to verify. Pass a reinforced dataset's id, or --run-dir for a local run folder.")
    meta, config = found
    records = datasets.load_dataset(repo_id, split=split, revision=commit, token=token)
    if meta["layout"] == SELF_CONTAINED:
        return records, records, ReinforceConfig(**config)
    source = meta["source"]
    if not source.get("id"):
        raise InvalidConfigError(
            f"{repo_id!r} holds metadata only and records no source dataset (it was made from a local folder): pass "
            "--run-dir with the run folder, and --dataset with the source images.")
    images = load_source(source["id"], split=source.get("split") or split, revision=source.get("revision"))
    return records, images, ReinforceConfig(**config)
