"""The repo's ``scripts/*.py`` loaded as modules, for the tests that call their ``main`` in this process, and the
small saved dataset and run they train on."""

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


def saved_digits_run(root: Path) -> tuple[str, str]:
    """64 digits saved to disk under ``root/digits`` and their reinforcement run ``root/digits+`` (``rrc``, N=3,
    k=5, a tiny local teacher): what the scripts are given as ``--dataset`` and ``--run-dir``."""
    from hf_dr.generate.run import reinforce
    from tests.data_utils import digits_dataset
    from tests.utils_teacher import save_teacher

    images = digits_dataset(64)
    images.save_to_disk(str(root / "digits"))
    teacher = save_teacher(str(root / "teachers"), seed=0)
    reinforce(images, [teacher], "rrc", num_samples=3, topk=5, seed=0, output_dir=str(root / "digits+"),
              key_column="key", num_workers=0, progress=False)
    return str(root / "digits"), str(root / "digits+")
