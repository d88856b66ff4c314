"""Loaded by pytest before anything else, for the tests and for the doctests of hf_dr/ and builders/ alike.

huggingface_hub and datasets read HF_ENDPOINT, HF_HUB_DISABLE_XET, HF_TOKEN and their cache paths once, at import
time: point them at the local Hub test server's address (127.0.0.1) before anything imports them. The server itself
starts only when a test asks for the ``hub`` fixture (tests/conftest.py), or when a doctest of ``hf_dr.hub`` runs
(:func:`hf_dr.push_to_hub` and :func:`hf_dr.load_reinforced` push to and load from it, as a user would the Hub).
"""

import pytest

from tests.hub_server import configure_session, start_session_server

configure_session()


@pytest.fixture(autouse=True)
def _hub_for_hub_doctests(request: pytest.FixtureRequest) -> None:
    if isinstance(request.node, pytest.DoctestItem) and request.node.name.startswith("hf_dr.hub."):
        start_session_server()
