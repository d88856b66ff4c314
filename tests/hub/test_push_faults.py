"""Pushes that meet faults: Hub errors and dropped connections on each endpoint (tests/hub_faults.py), a token the
Hub refuses, a run folder changed while it is packed, interrupted and killed pushes. A push publishes the whole run
or nothing new, retries what is transient, and leaves no staging folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from huggingface_hub import HfApi

from hf_dr import push_to_hub
from hf_dr.cli import main as cli_main
from hf_dr.errors import CorruptShardError, HubAuthError, HubUnavailableError, InvalidConfigError, RunLockedError
from hf_dr.generate.lock import RunLock
from hf_dr.hub import build as build_module
from hf_dr.hub.upload import BACKOFF_ENV, RETRIES_ENV, STAGING_PREFIX
from tests.hub_faults import ENDPOINTS, Faults, inject
from tests.utils_hub import Published, published, unique_repo

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch, tmp_path) -> str:
    """Retries without real waits, and a private temporary directory to look for staging folders in."""
    monkeypatch.setenv(RETRIES_ENV, "3")
    monkeypatch.setenv(BACKOFF_ENV, "0.01")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return str(temp)


def _push(state: Published, repo: str, **options) -> str:
    return push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=3, **options)


def _files(repo: str) -> dict[str, str]:
    """Every file of the repo's main branch and its blob id (what a push published; the card's blob names the repo,
    so only its presence counts)."""
    info = HfApi().dataset_info(repo, files_metadata=True)
    return {s.rfilename: s.blob_id if s.rfilename != "README.md" else "card" for s in info.siblings
            if s.rfilename != ".gitattributes"}


@pytest.fixture(scope="module")
def clean(state) -> dict[str, str]:
    """The files of a push that met no fault."""
    repo = unique_repo("clean")
    _push(state, repo)
    return _files(repo)


def _staging(temp: str) -> list[str]:
    return [name for name in os.listdir(temp) if name.startswith(STAGING_PREFIX)]


TRANSIENT = [
    ("whoami", 503, 1), ("repo-info", 429, 2), ("create-repo", 500, 1), ("create-repo", "drop", 1),
    ("preupload", 503, 1), ("preupload", "drop", 1), ("lfs-batch", "drop", 1), ("lfs-put", 500, 1),
    ("lfs-put", "drop", 1), ("lfs-verify", 502, 1), ("validate-yaml", 503, 1), ("commit", 503, 2),
    ("commit", "drop", 1), ("commit", 429, 1), ("resolve", 503, 1), ("resolve-head", 503, 1),
]
GLOBAL = ("whoami", "create-repo", "validate-yaml")  # endpoints whose path names no repo
SOURCE_READS = ("resolve", "resolve-head")  # a metadata-only push reads the source repo's files (issue 23)
BESIDE_A_SPLIT = [("resolve", 503, 1), ("resolve", "drop", 1)]  # read only when the repo holds another split


def test_the_fault_table_covers_every_endpoint_a_push_calls(state, hub):
    repo, start = unique_repo("endpoints"), len(hub.requests)
    _push(state, repo)
    _push(state, repo, split="test")  # a second split reads the repo first
    called = {(method, path) for method, path, _ in hub.requests[start:]}
    reached = {name for name in ENDPOINTS for method, path in called if Faults(name, 500, 1).matches(method, path)}
    assert [call for call in called if not any(Faults(name, 500, 1).matches(*call) for name in ENDPOINTS)] == []
    assert reached <= {endpoint for endpoint, _, _ in [*TRANSIENT, *BESIDE_A_SPLIT]}


@pytest.mark.parametrize(("endpoint", "fault", "times"), TRANSIENT, ids=[f"{e}-{f}x{t}" for e, f, t in TRANSIENT])
def test_transient_faults_are_retried_and_the_whole_run_published(state, clean, hub, quick_retries, endpoint, fault,
                                                                   times):
    repo = unique_repo(f"fault-{endpoint}")
    target = state.source_id if endpoint in SOURCE_READS else None if endpoint in GLOBAL else repo
    with inject(hub, endpoint, fault, times, repo_id=target) as hit:
        _push(state, repo)
    assert hit.count == times  # the fault was met, and retried past
    assert _files(repo) == clean
    assert _staging(quick_retries) == []


@pytest.mark.parametrize(("endpoint", "fault", "times"), BESIDE_A_SPLIT,
                         ids=[f"{e}-{f}x{t}" for e, f, t in BESIDE_A_SPLIT])
def test_the_other_splits_columns_are_read_with_retries(state, hub, quick_retries, endpoint, fault, times):
    """A push beside another split reads that split's columns from the footer of one of its data files (the card
    lists no features) to refuse a split that could not load with it; that read is retried like the others."""
    repo = unique_repo(f"fault-{endpoint}")
    _push(state, repo, split="test")
    with inject(hub, endpoint, fault, times, repo_id=repo) as hit:
        _push(state, repo)
    assert hit.count == times
    assert {"data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"} <= set(_files(repo))
    assert _staging(quick_retries) == []


PERMANENT = [
    ("whoami", 401, HubAuthError, "hf auth login"),
    ("preupload", 403, HubUnavailableError, "refused to upload data/train-00000-of-00001.parquet .403"),
    ("lfs-put", 403, HubUnavailableError, "refused to upload data/train-00000-of-00001.parquet .403"),
    ("create-repo", 403, HubUnavailableError, "refused to create the repo .403"),
    ("commit", 500, HubUnavailableError, "kept failing to commit"),
    ("commit", 422, HubUnavailableError, "refused to commit"),
]


@pytest.mark.parametrize(("endpoint", "fault", "error", "match"), PERMANENT,
                         ids=[f"{e}-{f}" for e, f, _, _ in PERMANENT])
def test_permanent_faults_publish_nothing(state, hub, quick_retries, endpoint, fault, error, match):
    repo = unique_repo(f"broken-{endpoint}")
    with inject(hub, endpoint, fault, 99, repo_id=None if endpoint in ("whoami", "create-repo") else repo), \
            pytest.raises(error, match=match):
        _push(state, repo)
    assert not HfApi().repo_exists(repo, repo_type="dataset")  # a failed first push leaves no empty repo
    assert _staging(quick_retries) == []


def test_a_failed_push_to_an_existing_repo_changes_nothing(state, hub, quick_retries):
    repo = unique_repo("kept")
    _push(state, repo)
    before, head = _files(repo), HfApi().dataset_info(repo).sha
    with inject(hub, "commit", 503, 99, repo_id=repo), pytest.raises(HubUnavailableError, match="nothing of this"):
        _push(state, repo, split="test")
    assert HfApi().dataset_info(repo).sha == head and _files(repo) == before
    assert HfApi().repo_exists(repo, repo_type="dataset")  # not this push's to delete


def test_a_commit_whose_answer_was_lost_is_not_made_twice(state, clean, hub):
    """The commit was applied but its answer lost: the retry names its parent, the Hub refuses it (412), and the push
    says to push again; the repo holds the whole run once, and pushing again commits nothing."""
    repo = unique_repo("lost-answer")
    with inject(hub, "commit", "drop-after", 1, repo_id=repo), pytest.raises(HubUnavailableError, match="push again"):
        _push(state, repo)
    assert _files(repo) == clean
    head = HfApi().dataset_info(repo).sha
    assert _push(state, repo) == head


def test_cli_says_one_line_for_auth_and_repo_id_mistakes(state, hub, capsys, monkeypatch):
    with inject(hub, "whoami", 401, 99):
        assert cli_main(["push", "--run-dir", state.run_dir, unique_repo("auth"), "--layout", "metadata-only"]) == 1
    err = capsys.readouterr().err
    assert "hf auth login" in err and "HF_TOKEN" in err and "Traceback" not in err and len(err.splitlines()) == 1
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubAuthError, match="no Hub token found"):
        _push(state, unique_repo("no-token"))
    assert cli_main(["push", "--run-dir", state.run_dir, "not a/valid repo!", "--layout", "metadata-only"]) == 1
    err = capsys.readouterr().err
    assert "is not a valid dataset repo id" in err and len(err.splitlines()) == 1
    with pytest.raises(InvalidConfigError, match="'org/name'"):
        _push(state, "just-a-name")


def test_the_run_cannot_change_while_it_is_packed(state, tmp_path, monkeypatch):
    """Case 5: ``reinforce --overwrite`` is refused while the push holds the run lock, and a shard changed behind
    the lock's back is refused as it is packed: never a repo mixing two runs' rows."""
    run_dir = str(shutil.copytree(state.run_dir, tmp_path / "run"))
    shards = sorted(name for name in os.listdir(os.path.join(run_dir, "shards")) if name.endswith(".parquet"))
    first, second = (os.path.join(run_dir, "shards", name) for name in shards[:2])
    write = build_module.write_parquet_batches
    refused = []

    def changing_write(*args, **kwargs):
        try:
            RunLock(run_dir).acquire().release()
        except RunLockedError as err:
            refused.append(str(err))
        shutil.copyfile(first, second)  # another run's rows where the push has not read yet
        return write(*args, **kwargs)

    monkeypatch.setattr(build_module, "write_parquet_batches", changing_write)
    repo = unique_repo("changed")
    with pytest.raises(CorruptShardError, match="changed while it was being pushed"):
        push_to_hub(run_dir, repo, layout="metadata-only", compression_level=3)
    assert refused and "in use" in refused[0]
    assert not HfApi().repo_exists(repo, repo_type="dataset")
    assert not os.path.exists(os.path.join(run_dir, ".hf-dr.lock"))  # released


def test_staging_is_removed_on_interrupt_and_after_a_kill(state, quick_retries, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = os.path.join(quick_retries, f"{STAGING_PREFIX}{dead.pid}-abc")  # a killed push's, with a data file
    live = os.path.join(quick_retries, f"{STAGING_PREFIX}{os.getppid()}-abc")  # a push still running
    for folder in (killed, live):
        os.makedirs(os.path.join(folder, "data"))
        with open(os.path.join(folder, "data", "train-00000-of-00001.parquet"), "wb") as f:
            f.write(b"rows")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(HfApi, "preupload_lfs_files", interrupted)
    repo = unique_repo("interrupted")
    with pytest.raises(KeyboardInterrupt):
        _push(state, repo)
    assert _staging(quick_retries) == [os.path.basename(live)]
    assert not HfApi().repo_exists(repo, repo_type="dataset")
