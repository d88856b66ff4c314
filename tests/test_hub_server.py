"""Drives the local Hub server only through the real ``huggingface_hub`` and ``datasets`` clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.numpy import load_file, save

from tests.hub_server import HubServer

ROWS_PER_SHARD = 150
README = """---
license: mit
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---
# Test dataset

Rows with an integer label and a binary payload.
"""


@pytest.fixture(autouse=True)
def _server_stays_consistent(hub: HubServer) -> Iterator[None]:
    """Fails a test whose clients hit an endpoint the server lacks, or made the server raise."""
    unhandled, errors = len(hub.unhandled), len(hub.errors)
    yield
    assert hub.unhandled[unhandled:] == [], "clients called endpoints the test server does not implement"
    assert hub.errors[errors:] == [], "the test server raised while answering"


@dataclass
class UploadedDataset:
    """A dataset folder pushed to the server, with the rows its parquet shards hold."""

    repo_id: str
    folder: Path
    rows: list[dict[str, Any]]
    commit: str


def _unique(name: str) -> str:
    """A repo id no other test uses on the shared server."""
    return f"test-org/{name}-{uuid.uuid4().hex[:8]}"


def _write_dataset(folder: Path, num_shards: int, first_idx: int = 0) -> list[dict[str, Any]]:
    """Writes ``README.md`` plus ``num_shards`` parquet shards under ``folder/data``; returns their rows."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(README)
    rows: list[dict[str, Any]] = []
    for shard in range(num_shards):
        start = first_idx + shard * ROWS_PER_SHARD
        idx = list(range(start, start + ROWS_PER_SHARD))
        table = pa.table(
            {
                "idx": pa.array(idx, pa.int64()),
                "label": pa.array([i % 7 for i in idx], pa.int64()),
                "payload": pa.array([i.to_bytes(4, "little") * 4 for i in idx], pa.binary()),
            }
        )
        pq.write_table(table, folder / "data" / f"train-{shard:05d}-of-{num_shards:05d}.parquet")
        rows.extend(table.to_pylist())
    return rows


def _push_dataset(api: HfApi, folder: Path, name: str, num_shards: int = 2) -> UploadedDataset:
    repo_id = _unique(name)
    rows = _write_dataset(folder, num_shards)
    api.create_repo(repo_id, repo_type="dataset")
    commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    return UploadedDataset(repo_id, folder, rows, commit.oid)


def _by_idx(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row["idx"])


@pytest.fixture(scope="module")
def api() -> HfApi:
    return HfApi()


@pytest.fixture(scope="module")
def dataset_repo(api: HfApi, tmp_path_factory: pytest.TempPathFactory) -> UploadedDataset:
    """A dataset repo with a README (``configs``) and two parquet shards, pushed once for the module."""
    return _push_dataset(api, tmp_path_factory.mktemp("dataset"), "shards")


