"""End-to-end tests of ``tests/hub_server.py`` through the real ``huggingface_hub`` and ``datasets`` clients."""
