"""hf-dr as users get it: a wheel built from the repo, installed without its dependencies in a fresh venv that cannot
see the source tree, pushes a run with its dataset card (the template ships as package data of ``hf_dr.cards``; the
repository's top-level ``builders/`` and ``cards/`` install as ``hf_dr.builders`` and ``hf_dr.cards``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

from hf_dr import reinforce
from tests.data_utils import digits_dataset
from tests.hub_server import TEST_TOKEN, HubServer
from tests.utils_hub import server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]  # the test venv's: torch, datasets, ... (not its .pth files)
COPIED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".ruff_cache", "runs",
                                "outputs")
WHERE = """
import importlib.util, json, sys
import hf_dr, hf_dr.builders, hf_dr.cards
from hf_dr.builders import get_builder
from hf_dr.hub.card import default_template
found = {"hf_dr": hf_dr.__file__, "cards": hf_dr.cards.__file__, "builders": hf_dr.builders.__file__,
         "card": importlib.util.find_spec("hf_dr.hub.card").origin}
print(json.dumps({**found, "tests": importlib.util.find_spec("tests") is not None, "path": sys.path,
                  "template": len(default_template()), "recipe": get_builder("cifar100-plus").dataset_id,
                  "top_level": [name for name in ("builders", "cards") if importlib.util.find_spec(name)]}))
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the hf-dr wheel, built from a copy of the repo (the build writes build/ and
    *.egg-info next to the sources: never in the repo)."""
    root = tmp_path_factory.mktemp("packaging")
    source = shutil.copytree(ROOT, root / "source", ignore=COPIED)
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(root / "dist")])
    wheels = list((root / "dist").glob("hf_dr-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"hf_dr"}, tops  # no site-packages/builders or site-packages/cards
    assert {"hf_dr/builders/imagenet_plus.py", "hf_dr/cards/reinforced_dataset.md"} <= set(wheel.namelist())
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])  # pip is the test venv's (--python below)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheels[0])])
    return venv


def _environment(tmp_path: Path, endpoint: str) -> dict[str, str]:
    """The dependencies visible through PYTHONPATH (its .pth files, the editable install's finder among them, are
    not processed), the local Hub server, a private HF_HOME."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("HF_", "PYTHON"))}
    home = tmp_path / "hf_home"
    return {**environment, "PYTHONPATH": SITE_PACKAGES, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": TEST_TOKEN, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
            "HF_DATASETS_CACHE": str(tmp_path / "datasets"), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_the_wheel_pushes_a_run_with_its_card(installed, hub: HubServer, tmp_path):
    work = tmp_path / "work"  # the subprocesses' working directory: outside the source tree
    work.mkdir()
    environment = _environment(tmp_path, hub.url)
    where = json.loads(_run([str(installed / "bin" / "python"), "-c", WHERE], cwd=work, env=environment).stdout)
    for name in ("hf_dr", "cards", "builders", "card"):
        assert Path(where[name]).is_relative_to(installed), (name, where[name])
    assert not where["tests"] and where["template"] > 1000 and where["recipe"] == "uoft-cs/cifar100"
    assert where["top_level"] == []  # builders/ and cards/ install as hf_dr.builders and hf_dr.cards only
    listed = _run([str(installed / "bin" / "python"), "-m", "hf_dr", "builders"], cwd=work, env=environment).stdout
    assert "cifar100_plus" in listed  # python -m hf_dr is the hf-dr command
    inside = [p for p in where["path"] if p and Path(p).resolve().is_relative_to(ROOT)]
    assert set(inside) <= {SITE_PACKAGES}, where["path"]  # the dependencies (a .venv in the repo), never the sources

    digits = digits_dataset(24)
    digits.save_to_disk(str(tmp_path / "digits"))
    members = [save_teacher(str(tmp_path / "teachers"), seed=0)]
    run_dir = reinforce(digits, members, "rrc", num_samples=2, topk=3, seed=0, output_dir=str(tmp_path / "run"),
                        key_column="key", batch_size=64, num_workers=0, progress=False)
    repo_id = unique_repo("wheel-digits-plus")
    pushed = _run([str(installed / "bin" / "hf-dr"), "push", "--run-dir", run_dir, repo_id, "--dataset",
                   str(tmp_path / "digits"), "--license", "cc-by-4.0"], cwd=work, env=environment)
    assert f"to datasets/{repo_id} at commit" in pushed.stdout

    card = DatasetCard.load(repo_id, repo_type="dataset")
    card.validate(repo_type="dataset")
    assert card.data.license == "cc-by-4.0" and "dataset-reinforcement" in card.data.tags
    assert "**Layout: self-contained.**" in card.text and "### Augmentation policy `rrc`" in card.text
    assert f'load_reinforced("{repo_id}", split="train", size=32)' in card.text
    assert "| augmentations per image (N) | 2 |" in card.text and "@InProceedings{Faghri_2023_ICCV" in card.text
