"""A small in-memory Hugging Face Hub for tests, driven by the real ``huggingface_hub`` and ``datasets`` clients.

The server speaks the subset of the Hub HTTP API that ``huggingface_hub`` 2.x and ``datasets`` 5.x call to create
repos, upload (``preupload`` -> LFS ``batch`` -> ``PUT`` -> ``commit``), list (``tree``/``paths-info``), download
(``resolve`` with ``Range``), and validate cards (``validate-yaml``). Repos keep git-like history: every commit has
a 40-hex id, branches move forward and any older commit stays readable by its id.

It uses the standard library only; PyYAML (always installed next to ``huggingface_hub``) is used when present to
fill ``cardData`` and to reject malformed YAML in ``/api/validate-yaml``.

Typical use::

    with HubServer() as hub:  # binds 127.0.0.1 on a free port
        print(hub.url)

``huggingface_hub`` and ``datasets`` read ``HF_ENDPOINT`` (and friends) once, at import time, so a test session
must call :func:`start_session_server` before either library is imported anywhere.
"""

from __future__ import annotations

import atexit
import base64
import fnmatch
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

try:  # optional: only used to parse README front matter
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with huggingface_hub
    yaml = None

USER = "tester"
ORGS = ("test-org",)
TEST_TOKEN = "hf_test_token"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_TRACKED = ("*.arrow", "*.bin", "*.npy", "*.parquet", "*.pt", "*.pth", "*.safetensors", "*.zip", "*tfevents*")
DEFAULT_GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_TRACKED)
_PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PLURALS_INV = {singular: plural for plural, singular in _PLURALS.items()}
_URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REF_GROUPS = {
    "refs/heads/": "branches",
    "refs/convert/": "converts",
    "refs/tags/": "tags",
    "refs/pr/": "pullRequests",
}


def _now() -> str:
    """Current UTC time in the ISO format the Hub uses."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_blob_oid(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub reports as ``oid`` for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """An API error, rendered as a JSON body plus the ``X-Error-Code`` header the client maps to exceptions."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------------------------------------------------
# Git-like storage
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """File content at some commit; ``lfs`` tells whether it was committed through LFS."""

    data: bytes
    lfs: bool = False

    @property
    def size(self) -> int:
        """Size of the real content (not of the LFS pointer)."""
        return len(self.data)

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the content, i.e. the LFS object id."""
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        """The git-lfs pointer file that git stores in place of an LFS file."""
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @cached_property
    def oid(self) -> str:
        """Git blob id (of the pointer for LFS files, as on the Hub)."""
        return _git_blob_oid(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        """The ETag served by ``resolve``: sha256 for LFS files, git blob id otherwise."""
        return self.sha256 if self.lfs else self.oid


@dataclass(frozen=True, eq=False)
class Commit:
    """An immutable snapshot of the whole repo, linked to its parent."""

    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: Mapping[str, Blob]

    def subtree(self, path: str) -> dict[str, str]:
        """``{file path: blob oid}`` for ``path`` itself and everything below it (``""`` is the root)."""
        prefix = f"{path}/" if path else ""
        return {p: b.oid for p, b in self.files.items() if p == path or p.startswith(prefix)}

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is the root or a folder holding at least one file."""
        return not path or any(p.startswith(f"{path}/") for p in self.files)

    def as_json(self) -> dict[str, Any]:
        """The ``lastCommit`` shape used by ``tree`` and ``paths-info``."""
        return {"id": self.oid, "title": self.title, "date": self.date}