def test_whoami_reports_fake_user(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "tester"
    assert [org["name"] for org in me["orgs"]] == ["test-org"]


def test_create_repo_twice(api: HfApi) -> None:
    repo_id = _unique("twice")
    first = api.create_repo(repo_id, repo_type="dataset")
    assert api.create_repo(repo_id, repo_type="dataset", exist_ok=True) == first
    assert (first.repo_id, first.repo_type) == (repo_id, "dataset")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(repo_id, repo_type="dataset")
    assert err.value.response.status_code == 409


def test_upload_folder_lists_files(api: HfApi, dataset_repo: UploadedDataset, hub: HubServer) -> None:
    shards = [f"data/train-{i:05d}-of-00002.parquet" for i in range(2)]
    files = api.list_repo_files(dataset_repo.repo_id, repo_type="dataset")
    assert files == [".gitattributes", "README.md", *shards]
    tree = {entry.path: entry for entry in api.list_repo_tree(dataset_repo.repo_id, "data", repo_type="dataset")}
    assert sorted(tree) == shards
    assert all(entry.lfs is not None and entry.lfs.size == entry.size for entry in tree.values())
    assert {entry.lfs.sha256 for entry in tree.values() if entry.lfs} <= set(hub.lfs_uploads)  # went through PUT
    [readme] = api.get_paths_info(dataset_repo.repo_id, ["README.md"], expand=True, repo_type="dataset")
    assert readme.lfs is None
    assert readme.last_commit is not None and readme.last_commit.oid == dataset_repo.commit


def test_identical_reupload_sends_no_lfs_and_no_commit(
    api: HfApi, dataset_repo: UploadedDataset, hub: HubServer
) -> None:
    uploads, requests = len(hub.lfs_uploads), len(hub.requests)
    commit = api.upload_folder(folder_path=dataset_repo.folder, repo_id=dataset_repo.repo_id, repo_type="dataset")
    assert commit.oid == dataset_repo.commit
    assert len(hub.lfs_uploads) == uploads
    assert not [path for _, path, _ in hub.requests[requests:] if "/commit/" in path]


def test_hf_hub_download_returns_committed_bytes(dataset_repo: UploadedDataset, tmp_path: Path) -> None:
    for filename in ("README.md", "data/train-00001-of-00002.parquet"):
        path = hf_hub_download(dataset_repo.repo_id, filename, repo_type="dataset", cache_dir=tmp_path)
        assert Path(path).read_bytes() == (dataset_repo.folder / filename).read_bytes()
        assert Path(path).as_posix().endswith(f"/snapshots/{dataset_repo.commit}/{filename}")


def test_hf_file_system_info_and_range_reads(dataset_repo: UploadedDataset, hub: HubServer) -> None:
    fs = HfFileSystem()
    remote = f"datasets/{dataset_repo.repo_id}/data/train-00000-of-00002.parquet"
    local = (dataset_repo.folder / "data/train-00000-of-00002.parquet").read_bytes()
    requests = len(hub.requests)
    assert fs.info(remote)["size"] == len(local)
    assert fs.cat_file(remote, start=4, end=40) == local[4:40]
    with fs.open(remote, "rb", block_size=64) as file:
        file.seek(len(local) - 8)
        assert file.read() == local[-8:]
    assert any(status == 206 for _, _, status in hub.requests[requests:])
    assert not fs.exists(f"datasets/{dataset_repo.repo_id}/data/missing.parquet")


def test_load_dataset_returns_rows(dataset_repo: UploadedDataset, tmp_path: Path) -> None:
    ds = datasets.load_dataset(dataset_repo.repo_id, split="train", cache_dir=str(tmp_path))
    assert ds.num_rows == len(dataset_repo.rows)
    assert _by_idx(ds.to_list()) == _by_idx(dataset_repo.rows)


def test_streaming_iterates_all_rows(dataset_repo: UploadedDataset) -> None:
    stream = datasets.load_dataset(dataset_repo.repo_id, split="train", streaming=True)
    assert _by_idx(list(stream)) == _by_idx(dataset_repo.rows)


def test_pinned_revision_survives_new_commit(api: HfApi, tmp_path: Path) -> None:
    first = _push_dataset(api, tmp_path / "v1", "pinned", num_shards=1)
    new_rows = _write_dataset(tmp_path / "v2", num_shards=2, first_idx=1000)
    api.upload_folder(
        folder_path=tmp_path / "v2", repo_id=first.repo_id, repo_type="dataset", delete_patterns=["data/*"]
    )
    api.create_tag(first.repo_id, tag="v1", revision=first.commit, repo_type="dataset")

    def load(revision: str | None) -> list[dict[str, Any]]:
        cache_dir = str(tmp_path / f"cache-{revision}")
        ds = datasets.load_dataset(first.repo_id, split="train", revision=revision, cache_dir=cache_dir)
        return _by_idx(ds.to_list())

    assert load(None) == _by_idx(new_rows)
    assert load(first.commit) == load("v1") == _by_idx(first.rows)
    titles = [commit.title for commit in api.list_repo_commits(first.repo_id, repo_type="dataset")]
    assert titles == ["Upload folder using huggingface_hub"] * 2 + ["initial commit"]


def test_branches_tags_and_pull_requests(api: HfApi, tmp_path: Path) -> None:
    repo_id = _unique("refs")
    api.create_repo(repo_id, repo_type="dataset")
    api.create_branch(repo_id, branch="dev", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"on dev", path_in_repo="notes.txt", repo_id=repo_id, repo_type="dataset", revision="dev"
    )
    pr = api.upload_file(
        path_or_fileobj=b"proposed", path_in_repo="notes.txt", repo_id=repo_id, repo_type="dataset", create_pr=True
    )
    refs = api.list_repo_refs(repo_id, repo_type="dataset", include_pull_requests=True)
    assert sorted(branch.name for branch in refs.branches) == ["dev", "main"]
    assert [ref.ref for ref in refs.pull_requests or []] == [pr.pr_revision] == ["refs/pr/1"]
    assert "notes.txt" not in api.list_repo_files(repo_id, repo_type="dataset")

    def read(revision: str) -> bytes:
        path = hf_hub_download(repo_id, "notes.txt", repo_type="dataset", revision=revision, cache_dir=tmp_path)
        return Path(path).read_bytes()

    assert (read("dev"), read(pr.pr_revision)) == (b"on dev", b"proposed")


def test_dataset_card_load_and_validate(api: HfApi, dataset_repo: UploadedDataset) -> None:
    card = DatasetCard.load(dataset_repo.repo_id)
    assert card.data.license == "mit"
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    card.validate()
    with pytest.raises(ValueError, match="config_name"):  # parses locally, rejected by the server
        DatasetCard("---\nconfigs:\n- data_files: data/*.parquet\n---\n# unnamed config\n").validate()


@pytest.mark.parametrize("readme", ["---\nlicense: [mit\n---\n", "---\n- a list\n---\n", "---\nconfigs: x\n---\n"])
def test_upload_of_invalid_card_is_refused(api: HfApi, dataset_repo: UploadedDataset, readme: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        api.upload_file(
            path_or_fileobj=readme.encode(),
            path_in_repo="README.md",
            repo_id=dataset_repo.repo_id,
            repo_type="dataset",
        )


ERROR_CASES = {
    "info-missing-repo": (RepositoryNotFoundError, lambda api, repo: api.dataset_info("test-org/no-such-repo")),
    "download-missing-repo": (
        RepositoryNotFoundError,
        lambda api, repo: hf_hub_download("test-org/no-such-repo", "README.md", repo_type="dataset"),
    ),
    "info-missing-branch": (RevisionNotFoundError, lambda api, repo: api.dataset_info(repo, revision="nope")),
    "info-no-parquet-export": (
        RevisionNotFoundError,
        lambda api, repo: api.dataset_info(repo, revision="refs/convert/parquet"),
    ),
    "download-missing-branch": (
        RevisionNotFoundError,
        lambda api, repo: hf_hub_download(repo, "README.md", repo_type="dataset", revision="nope"),
    ),
    "download-missing-file": (
        EntryNotFoundError,
        lambda api, repo: hf_hub_download(repo, "missing.txt", repo_type="dataset"),
    ),
    "delete-missing-file": (
        EntryNotFoundError,
        lambda api, repo: api.delete_file("missing.txt", repo, repo_type="dataset"),
    ),
}


@pytest.mark.parametrize(("error", "call"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_errors_map_to_client_exceptions(
    api: HfApi, dataset_repo: UploadedDataset, error: type[Exception], call: Callable[[HfApi, str], object]
) -> None:
    with pytest.raises(error):
        call(api, dataset_repo.repo_id)


def test_load_dataset_on_missing_repo_raises() -> None:
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset("test-org/no-such-dataset", split="train")


def test_model_repo_with_safetensors(api: HfApi, tmp_path: Path) -> None:
    repo_id = _unique("model")
    weights = {"weight": np.arange(12, dtype=np.float32).reshape(3, 4)}
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=save(weights), path_in_repo="model.safetensors", repo_id=repo_id)
    metadata = api.get_safetensors_metadata(repo_id)  # reads the header through HTTP range requests
    assert metadata.parameter_count == {"F32": 12}
    path = hf_hub_download(repo_id, "model.safetensors", cache_dir=tmp_path)
    np.testing.assert_array_equal(load_file(path)["weight"], weights["weight"])
    assert api.model_info(repo_id, files_metadata=True).siblings[-1].lfs is not None


def test_tree_pagination(
    api: HfApi, dataset_repo: UploadedDataset, hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.app, "tree_page_size", 1)
    requests = len(hub.requests)
    files = api.list_repo_files(dataset_repo.repo_id, repo_type="dataset")
    assert len(files) == 4
    assert sum("/tree/" in path for _, path, _ in hub.requests[requests:]) == 5  # 4 files + 1 folder, 1 per page
