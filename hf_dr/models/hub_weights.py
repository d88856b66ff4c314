"""Teacher members that are Hub model repos, pinned to a commit: ``"hf-hub:org/teacher@v1"``.

A member named ``hf-hub:REPO`` or ``hf-hub:REPO@REVISION`` (timm's own prefix; a dict spec writes ``{"arch":
"hf-hub:REPO", "revision": REVISION}``) is a timm model repo such as ``hf-dr push-model`` writes. Loading resolves
its revision (a branch, a tag, or none: the default branch) to the commit it names now, loads the weights of that
commit (timm downloads them into the Hugging Face cache, ``HF_HOME``), and the run records the commit, so that a
reinforced dataset names exactly the teacher that labelled it and anyone can fetch it again to verify
(``hf-dr verify --dataset org/x-plus``). A member pinned to a full commit id needs no Hub call to resolve it (it
loads from the cache offline).

Example:
    >>> split_hub_name("hf-hub:me/teacher@v1"), split_hub_name("resnet18")
    (('me/teacher', 'v1'), None)
"""

from __future__ import annotations

import logging
import re
from typing import Any

from hf_dr.errors import HubNotFoundError, HubUnavailableError, InvalidConfigError

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf-hub:"
_PREFIXES = (HUB_PREFIX, "hf_hub:")  # timm accepts both spellings
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def split_hub_name(arch: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` of a ``hf-hub:REPO[@REVISION]`` name (revision None when not given); None for another
    name. :class:`InvalidConfigError` for a name without a repo id."""
    prefix = next((p for p in _PREFIXES if arch.startswith(p)), None)
    if prefix is None:
        return None
    repo_id, _, revision = arch[len(prefix):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or "@" in revision:
        raise InvalidConfigError(
            f"teacher member {arch!r}: a Hub member is 'hf-hub:ORG/NAME' or 'hf-hub:ORG/NAME@REVISION' (a branch, tag "
            "or commit id of the model repo)"
        )
    return repo_id, revision or None


def hub_fields(arch: str, revision: str | None, weights: str | None) -> tuple[str, str | None]:
    """The ``arch`` and ``revision`` a member spec stores: ``"hf-hub:REPO"`` and the revision, whether the revision
    came inside the name or beside it; the name as given and None for a member that is no Hub repo. Refuses a revision
    given twice, a revision of a member that is not a Hub repo, and local weights for a Hub repo.

    Example:
        >>> hub_fields("hf-hub:me/teacher@v1", None, None), hub_fields("resnet18", None, "r18.safetensors")
        (('hf-hub:me/teacher', 'v1'), ('resnet18', None))
    """
    split = split_hub_name(arch)
    if split is None:
        if revision is not None:
            raise InvalidConfigError(
                f"teacher member {arch!r}: 'revision' ({revision!r}) pins a Hub model repo; name the member "
                f"'hf-hub:ORG/NAME' or drop the revision")
        return arch, None
    repo_id, named = split
    if named is not None and revision is not None and named != revision:
        raise InvalidConfigError(f"teacher member {arch!r} names revision {named!r} and also revision={revision!r}; "
                                 "give one")
    if weights is not None:
        raise InvalidConfigError(
            f"teacher member {arch!r} is a Hub model repo and also names local weights {weights!r}; the weights of a "
            "Hub member are the repo's. Drop one (ARCH=FILE for local weights).")
    return f"{HUB_PREFIX}{repo_id}", named or revision


def pin_hub_member(member: str, repo_id: str, revision: str | None) -> str:
    """The commit of ``revision`` of the model repo ``repo_id`` (the default branch's for None), logged when it was not
    a commit already; errors name the member, the repo, the revision and the fix."""
    if revision is not None and COMMIT_SHA.fullmatch(revision):
        return revision
    from huggingface_hub import HfApi, constants

    asked = "the default branch" if revision is None else f"revision {revision!r}"
    if constants.HF_HUB_OFFLINE:
        raise HubNotFoundError(
            f"teacher member {member!r}: {asked} of the model repo {repo_id!r} cannot be resolved to a commit offline "
            f"(HF_HUB_OFFLINE=1). Pin the commit the run recorded (hf-hub:{repo_id}@COMMIT), or go online.")
    api = HfApi()
    try:
        commit = api.model_info(repo_id, revision=revision).sha
    except Exception as err:  # not found (repo, revision), HTTP or connection errors: told apart by _resolve_error
        raise _resolve_error(err, member, repo_id, revision, api) from err
    level = logging.WARNING if revision is None else logging.INFO  # no revision: the member pinned nothing
    logger.log(level, "teacher member %s: %s of %s is commit %s now; the run records it pinned (hf-hub:%s@%s)",
               member, asked, repo_id, commit, repo_id, commit)
    return str(commit)


def _resolve_error(err: Exception, member: str, repo_id: str, revision: str | None, api: Any) -> Exception:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(err, RevisionNotFoundError):
        try:
            refs = api.list_repo_refs(repo_id)
            names = [ref.name for ref in [*refs.branches, *refs.tags]]
        except Exception:  # noqa: BLE001 (only the hint is lost)
            names = "(could not be listed)"
        return HubNotFoundError(
            f"teacher member {member!r}: revision {revision!r} does not exist in the model repo {repo_id!r}; its "
            f"branches and tags are {names}. Pass one of them or a commit id (hf-hub:{repo_id}@REVISION).")
    if isinstance(err, RepositoryNotFoundError):
        return HubNotFoundError(
            f"teacher member {member!r}: no model repo {repo_id!r} on {api.endpoint} (or the token cannot read it). "
            "Check the id, log in (`hf auth login`) for a private repo, or push the teacher with `hf-dr push-model`.")
    return HubUnavailableError(
        f"teacher member {member!r}: could not resolve revision {revision or 'main'!r} of the model repo {repo_id!r} "
        f"on {api.endpoint} ({type(err).__name__}: {' '.join(str(err).split())[:300]}). Check the connection and "
        "HF_ENDPOINT, then retry.")
