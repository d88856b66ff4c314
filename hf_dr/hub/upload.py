"""What keeps a push safe: the token checked before any work (:func:`check_auth`), the run folder locked against
``hf-dr reinforce`` while it is pushed (:func:`run_locked`), what the repo holds read once (:func:`read_target`) and
committed on with its parent named (:func:`commit_once`), transient Hub errors retried with exponential backoff
(:func:`with_retries`), the staging folder removed on every exit and a killed push's left behind removed by the next
push (:func:`staging_folder`), and a repo this push created deleted again when nothing was committed to it
(:class:`RepoGuard`).

Transient errors are HTTP 408, 429, 500, 502, 503 and 504 and dropped or refused connections (what
``huggingface_hub.utils.http_backoff`` retries; ``huggingface_hub`` already retries its preupload and LFS requests
that way, the others are retried here). ``HF_DR_PUSH_RETRIES`` (default 5) bounds the retries of each call and
``HF_DR_PUSH_BACKOFF`` (seconds, default 1) is the first wait, doubled each time up to 30 s.

Staging folders are named ``hf-dr-push-{pid}-*`` in the temporary directory: a push that is killed (SIGKILL, power
loss) cannot remove its own, so every push first removes those whose process no longer runs on this machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCardData, HfApi
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalTokenNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from hf_dr.errors import HubAuthError, HubUnavailableError, InvalidConfigError, RunLockedError
from hf_dr.generate.lock import RunLock
from hf_dr.hub.packing import DATA_DIR

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_EXCEPTIONS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError, ConnectionError)
RETRIES_ENV, BACKOFF_ENV = "HF_DR_PUSH_RETRIES", "HF_DR_PUSH_BACKOFF"
MAX_WAIT = 30.0
STAGING_PREFIX = "hf-dr-push-"
ASSETS_DIR = "assets"
_STAGING = re.compile(rf"^{STAGING_PREFIX}(\d+)-")
LOGIN_HINT = "log in with `hf auth login`, or set HF_TOKEN (or pass token= / --token) to a token with write access"
T = TypeVar("T")


def check_repo_id(repo_id: str) -> None:
    """Refuses a repo id the Hub would refuse, before any work (:class:`~hf_dr.errors.InvalidConfigError`)."""
    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("it should be 'org/name'")
    except HFValidationError as err:
        raise InvalidConfigError(
            f"{repo_id!r} is not a valid dataset repo id ({str(err).splitlines()[0]}); pass 'org/name' with letters, "
            "digits, '-', '_' and '.'."
        ) from None


def check_auth(api: HfApi) -> str:
    """The user name of ``api``'s token (``whoami``); :class:`~hf_dr.errors.HubAuthError` with the login hint when
    there is no token or the Hub refuses it."""
    try:
        return with_retries("check the token (whoami)", api.whoami)["name"]
    except LocalTokenNotFoundError:
        raise HubAuthError(f"no Hub token found: {LOGIN_HINT}.") from None
    except HfHubHTTPError as err:
        if _status(err) in (401, 403):
            raise HubAuthError(f"the Hub refused the token ({_status(err)} on whoami): {LOGIN_HINT}.") from None
        raise


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is worth retrying: a 408/429/5xx answer, a timeout or a dropped connection."""
    if isinstance(err, HfHubHTTPError):
        return _status(err) in TRANSIENT_STATUSES
    if isinstance(err, TRANSIENT_EXCEPTIONS):
        return True
    return err.__cause__ is not None and is_transient(err.__cause__)  # e.g. an LFS upload's RuntimeError


def _http_error(err: BaseException) -> HfHubHTTPError | None:
    """The Hub's answer behind ``err`` (itself, or what it was raised from)."""
    while err is not None and not isinstance(err, HfHubHTTPError):
        err = err.__cause__
    return err


