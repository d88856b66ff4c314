"""Faults injected into the local Hub test server, per endpoint: an HTTP status (429, 500, 503, 403...), a dropped
connection (``"drop"``) or an answer lost after the request was applied (``"drop-after"``) for the first ``times``
requests that reach that endpoint.

A hook in the server (``HubApp.faults``, read by its request handler before the request is applied) rather than a
separate proxy: the clients read ``HF_ENDPOINT`` once, at import, and the LFS upload URLs the server hands out point
at the server itself, so a proxy in front would see only part of the traffic unless it rewrote bodies. A faulted
request is not applied (as with a proxy that fails before forwarding), except with ``"drop-after"``.

Example::

    with inject(hub, "commit", 503, times=2, repo_id=repo) as faults:
        push_to_hub(run_dir, repo)
    assert faults.count == 2
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from tests.hub_server import HubServer, Request

# endpoint name -> (method, pattern of the request path); {repo} is the repo id, escaped
ENDPOINTS: dict[str, tuple[str, str]] = {
    "whoami": ("GET", r"/api/whoami-v2"),
    "repo-info": ("GET", r"/api/datasets/{repo}(/revision/[^/]+)?"),
    "create-repo": ("POST", r"/api/repos/create"),
    "preupload": ("POST", r"/api/datasets/{repo}/preupload/.+"),
    "lfs-batch": ("POST", r"/datasets/{repo}\.git/info/lfs/objects/batch"),
    "lfs-put": ("PUT", r"/lfs-upload/datasets/{repo}/[0-9a-f]{{64}}"),
    "lfs-verify": ("POST", r"/lfs-verify/datasets/{repo}/[0-9a-f]{{64}}"),
    "validate-yaml": ("POST", r"/api/validate-yaml"),
    "commit": ("POST", r"/api/datasets/{repo}/commit/.+"),
    "tree": ("GET", r"/api/datasets/{repo}/tree/.+"),
    "paths-info": ("POST", r"/api/datasets/{repo}/paths-info/.+"),
    "resolve": ("GET", r"/datasets/{repo}/resolve/.+"),  # another split's columns; a metadata-only push: the source's
    "resolve-head": ("HEAD", r"/datasets/{repo}/resolve/.+"),  # files (issue 23)
}


@dataclass
class Faults:
    """Answers the first ``times`` requests to ``endpoint`` (of ``repo_id``, when given) with ``fault``."""

    endpoint: str
    fault: int | str
    times: int
    repo_id: str | None = None
    count: int = 0

    def __post_init__(self) -> None:
        self.method, pattern = ENDPOINTS[self.endpoint]
        self.pattern = re.compile(pattern.format(repo=re.escape(self.repo_id) if self.repo_id else "[^/]+/[^/]+"))

    def matches(self, method: str, path: str) -> bool:
        """Whether a request ``method path`` reaches this endpoint."""
        return method == self.method and self.pattern.fullmatch(path) is not None

    def __call__(self, request: Request) -> int | str | None:
        if not self.matches(request.method, request.path) or self.count >= self.times:
            return None
        self.count += 1
        return self.fault


@contextlib.contextmanager
def inject(hub: HubServer, endpoint: str, fault: int | str, times: int = 1, repo_id: str | None = None
           ) -> Iterator[Faults]:
    """Installs :class:`Faults` on ``hub`` for the ``with`` block."""
    faults = Faults(endpoint, fault, times, repo_id)
    hub.app.faults = faults
    try:
        yield faults
    finally:
        hub.app.faults = None
