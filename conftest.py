"""Loaded by pytest before anything else, for the tests and for the doctests of hf_dr/ and builders/ alike.

huggingface_hub and datasets read HF_ENDPOINT, HF_HUB_DISABLE_XET, HF_TOKEN and their cache paths once, at import
time: point them at the local Hub test server's address (127.0.0.1) before anything imports them. The server itself
starts only when a test asks for the ``hub`` fixture (tests/conftest.py).
"""

from tests.hub_server import configure_session

configure_session()