def hub_call(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`with_retries`, and a request the Hub refuses (403, 422...) said in one line:
    :class:`~hf_dr.errors.HubUnavailableError` naming ``what``, the status and the Hub's message."""
    try:
        return with_retries(what, call, *args, **kwargs)
    except Exception as err:
        answer = _http_error(err)
        if answer is None or isinstance(err, HubUnavailableError):
            raise
        raise HubUnavailableError(f"{hub_error(what, answer)}; nothing of this push was committed.") from None


def with_retries(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with exponential backoff while it fails transiently.

    Raises:
        :class:`~hf_dr.errors.HubUnavailableError`: naming ``what`` and the last error once the retries are spent.
    """
    retries = int(os.environ.get(RETRIES_ENV, 5))
    wait = float(os.environ.get(BACKOFF_ENV, 1.0))
    for attempt in range(retries + 1):
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if not is_transient(err):
                raise
            if attempt == retries:
                raise HubUnavailableError(
                    f"the Hub kept failing to {what} ({_describe(err)}; {retries + 1} tries): nothing of this push "
                    "was committed; run the same push again later (it uploads only what the Hub lacks)."
                ) from None
            logger.warning("The Hub failed to %s (%s); retrying in %.2g s.", what, _describe(err), wait)
            time.sleep(wait)
            wait = min(wait * 2, MAX_WAIT)
    raise AssertionError("unreachable")


def hub_error(what: str, err: HfHubHTTPError) -> str:
    """One line for a Hub refusal: what was being done, the status and the server's message."""
    message = err.server_message or str(err).splitlines()[0]
    return f"the Hub refused to {what} ({_status(err)}: {message.strip()})"


@contextlib.contextmanager
def staging_folder() -> Iterator[str]:
    """A new ``hf-dr-push-{pid}-*`` folder in the temporary directory, removed on every exit (exceptions and
    KeyboardInterrupt included); those of processes that no longer run (killed pushes) are removed first."""
    remove_stale_staging()
    path = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging(root: str | None = None) -> list[str]:
    """Removes the staging folders under ``root`` (the temporary directory) whose push process is gone."""
    root = root or tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            match = _STAGING.match(name)
            if match and not _running(int(match.group(1))):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                removed.append(name)
    if removed:
        logger.info("Removed %d staging folders of pushes that were killed: %s", len(removed), removed)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def run_locked(output_dir: str) -> Iterator[None]:
    """Holds the run's lock (:class:`hf_dr.generate.lock.RunLock`, exclusive) while pushing it: a ``reinforce`` of
    the same folder (``--overwrite`` included) is refused until the push ends. A folder this process cannot write
    (someone else's run) is pushed unlocked: the shards' checksums are still checked as they are packed.

    Exclusive, the lock's only mode: a second push of the same folder at the same time is refused too (it would
    publish the same files; push it again once the first ends)."""
    if not os.path.isdir(output_dir):
        yield  # verify_run says what is missing
        return
    lock = RunLock(output_dir)
    try:
        lock.acquire()
    except RunLockedError as err:
        raise RunLockedError(f"cannot push {output_dir!r} now: {err}") from None
    except OSError as err:  # a folder this process cannot write (EACCES, EROFS)
        logger.warning("Cannot lock %s (%s); pushing it unlocked, every shard checked as it is packed.",
                       output_dir, err.strerror)
        yield
        return
    try:
        yield
    finally:
        lock.release()


class RepoGuard:
    """Creates the repo (and branch) only when the first upload needs it, and deletes a repo this push created if the
    push fails before its commit (the repo still at the commit it was created with): a failed first push leaves no
    empty repo.

    Args:
        api (`HfApi`): the client.
        repo_id (`str`): the dataset repo.
        exists (`bool`): whether the repo existed before this push.
        private (`bool`, *optional*): visibility of a new repo.
        branch (`str`, *optional*): the branch to commit to, created from ``main`` if missing.
        branch_exists (`bool`, *optional*, defaults to True): whether ``branch`` exists.
    """

    def __init__(self, api: HfApi, repo_id: str, exists: bool, private: bool | None = None,
                 branch: str | None = None, branch_exists: bool = True) -> None:
        self.api, self.repo_id, self.exists, self.private = api, repo_id, exists, private
        self.branch, self.branch_exists = branch, branch_exists
        self.created = self.committed = False
        self.head: str | None = None  # the first commit of a repo this push created

    def ensure(self) -> None:
        """Creates the repo and the branch if they do not exist yet."""
        if not self.exists:
            hub_call("create the repo", self.api.create_repo, self.repo_id, repo_type="dataset",
                         private=self.private, exist_ok=True)
            self.exists = self.created = True
            self.head = with_retries("read the new repo", self.api.dataset_info, self.repo_id).sha
        if self.branch and not self.branch_exists:
            hub_call("create the branch", self.api.create_branch, self.repo_id, branch=self.branch,
                         repo_type="dataset", exist_ok=True)
            self.branch_exists = True

    def __enter__(self) -> RepoGuard:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is not None and self.created and not self.committed:
            try:
                if self.api.dataset_info(self.repo_id).sha != self.head:  # a commit landed, its answer lost: keep it
                    return
                self.api.delete_repo(self.repo_id, repo_type="dataset", missing_ok=True)
            except Exception as err:  # the push's own error matters more; say what is left
                logger.warning("The push failed and the repo %s it created is left empty (%s): delete it or push "
                               "again.", self.repo_id, _describe(err))


def _status(err: HfHubHTTPError) -> int | None:
    return getattr(err.response, "status_code", None)


def _describe(err: BaseException) -> str:
    if isinstance(err, HfHubHTTPError):
        return f"HTTP {_status(err)}"
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")


@dataclass(frozen=True)
class Target:
    """What a push finds in the repo before it uploads: whether the repo and branch exist, the head commit it will
    commit on, the files there (path -> size), the card's YAML (None without a card) and the LFS SHA-256 of the
    files stored through LFS (path -> SHA-256; what a build record is compared with)."""

    exists: bool
    branch_exists: bool
    head: str | None
    files: dict[str, int]
    card: DatasetCardData | None
    lfs_sha256: dict[str, str] = field(default_factory=dict)

    def stale_files(self, split: str, written: Sequence[CommitOperationAdd],
                    kept: Sequence[str] = ()) -> list[CommitOperationDelete]:
        """This split's data files and the asset files in the repo that the push neither writes nor ``kept`` (files
        unchanged since the last push, not written again); a new run may have fewer files. Other splits' files are
        kept."""
        paths = {operation.path_in_repo for operation in written} | set(kept)
        return [CommitOperationDelete(path_in_repo=path) for path in sorted(self.files)
                if path.startswith((f"{DATA_DIR}/{split}-", f"{ASSETS_DIR}/")) and path not in paths]

    def other_bytes(self, split: str) -> int:
        """The bytes of the repo's data files of splits other than ``split``."""
        return sum(size for path, size in self.files.items()
                   if path.startswith(f"{DATA_DIR}/") and not path.startswith(f"{DATA_DIR}/{split}-"))


def read_target(api: HfApi, repo_id: str, branch: str | None) -> Target:
    """The :class:`Target` of ``branch`` (``main`` by default) of ``repo_id``; a missing branch reads ``main``, the
    branch it is created from."""
    branch_exists = True
    try:
        try:
            info = with_retries("read the repo", api.dataset_info, repo_id, revision=branch, files_metadata=True)
        except RevisionNotFoundError:
            branch_exists = False
            info = with_retries("read the repo", api.dataset_info, repo_id, files_metadata=True)
    except RepositoryNotFoundError:
        return Target(False, False, None, {}, None)
    except HfHubHTTPError as err:  # e.g. 403: a repo of an org the token cannot read
        raise HubUnavailableError(f"{hub_error('read the repo', err)}; nothing was uploaded.") from None
    files = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}
    card = info.card_data if "README.md" in files else None
    lfs = {sibling.rfilename: sibling.lfs.sha256 for sibling in info.siblings or [] if sibling.lfs is not None}
    return Target(True, branch_exists, info.sha, files, card, lfs)


def commit_once(api: HfApi, repo_id: str, operations: list[Any], message: str, branch: str | None,
                create_pr: bool, head: str | None) -> str:
    """One ``create_commit`` on ``head`` (retried while transient); the new commit id.

    The commit names its parent: a branch that moved since the push read it (another push, whose card this one
    would otherwise overwrite, or an earlier try of this commit whose answer was lost) is refused with
    :class:`~hf_dr.errors.HubUnavailableError` saying to push again, which then commits only what is missing.
    """
    try:
        commit = with_retries("commit", api.create_commit, repo_id, operations, repo_type="dataset",
                              commit_message=message, revision=branch, create_pr=create_pr, parent_commit=head)
    except HfHubHTTPError as err:
        if _status(err) == 412:
            raise HubUnavailableError(
                f"{repo_id!r} changed while this push uploaded (another push to it, or a commit of this push whose "
                "answer was lost): push again; it commits only what the repo lacks."
            ) from None
        raise HubUnavailableError(f"{hub_error('commit', err)}; nothing was committed.") from None
    if commit.pr_url:
        logger.warning("Opened pull request %s", commit.pr_url)
    return commit.oid