@dataclass
class Repo:
    """A repository: commits, refs (full git ref names) and uploaded LFS objects."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)

    def find_ref(self, revision: str) -> str | None:
        """Full ref name for a branch, tag or PR revision, or ``None``."""
        for ref in (revision, f"refs/heads/{revision}", f"refs/tags/{revision}"):
            if ref.startswith("refs/") and ref in self.refs:
                return ref
        return None

    def resolve(self, revision: str | None) -> Commit:
        """Commit for a branch/tag/PR name or a (possibly abbreviated) commit id; raises ``RevisionNotFound``."""
        revision = revision or "main"
        ref = self.find_ref(revision)
        if ref is not None:
            return self.commits[self.refs[ref]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [oid for oid in self.commits if oid.startswith(revision)]
            if len(matches) == 1:
                return self.commits[matches[0]]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, commit: Commit) -> Iterable[Commit]:
        """``commit`` then its ancestors, newest first."""
        current: Commit | None = commit
        while current is not None:
            yield current
            current = self.commits[current.parent] if current.parent else None

    def last_commit(self, commit: Commit, path: str) -> Commit:
        """Most recent ancestor of ``commit`` that changed ``path`` (a file or a folder)."""
        for current in self.history(commit):
            if current.parent is None or current.subtree(path) != self.commits[current.parent].subtree(path):
                return current
        raise AssertionError("unreachable: history always ends with a root commit")


class HubStore:
    """All repos of the server plus the git-like operations on them. Callers hold :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self._counter = itertools.count()

    def get(self, repo_type: str, repo_id: str) -> Repo:
        """The repo, or a ``RepoNotFound`` error."""
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound") from None

    def create(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        """A new repo whose ``main`` branch holds an initial ``.gitattributes`` commit."""
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private)
        self.repos[(repo_type, repo_id)] = repo
        files = {".gitattributes": Blob(DEFAULT_GITATTRIBUTES.encode())}
        self.add_commit(repo, "refs/heads/main", None, files, "initial commit", "")
        return repo

    def add_commit(
        self, repo: Repo, ref: str, parent: Commit | None, files: Mapping[str, Blob], title: str, message: str
    ) -> Commit:
        """Records a commit on top of ``parent`` and moves ``ref`` to it."""
        date, parent_oid = _now(), parent.oid if parent else None
        digest_input = {"parent": parent_oid, "title": title, "message": message, "date": date}
        digest_input |= {"files": {p: b.oid for p, b in sorted(files.items())}, "n": next(self._counter)}
        oid = hashlib.sha1(json.dumps(digest_input, sort_keys=True).encode()).hexdigest()
        commit = Commit(oid, parent_oid, title, message, date, dict(files))
        repo.commits[oid] = commit
        repo.refs[ref] = oid
        return commit


# --------------------------------------------------------------------------------------------------------------------
# HTTP-independent request / response objects
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Request:
    """A parsed HTTP request; ``params`` holds the URL-decoded route groups."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The body decoded as a JSON object (``{}`` when empty)."""
        try:
            payload = json.loads(self.body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise HubError(400, "Request body must be a JSON object")
        return payload

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        """A boolean query parameter (``1``/``true``)."""
        return (self.arg(name) or "").lower() in ("1", "true")

    @property
    def repo_type(self) -> str:
        """Singular repo type from the ``type`` (``/api/{type}s``) or ``prefix`` (``/datasets/...``) group."""
        plural = self.params.get("type") or self.params.get("prefix") or "models"
        return _PLURALS[plural]


@dataclass
class Response:
    """What a route returns; the transport layer adds ``Content-Length``."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response (non-JSON values such as YAML dates are stringified)."""
        body = json.dumps(payload, default=str).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})


# --------------------------------------------------------------------------------------------------------------------
# Helpers on card metadata and upload modes
# --------------------------------------------------------------------------------------------------------------------


