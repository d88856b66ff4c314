"""Points ``huggingface_hub`` and ``datasets`` at the local Hub test server.

``start_session_server()`` must run before either library is imported: both read ``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET`` and their cache paths once, at import time. The root ``tests/conftest.py`` is expected to run
the same call first (see ``tests/conftest_hub_snippet.py``); here it then returns that same server.
"""

from tests.hub_server import HubServer, start_session_server

HUB_SERVER = start_session_server()

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def hub() -> HubServer:
    """The session's Hub server (``hub.url`` is the ``HF_ENDPOINT`` every client uses)."""
    return HUB_SERVER


@pytest.fixture(autouse=True)
def _server_stays_consistent(hub: HubServer) -> Iterator[None]:
    """Fails a test whose clients hit an endpoint the server lacks, or made the server raise."""
    unhandled, errors = len(hub.unhandled), len(hub.errors)
    yield
    assert hub.unhandled[unhandled:] == [], "clients called endpoints the test server does not implement"
    assert hub.errors[errors:] == [], "the test server raised while answering"
