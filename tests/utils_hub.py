"""Hub state shared by the hub and card tests, built once per session on the local Hub server: a source dataset
repo (real digits, with a license), one reinforcement run of it read at a pinned commit, and the run pushed in both
layouts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
from huggingface_hub import HfApi, metadata_update

from hf_dr import push_to_hub
from hf_dr.generate.run import reinforce
from tests.data_utils import digits_dataset
from tests.hub_server import HubServer
from tests.utils_teacher import save_teacher

NUM_ROWS, NUM_SAMPLES, TOPK, SHARD_SIZE, SIZE = 48, 4, 5, 16, 32
POLICY = "rrc+ra_re"
SOURCE_LICENSE = "cc-by-4.0"


@dataclass(frozen=True)
class Published:
    """The session's source repo, run and pushed repos."""

    source_id: str
    source_commit: str
    source: datasets.Dataset  # loaded from the source repo at source_commit
    run_dir: str
    members: list[dict]
    self_contained: str
    metadata_only: str
    cache_dir: str


def unique_repo(name: str) -> str:
    """A dataset repo id no other test uses on the shared server."""
    return f"tester/{name}-{uuid.uuid4().hex[:8]}"


def run(dataset: datasets.Dataset, members: list[dict], output_dir: str | os.PathLike, **options) -> str:
    """``hf_dr.reinforce`` with the tests' small settings."""
    arguments = {"policy": POLICY, "num_samples": NUM_SAMPLES, "topk": TOPK, "seed": 0, "key_column": "key",
                 "shard_size": SHARD_SIZE, "batch_size": 64, "num_workers": 0, "progress": False, **options}
    return reinforce(dataset, members, output_dir=str(output_dir), **arguments)


def pushed_digits(count: int, name: str, cache_dir: str) -> tuple[str, str, datasets.Dataset]:
    """``count`` real digits pushed as a new source repo: its id, its commit, and the dataset loaded back at it."""
    source_id = unique_repo(name)
    digits_dataset(count).push_to_hub(source_id)
    commit = HfApi().dataset_info(source_id).sha
    return source_id, commit, datasets.load_dataset(source_id, split="train", revision=commit, cache_dir=cache_dir)


def metadata_only_plus(source_id: str, root: Path, name: str) -> str:
    """The source repo ``source_id`` (already on the server) loaded at its current commit into ``root/cache``,
    reinforced with the recorded source, and pushed metadata-only as a new repo: its id."""
    commit = HfApi().dataset_info(source_id).sha
    source = datasets.load_dataset(source_id, split="train", revision=commit, cache_dir=str(root / "cache"))
    run_dir = run(source, [save_teacher(str(root / "teachers"), seed=0)], root / "run",
                  source={"id": source_id, "revision": commit, "split": "train"})
    repo_id = unique_repo(name)
    push_to_hub(run_dir, repo_id, layout="metadata-only")
    return repo_id


_CACHE: dict[str, Published] = {}


def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Builds the shared state on first use (about 10 s), then returns it."""
    if "state" not in _CACHE:
        _CACHE["state"] = _publish(tmp_path_factory.mktemp("hub-state"))
    return _CACHE["state"]


def _publish(root: Path) -> Published:
    cache_dir = str(root / "datasets-cache")
    source_id, _, _ = pushed_digits(NUM_ROWS, "digits", cache_dir)
    metadata_update(source_id, {"license": SOURCE_LICENSE}, repo_type="dataset", overwrite=True)
    commit = HfApi().dataset_info(source_id).sha
    source = datasets.load_dataset(source_id, split="train", revision=commit, cache_dir=cache_dir)
    members = [save_teacher(str(root / "teachers"), seed=0), save_teacher(str(root / "teachers"), seed=1)]
    run_dir = run(source, members, root / "run", source={"id": source_id, "revision": commit, "split": "train"})
    self_contained, metadata_only = unique_repo("digits-plus"), unique_repo("digits-plus-meta")
    push_to_hub(run_dir, self_contained, dataset=source)
    push_to_hub(run_dir, metadata_only, layout="metadata-only")
    return Published(source_id, commit, source, run_dir, members, self_contained, metadata_only, cache_dir)


@pytest.fixture(autouse=True)
def server_stays_consistent(hub: HubServer) -> Iterator[None]:
    """Fails a test whose clients hit an endpoint the server lacks, or made the server raise."""
    unhandled, errors = len(hub.unhandled), len(hub.errors)
    yield
    assert hub.unhandled[unhandled:] == [], "clients called endpoints the test server does not implement"
    assert hub.errors[errors:] == [], "the test server raised while answering"