def _front_matter(text: str) -> str | None:
    """The YAML block between the leading ``---`` lines of a README, if any."""
    match = re.match(r"^---\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.DOTALL)
    return match.group(1) if match else None


def _parse_card_yaml(text: str) -> dict[str, Any]:
    """Metadata of a README; raises ``ValueError`` when the front matter is not a YAML mapping."""
    block = _front_matter(text)
    if block is None or yaml is None:
        return {}
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as err:
        raise ValueError(f"Invalid YAML in README.md metadata: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("README.md metadata must be a YAML mapping")
    return data


def _card_metadata_errors(data: Mapping[str, Any]) -> list[str]:
    """A few of the Hub's semantic checks: ``license`` is text, ``configs`` entries are named and well formed."""
    errors = []
    license_ = data.get("license")
    if license_ is not None and not isinstance(license_, (str, list)):
        errors.append('"license" must be a string or a list of strings')
    configs = data.get("configs", [])
    if not isinstance(configs, list):
        return [*errors, '"configs" must be a list']
    for i, config in enumerate(configs):
        if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
            errors.append(f'"configs[{i}]" must be a mapping with a string "config_name"')
        elif not _valid_data_files(config.get("data_files", [])):
            errors.append(f'"configs[{i}].data_files" must be a path, a list of paths or a list of {{split, path}}')
    return errors


def _valid_data_files(data_files: Any) -> bool:
    """``data_files`` of a config: ``str``, ``list[str]`` or ``list[{split: str, path: str | list[str]}]``."""
    if isinstance(data_files, str):
        return True
    if not isinstance(data_files, list):
        return False
    return all(
        isinstance(item, str)
        or (
            isinstance(item, dict) and isinstance(item.get("split"), str) and isinstance(item.get("path"), (str, list))
        )
        for item in data_files
    )


def _lfs_patterns(commit: Commit) -> list[str]:
    """Patterns that ``.gitattributes`` routes through LFS."""
    blob = commit.files.get(".gitattributes")
    lines = blob.data.decode(errors="replace").splitlines() if blob else []
    return [parts[0] for parts in (line.split() for line in lines) if len(parts) > 1 and "filter=lfs" in parts[1:]]


def _matches_any(path: str, patterns: Iterable[str]) -> bool:
    """gitattributes-style matching: patterns without ``/`` apply to the file name."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in p else name, p.lstrip("/")) for p in patterns)


def _upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> str:
    """``lfs`` for large, binary or gitattributes-tracked files, ``regular`` otherwise."""
    is_binary = b"\0" in sample
    return "lfs" if size >= LFS_SIZE_THRESHOLD or is_binary or _matches_any(path, patterns) else "regular"


def _ndjson(body: bytes) -> list[dict[str, Any]]:
    """The ``{"key": ..., "value": ...}`` lines of a commit payload."""
    try:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    except ValueError:
        raise HubError(400, "Commit payload is not valid NDJSON") from None
    if not all(isinstance(line, dict) and isinstance(line.get("value"), dict) for line in lines):
        raise HubError(400, 'Every commit line must be {"key": ..., "value": {...}}')
    return lines


def _header_value(text: str) -> str:
    """``text`` squeezed to one ASCII line, safe to send as an HTTP header value."""
    return " ".join(text.split()).encode("ascii", "backslashreplace").decode()[:500]


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single ``bytes=`` range, ``None`` to serve everything."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    if start >= size or end < start:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


# --------------------------------------------------------------------------------------------------------------------
# The application: route table + endpoint implementations
# --------------------------------------------------------------------------------------------------------------------

_TYPE = r"(?P<type>models|datasets|spaces)"
_PREFIX = r"(?:(?P<prefix>datasets|spaces)/)?"
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>[^/]+)"
_RESOLVE_REV = r"(?P<rev>refs/(?:convert|pr)/[^/]+|[^/]+)"  # special refs may arrive unencoded
_OID = r"(?P<oid>[0-9a-f]{64})"
_API = rf"/api/{_TYPE}/{_REPO}"

Route = tuple[str, re.Pattern[str], str]


def _routes(*table: tuple[str, str, str]) -> list[Route]:
    """Compiles ``(methods, pattern, handler name)`` rows; ``methods`` is space separated."""
    return [(methods, re.compile(pattern), name) for methods, pattern, name in table]


ROUTES: list[Route] = _routes(
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("DELETE", r"/api/repos/delete", "delete_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", _API, "repo_info"),
    ("GET", rf"{_API}/revision/{_REV}", "repo_info"),
    ("GET", rf"{_API}/refs", "list_refs"),
    ("GET", rf"{_API}/commits/{_REV}", "list_commits"),
    ("GET", rf"{_API}/tree/{_REV}(?:/(?P<path>.*))?", "tree"),
    ("POST", rf"{_API}/paths-info/{_REV}", "paths_info"),
    ("POST", rf"{_API}/preupload/{_REV}", "preupload"),
    ("POST", rf"{_API}/commit/{_REV}", "commit"),
    ("POST DELETE", rf"{_API}/branch/(?P<branch>.+)", "branch"),
    ("POST", rf"{_API}/tag/{_REV}", "create_tag"),
    ("DELETE", rf"{_API}/tag/(?P<tag>.+)", "delete_tag"),
    ("POST", rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("PUT", rf"/lfs-upload/{_TYPE}/{_REPO}/{_OID}", "lfs_upload"),
    ("POST", rf"/lfs-verify/{_TYPE}/{_REPO}/{_OID}", "lfs_verify"),
    ("GET HEAD", rf"/{_PREFIX}{_REPO}/resolve/{_RESOLVE_REV}/(?P<path>.+)", "resolve"),
)


class HubApp:
    """Routes requests to endpoint methods and keeps counters tests can assert on.

    Attributes:
        requests: ``(method, raw path, status)`` of every request answered.
        unhandled: requests that matched no route (a hint that a client calls an endpoint not implemented here).
        errors: unexpected exceptions raised by endpoint code (answered with HTTP 500).
        lfs_uploads: LFS object ids received through ``PUT``.
        tree_page_size: entries per ``tree`` page (the Hub uses 1000, 50 with ``expand``); lower it to test paging.
        faults: ``None``, or a callable given each request before it is answered that returns ``None`` (answer it),
            an HTTP status to answer instead (the request is not applied), ``"drop"`` (close the connection without
            an answer) or ``"drop-after"`` (apply the request, then close without an answer); see
            ``tests/hub_faults.py``.
    """

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url
        self.store = HubStore()
        self.requests: list[tuple[str, str, int]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.lfs_uploads: list[str] = []
        self.tree_page_size = 1000
        self.faults: Callable[[Request], int | str | None] | None = None

    # ---- dispatch -----------------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Runs the matching route under the store lock and turns :class:`HubError` into an error response."""
        with self.store.lock:
            response = self._respond(request)
            self.requests.append((request.method, request.path, response.status))
            return response

    def _respond(self, request: Request) -> Response:
        try:
            return self._route(request)(request)
        except HubError as err:
            headers = {**err.headers, "X-Error-Message": _header_value(err.message)}
            if err.code:
                headers["X-Error-Code"] = err.code
            return Response.json({"error": err.message}, err.status, headers)
        except Exception as err:  # a bug in this server: report it instead of dropping the connection
            self.errors.append(f"{request.method} {request.path}: {err!r}")
            return Response.json({"error": f"Test Hub server error: {err!r}"}, 500)

    def _route(self, request: Request) -> Callable[[Request], Response]:
        """Finds the handler and fills ``request.params``; 404/405 otherwise."""
        allowed = False
        for methods, pattern, name in ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if request.method not in methods.split():
                allowed = True
                continue
            request.params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            return getattr(self, f"_{name}")
        if allowed:
            raise HubError(405, f"Method {request.method} not allowed on {request.path}")
        self.unhandled.append((request.method, request.path))
        raise HubError(404, f"No route for {request.method} {request.path} in the test Hub server")

    # ---- small shared helpers ------------------------------------------------------------------------------------

    def _repo(self, request: Request) -> Repo:
        return self.store.get(request.repo_type, request.params["repo"])

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.base_url}/{_URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    def _writable_ref(self, repo: Repo, revision: str) -> str:
        """Full ref name of a branch or PR that commits may move; errors for tags, commit ids or unknown revs."""
        ref = repo.find_ref(revision)
        if ref is not None and (ref.startswith("refs/heads/") or ref.startswith("refs/pr/")):
            return ref
        repo.resolve(revision)  # raises RevisionNotFound if unknown
        raise HubError(400, f"Cannot commit to '{revision}': only branches and pull requests can be updated")

    def _file_json(self, path: str, blob: Blob, repo: Repo, commit: Commit, expand: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
        if expand:
            entry["lastCommit"] = repo.last_commit(commit, path).as_json()
        return entry

    def _folder_json(self, path: str, repo: Repo, commit: Commit, expand: bool) -> dict[str, Any]:
        listing = "".join(f"{p} {oid}\n" for p, oid in sorted(commit.subtree(path).items()))
        entry: dict[str, Any] = {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "path": path}
        if expand:
            entry["lastCommit"] = repo.last_commit(commit, path).as_json()
        return entry

    def _entry_json(self, path: str, repo: Repo, commit: Commit, expand: bool) -> dict[str, Any] | None:
        """File or folder entry for ``path``; ``None`` when it does not exist."""
        if path in commit.files:
            return self._file_json(path, commit.files[path], repo, commit, expand)
        return self._folder_json(path, repo, commit, expand) if path and commit.is_dir(path) else None

    # ---- account / repos ----------------------------------------------------------------------------------------

    def _whoami(self, request: Request) -> Response:
        if not (request.headers.get("Authorization") or "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "admin"} for org in ORGS]
        auth = {"type": "access_token", "accessToken": {"displayName": "test-token", "role": "write"}}
        user = {"type": "user", "id": "0" * 24, "name": USER, "fullname": "Test User", "isPro": False}
        return Response.json(
            {**user, "email": f"{USER}@example.com", "emailVerified": True, "orgs": orgs, "auth": auth}
        )

    def _create_repo(self, request: Request) -> Response:
        payload = request.json()
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIXES or not payload.get("name"):
            raise HubError(400, f"Invalid repo creation payload: {payload}")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        existing = self.store.repos.get((repo_type, repo_id))
        if existing is not None:
            url = self._repo_url(existing)
            message = f"You already created this {repo_type} repo"
            return Response.json({"error": message, "url": url}, 409, {"X-Error-Message": _header_value(message)})
        private = payload.get("private") or payload.get("visibility") == "private"
        repo = self.store.create(repo_type, repo_id, bool(private))
        return Response.json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, request: Request) -> Response:
        payload = request.json()
        repo = self.store.get(
            payload.get("type") or "model", f"{payload.get('organization') or USER}/{payload.get('name')}"
        )
        del self.store.repos[(repo.repo_type, repo.repo_id)]
        return Response.json({})

    def _validate_yaml(self, request: Request) -> Response:
        content = request.json().get("content") or ""
        try:
            errors = _card_metadata_errors(_parse_card_yaml(content))
        except ValueError as err:
            errors = [str(err)]
        status = 400 if errors else 200
        return Response.json({"errors": [{"message": error} for error in errors], "warnings": []}, status)

    def _repo_info(self, request: Request) -> Response:
        repo = self._repo(request)
        commit = repo.resolve(request.params.get("rev"))
        info: dict[str, Any] = {"_id": repo.repo_id, "id": repo.repo_id, "author": repo.repo_id.split("/")[0]}
        info |= {"sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private}
        info |= {"gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": []}
        info |= {"siblings": self._siblings(commit, request.flag("blobs"))}
        info["usedStorage"] = sum(blob.size for blob in commit.files.values())
        card = self._card_data(commit)
        if card:
            info["cardData"] = card
            info["tags"] = list(card.get("tags") or [])
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        return Response.json(info)

    @staticmethod
    def _siblings(commit: Commit, blobs: bool) -> list[dict[str, Any]]:
        """``siblings`` of repo info; sizes, blob ids and LFS details only when ``blobs`` is asked for."""
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling |= {"size": blob.size, "blobId": blob.oid}
            if blobs and blob.lfs:
                sibling["lfs"] = {"size": blob.size, "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        return siblings

    @staticmethod
    def _card_data(commit: Commit) -> dict[str, Any]:
        """README metadata at ``commit`` (empty when missing or unparsable)."""
        readme = commit.files.get("README.md")
        try:
            return _parse_card_yaml(readme.data.decode(errors="replace")) if readme else {}
        except ValueError:
            return {}

    # ---- refs and history ---------------------------------------------------------------------------------------

    def _list_refs(self, request: Request) -> Response:
        repo = self._repo(request)
        groups: dict[str, list[dict[str, str]]] = {group: [] for group in _REF_GROUPS.values()}
        for ref, oid in sorted(repo.refs.items()):
            prefix = next(p for p in _REF_GROUPS if ref.startswith(p))
            name = ref if prefix == "refs/pr/" else ref[len(prefix) :]
            groups[_REF_GROUPS[prefix]].append({"name": name, "ref": ref, "targetCommit": oid})
        if not request.flag("include_prs"):
            del groups["pullRequests"]
        return Response.json(groups)

    def _list_commits(self, request: Request) -> Response:
        repo = self._repo(request)
        commits = [
            {"id": c.oid, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": USER}]}
            for c in repo.history(repo.resolve(request.params["rev"]))
        ]
        return Response.json(commits)

    def _branch(self, request: Request) -> Response:
        repo = self._repo(request)
        ref = f"refs/heads/{request.params['branch']}"
        if request.method == "DELETE":
            if ref not in repo.refs:
                raise HubError(404, f"Branch {request.params['branch']} not found", "RevisionNotFound")
            del repo.refs[ref]
            return Response.json({})
        if ref in repo.refs:
            raise HubError(409, f"Branch {request.params['branch']} already exists")
        repo.refs[ref] = repo.resolve(request.json().get("startingPoint")).oid
        return Response.json({})

    def _create_tag(self, request: Request) -> Response:
        repo = self._repo(request)
        tag = request.json().get("tag")
        if not tag:
            raise HubError(400, "Missing tag name")
        if f"refs/tags/{tag}" in repo.refs:
            raise HubError(409, f"Tag {tag} already exists")
        repo.refs[f"refs/tags/{tag}"] = repo.resolve(request.params["rev"]).oid
        return Response.json({})

    def _delete_tag(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo.refs.pop(f"refs/tags/{request.params['tag']}", None) is None:
            raise HubError(404, f"Tag {request.params['tag']} not found", "RevisionNotFound")
        return Response.json({})

    # ---- listing ------------------------------------------------------------------------------------------------

    def _tree(self, request: Request) -> Response:
        repo = self._repo(request)
        commit = repo.resolve(request.params["rev"])
        path = request.params.get("path", "").strip("/")
        expand = request.flag("expand")
        if path in commit.files:
            paths = [path]
        elif commit.is_dir(path):
            paths = self._tree_paths(commit, path, request.flag("recursive"))
        else:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        page_size = min(self.tree_page_size, 50) if expand else self.tree_page_size
        start = int(request.arg("cursor") or 0)
        page = [self._entry_json(p, repo, commit, expand) for p in paths[start : start + page_size]]
        headers = {}
        if start + page_size < len(paths):
            query = {k: v[0] for k, v in request.query.items()} | {"cursor": str(start + page_size)}
            headers["Link"] = f'<{self.base_url}{request.path}?{urlencode(query)}>; rel="next"'
        return Response.json(page, headers=headers)

    @staticmethod
    def _tree_paths(commit: Commit, path: str, recursive: bool) -> list[str]:
        """Entries below folder ``path``: direct children, or every file and folder when ``recursive``."""
        prefix = f"{path}/" if path else ""
        entries: set[str] = set()
        for file_path in commit.files:
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            entries.update(prefix + "/".join(parts[: i + 1]) for i in range(depth))
        return sorted(entries)

    def _paths_info(self, request: Request) -> Response:
        repo = self._repo(request)
        commit = repo.resolve(request.params["rev"])
        content_type = request.headers.get("Content-Type") or ""
        if "json" in content_type:
            form = {k: v if isinstance(v, list) else [str(v)] for k, v in request.json().items()}
        else:
            form = parse_qs(request.body.decode(), keep_blank_values=True)
        expand = (form.get("expand") or ["false"])[0].lower() in ("1", "true")
        entries = [self._entry_json(p.strip("/"), repo, commit, expand) for p in form.get("paths", [])]
        return Response.json([entry for entry in entries if entry is not None])

    # ---- uploads ------------------------------------------------------------------------------------------------

    def _preupload(self, request: Request) -> Response:
        repo = self._repo(request)
        commit = repo.commits[repo.refs[self._writable_ref(repo, request.params["rev"])]]
        patterns = _lfs_patterns(commit)
        files = []
        for item in request.json().get("files", []):
            path, size = item["path"], int(item["size"])
            mode = _upload_mode(path, size, base64.b64decode(item.get("sample", "")), patterns)
            info: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            existing = commit.files.get(path)
            if existing is not None:
                info["oid"] = existing.sha256 if existing.lfs else existing.oid
            files.append(info)
        return Response.json({"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, request: Request) -> Response:
        repo = self._repo(request)
        payload = request.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "The test Hub server only implements LFS uploads")
        objects = []
        for obj in payload.get("objects", []):
            entry: dict[str, Any] = {"oid": obj["oid"], "size": int(obj["size"]), "authenticated": True}
            if obj["oid"] not in repo.lfs_objects:  # present objects get no actions => the client skips them
                suffix = f"{_PLURALS_INV[repo.repo_type]}/{repo.repo_id}/{obj['oid']}"
                entry["actions"] = {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{suffix}", "header": {}},
                    "verify": {"href": f"{self.base_url}/lfs-verify/{suffix}", "header": {}},
                }
            objects.append(entry)
        return Response.json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_upload(self, request: Request) -> Response:
        repo = self._repo(request)
        oid = request.params["oid"]
        if hashlib.sha256(request.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match LFS object id {oid}")
        repo.lfs_objects[oid] = request.body
        self.lfs_uploads.append(oid)
        return Response(200)

    def _lfs_verify(self, request: Request) -> Response:
        repo = self._repo(request)
        obj = request.json()
        data = repo.lfs_objects.get(request.params["oid"])
        if data is None or obj.get("oid") != request.params["oid"] or int(obj.get("size", -1)) != len(data):
            raise HubError(404, f"LFS object {request.params['oid']} not found or size mismatch")
        return Response.json({})

    def _commit(self, request: Request) -> Response:
        repo = self._repo(request)
        target = self._writable_ref(repo, request.params["rev"])
        parent = repo.commits[repo.refs[target]]
        lines = _ndjson(request.body)
        header = next((line["value"] for line in lines if line.get("key") == "header"), {})
        if header.get("parentCommit") and not parent.oid.startswith(header["parentCommit"]):
            raise HubError(412, f"A commit has happened since {header['parentCommit']}; parent is now {parent.oid}")
        files = dict(parent.files)
        for line in lines:
            self._apply_operation(repo, files, line["key"], line["value"])
        pr_url = None
        if request.flag("create_pr"):
            number = 1 + sum(ref.startswith("refs/pr/") for ref in repo.refs)
            target, pr_url = f"refs/pr/{number}", f"{self._repo_url(repo)}/discussions/{number}"
        commit = self.store.add_commit(
            repo, target, parent, files, header.get("summary") or "Commit", header.get("description") or ""
        )
        url = f"{self._repo_url(repo)}/commit/{commit.oid}"
        result = {"success": True, "commitOid": commit.oid, "commitUrl": url, "commitMessage": commit.title}
        return Response.json({**result, "hookOutput": "", "pullRequestUrl": pr_url})

    def _apply_operation(self, repo: Repo, files: dict[str, Blob], key: str, value: dict[str, Any]) -> None:
        """Applies one NDJSON commit line to the working copy ``files``."""
        path = str(value.get("path", "")).strip("/")
        if key == "header":
            return
        if key == "file":
            files[path] = Blob(base64.b64decode(value["content"]))
        elif key == "lfsFile":
            data = repo.lfs_objects.get(value["oid"])
            if data is None:
                raise HubError(400, f"LFS object {value['oid']} for '{path}' was never uploaded")
            files[path] = Blob(data, lfs=True)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(f"{path}/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation '{key}'")

    # ---- downloads ----------------------------------------------------------------------------------------------

    def _resolve(self, request: Request) -> Response:
        repo = self._repo(request)
        commit = repo.resolve(request.params["rev"])
        blob = commit.files.get(request.params["path"])
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{blob.etag}"',
            "X-Repo-Commit": commit.oid,
        }
        if blob.lfs:
            headers |= {"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)}
        span = _parse_range(request.headers.get("Range"), blob.size)
        if span is None:
            return Response(200, blob.data, headers)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        return Response(206, blob.data[start : end + 1], headers)


# --------------------------------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP/1.1 requests into :class:`Request` objects for :class:`HubApp`."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HttpServer

    def do_GET(self) -> None:
        """Serves every method (the app checks which ones a route accepts)."""
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=self._read_body(),
        )
        app = self.server.app
        fault = app.faults(request) if app.faults is not None else None
        if fault in ("drop", "drop-after"):  # the client sees the connection close unanswered
            if fault == "drop-after":  # ... after the request was applied (an answer lost on the way back)
                app.handle(request)
            app.requests.append((request.method, request.path, 0))
            self.close_connection = True
            return
        if fault is not None:
            app.requests.append((request.method, request.path, int(fault)))
            message = f"injected fault {fault}"
            self._send(Response.json({"error": message}, int(fault), {"X-Error-Message": message, "Retry-After": "0"}))
            return
        self._send(app.handle(request))

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # optional trailers, then the blank line
            pass
        return b"".join(chunks)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, fmt: str, *args: Any) -> None:
        """Silenced: requests are recorded in :attr:`HubApp.requests` instead."""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    app: HubApp


class HubServer:
    """The Hub test server. ``start()`` binds ``127.0.0.1`` on a free port and serves from a daemon thread.

    Example:
        >>> with HubServer() as hub:
        ...     hub.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.url = ""
        self.app = HubApp()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> HubStore:
        """Repositories held by the server."""
        return self.app.store

    @property
    def lfs_uploads(self) -> list[str]:
        """LFS object ids received through ``PUT`` so far."""
        return self.app.lfs_uploads

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every request answered so far."""
        return self.app.requests

    @property
    def unhandled(self) -> list[tuple[str, str]]:
        """Requests that matched no route."""
        return self.app.unhandled

    @property
    def errors(self) -> list[str]:
        """Unexpected server-side exceptions (each answered with HTTP 500)."""
        return self.app.errors

    def start(self) -> HubServer:
        """Starts serving; sets :attr:`url` to ``http://127.0.0.1:PORT``."""
        if self._httpd is not None:
            return self
        self._httpd = _HttpServer(("127.0.0.1", self.port), _Handler)
        self._httpd.app = self.app
        self.port = self._httpd.server_address[1]
        self.url = self.app.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the listening socket."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------------------------
# Session setup
# --------------------------------------------------------------------------------------------------------------------

_SESSION_SERVER: HubServer | None = None
_SESSION_PORT: int | None = None
_IMPORT_TIME_MODULES = ("huggingface_hub.constants", "datasets.config")
# Variables that would redirect the endpoint or caches, or switch the clients offline.
_CLEARED_ENV = (
    "HUGGINGFACE_CO_STAGING",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "TRANSFORMERS_OFFLINE",
)


def configure_session(cache_root: str | os.PathLike[str] | None = None) -> str:
    """Points the HF libraries at the session server's address (a free port on 127.0.0.1) without starting it.

    Must run before ``huggingface_hub`` or ``datasets`` is imported: both read these variables at import time.
    Caches go to ``cache_root`` or, by default, to a private temporary folder removed at interpreter exit. The server
    itself starts on first use (:func:`start_session_server`, i.e. the ``hub`` fixture), so test runs that never touch
    the Hub never start it, and any client call without it fails fast (connection refused) instead of leaving the
    machine.

    Raises:
        RuntimeError: if either library was imported first (its endpoint and caches are already frozen).
    """
    global _SESSION_PORT
    if _SESSION_PORT is not None:
        return f"http://127.0.0.1:{_SESSION_PORT}"
    too_early = [name for name in _IMPORT_TIME_MODULES if name in sys.modules]
    if too_early:
        raise RuntimeError(
            f"{', '.join(too_early)} imported before configure_session(): call it at the very top of the root "
            "conftest.py, before anything imports huggingface_hub or datasets."
        )
    if cache_root is None:
        cache_root = tempfile.mkdtemp(prefix="hf-hub-test-")
        atexit.register(shutil.rmtree, cache_root, ignore_errors=True)
    with socket.socket() as probe:  # a free port now; the server binds it when first asked for
        probe.bind(("127.0.0.1", 0))
        _SESSION_PORT = probe.getsockname()[1]
    url = f"http://127.0.0.1:{_SESSION_PORT}"
    _configure_environment(url, os.fspath(cache_root))
    return url


def start_session_server(cache_root: str | os.PathLike[str] | None = None) -> HubServer:
    """Starts (once per process) the server every test shares, at the address :func:`configure_session` set."""
    global _SESSION_SERVER
    if _SESSION_SERVER is not None:
        return _SESSION_SERVER
    configure_session(cache_root)
    server = HubServer(port=_SESSION_PORT).start()
    atexit.register(server.stop)
    _SESSION_SERVER = server
    return server


def _configure_environment(endpoint: str, cache_root: str) -> None:
    """Sets the variables ``huggingface_hub``/``datasets`` read at import time so they only talk to ``endpoint``."""
    hf_home = os.path.join(cache_root, "hf_home")
    for name in _CLEARED_ENV:
        os.environ.pop(name, None)
    os.environ.update(
        {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_TOKEN": TEST_TOKEN,
            "HF_HOME": hf_home,
            "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
            "HF_TOKEN_PATH": os.path.join(hf_home, "token"),
            "HF_DATASETS_CACHE": os.path.join(cache_root, "datasets"),
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
        }
    )
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


__all__ = ["HubApp", "HubError", "HubServer", "HubStore", "Request", "Response", "start_session_server"]
