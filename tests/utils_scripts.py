"""The repo's ``scripts/*.py`` loaded as modules, for the tests that call their ``main`` in this process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/{name}.py`` as a fresh module (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"hf_dr_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
