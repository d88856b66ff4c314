"""One run owns an output folder at a time, a folder's config is bound to its manifest, a finished run notices
replaced teacher weights, and ``overwrite`` removes only what runs write: real runs on scikit-learn digits with a
small local teacher, the double-submitted job reproduced step by step (never by timing luck)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import safetensors.torch
from huggingface_hub import HfApi

import hf_dr.generate.run
from hf_dr import create_policy, load_reinforced, push_to_hub
from hf_dr.data.description import read_description
from hf_dr.errors import ConfigConflictError, CorruptShardError, InvalidConfigError, RunLockedError
from hf_dr.files import file_sha256
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.run_inspection import load_target
from hf_dr.generate.storage import CONFIG_FILE, MANIFEST_FILE, read_manifest, verify_run
from tests.data_utils import digits_dataset
from tests.utils_hub import unique_repo
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCK_FILE = ".hf-dr.lock"
HOLD_LOCK = ("import sys, time; from hf_dr.generate.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
             "print('locked', flush=True); time.sleep(300)")


@pytest.fixture(scope="module")
def digits():
    return digits_dataset(16)


@pytest.fixture
def member(tmp_path) -> dict:
    """A teacher saved in this test's own folder, so that a test may replace its weights file."""
    return save_teacher(str(tmp_path / "teacher"), seed=0)


def _run(dataset, member: dict, output_dir, **options) -> str:
    arguments = {"policy": "rrc+ra_re", "num_samples": 2, "topk": 3, "seed": 0, "key_column": "key",
                 "shard_size": 8, "batch_size": 16, "num_workers": 0, "progress": False, **options}
    return reinforce(dataset, [member], output_dir=str(output_dir), **arguments)


def _no_teacher(*args, **kwargs):
    raise AssertionError("the teacher was loaded although every shard was finished and its weights are unchanged")


# -- one run at a time --------------------------------------------------------------------------------------------
def test_a_second_run_started_while_the_first_works_is_refused_at_once(digits, member, tmp_path, monkeypatch):
    """The double-submitted job: a second run (other flags) starts into the folder while the first loads its
    teacher. It is refused before touching anything, naming the folder, the holder and the fix; the first run's
    config, shards and manifest stay one run's."""
    out = tmp_path / "out"
    load_teacher, started, refusals = hf_dr.generate.run._load_teacher, [], []

    def second_run_meanwhile(*args, **kwargs):
        if not started:  # the first run's teacher load: the second run starts now
            started.append(True)
            with pytest.raises(RunLockedError) as info:
                _run(digits, member, out, policy="rrc")
            refusals.append(info.value)
        return load_teacher(*args, **kwargs)

    monkeypatch.setattr(hf_dr.generate.run, "_load_teacher", second_run_meanwhile)
    _run(digits, member, out)
    message = str(refusals[0])
    assert isinstance(refusals[0], BlockingIOError) and "\n" not in message
    assert str(out) in message and f"pid {os.getpid()}" in message and socket.gethostname() in message
    assert "--output-dir" in message and LOCK_FILE in message
    assert ReinforceConfig.load(str(out)).policy == create_policy("rrc+ra_re").config()
    assert verify_run(str(out))["fingerprint"] == ReinforceConfig.load(str(out)).fingerprint()
    assert len(load_run_records(str(out), keep_in_memory=True)) == len(digits)
    assert not os.path.exists(out / LOCK_FILE)  # released with the run


def test_a_folder_held_by_another_process_is_refused_until_that_process_dies(digits, member, tmp_path):
    """Another process holds the folder: refused naming its pid and host, nothing written. Once it is killed (no
    clean-up), the kernel has released its lock: the next run takes the stale lock file over and finishes."""
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError) as info:
            _run(digits, member, out)
        message = str(info.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and str(out) in message
        assert os.listdir(out) == [LOCK_FILE]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert os.path.exists(out / LOCK_FILE)  # left behind by the killed holder
    _run(digits, member, out)
    assert verify_run(str(out))["num_rows"] == len(digits) and not os.path.exists(out / LOCK_FILE)


# -- the config bound to the manifest -----------------------------------------------------------------------------
def test_a_folder_mixing_two_runs_is_refused_by_every_reader(digits, member, tmp_path):
    """The outcome of the race: the shards and manifest of one run (rrc+ra_re) next to the config of another
    (rrc). Loading, verifying, pushing and opening the folder all refuse it, naming both files and the fix; a rerun
    with overwrite=True repairs it."""
    out = _run(digits, member, tmp_path / "out")
    other = _run(digits, member, tmp_path / "other", policy="rrc")
    shutil.copyfile(os.path.join(other, CONFIG_FILE), os.path.join(out, CONFIG_FILE))
    digits.save_to_disk(str(tmp_path / "source"))
    readers = [lambda: read_manifest(out), lambda: verify_run(out), lambda: load_run_records(out),
               lambda: load_run_records(out, verify=False, keep_in_memory=True),
               lambda: push_to_hub(out, "tester/never-pushed"), lambda: load_target(out, str(tmp_path / "source"))]
    for read in readers:
        with pytest.raises(ConfigConflictError) as info:
            read()
        message = str(info.value)
        assert os.path.join(out, CONFIG_FILE) in message and os.path.join(out, MANIFEST_FILE) in message
        assert "--overwrite" in message and "\n" not in message
    with pytest.raises(ConfigConflictError, match="policy"):  # resuming either run is refused as before
        _run(digits, member, out)
    _run(digits, member, out, overwrite=True)
    assert len(load_run_records(out, keep_in_memory=True)) == len(digits)


def test_a_hub_repo_whose_config_is_another_runs_is_refused(digits, member, hub, tmp_path):
    """A pushed repo records its run's fingerprint in hf_dr.json: replacing its reinforce_config.json by another
    run's is refused by load_reinforced, naming the repo, both files and the fix."""
    out = _run(digits, member, tmp_path / "out")
    other = _run(digits, member, tmp_path / "other", policy="rrc")
    repo = unique_repo("mixed")
    push_to_hub(out, repo, dataset=digits)
    assert len(load_reinforced(repo, size=32, cache_dir=str(tmp_path / "cache"))) == len(digits)
    HfApi().upload_file(path_or_fileobj=os.path.join(other, CONFIG_FILE), path_in_repo=CONFIG_FILE, repo_id=repo,
                        repo_type="dataset")
    with pytest.raises(ConfigConflictError) as info:
        load_reinforced(repo, size=32, cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert repo in message and CONFIG_FILE in message and "hf_dr.json" in message and "push" in message


def test_the_config_of_another_run_is_never_replaced(digits, member, tmp_path):
    """Writing the config (the lock holder's job) refuses a folder that holds another run's config, and keeps it."""
    out = _run(digits, member, tmp_path / "out")
    before = open(os.path.join(out, CONFIG_FILE), "rb").read()
    config = ReinforceConfig.load(out)
    other = ReinforceConfig(**{**config.to_dict(), "policy": create_policy("rrc").config()})
    with pytest.raises(ConfigConflictError, match="policy"):
        hf_dr.generate.run._prepare_folder(out, other, overwrite=False)
    assert open(os.path.join(out, CONFIG_FILE), "rb").read() == before


# -- replaced teacher weights -------------------------------------------------------------------------------------
def test_a_finished_run_notices_weights_replaced_at_the_same_path(digits, member, tmp_path):
    """The same command after the weights file was replaced (same path, same size, other weights) is refused,
    naming the file; restoring the file makes the command report the finished run again."""
    out = _run(digits, member, tmp_path / "out")
    original = open(member["weights"], "rb").read()
    replacement = save_teacher(str(tmp_path / "other"), seed=1)["weights"]
    assert os.path.getsize(replacement) == len(original)
    os.replace(replacement, member["weights"])
    with pytest.raises(ConfigConflictError, match="sha256") as info:
        _run(digits, member, out)
    assert member["weights"] in str(info.value) and "\n" not in str(info.value)
    open(member["weights"], "wb").write(original)
    assert _run(digits, member, out) == out


def test_unchanged_weights_are_not_read_and_touched_ones_only_hashed(digits, member, tmp_path, monkeypatch):
    """A finished run checks its weights cheaply: an untouched file is not read at all; a touched one (same bytes)
    is hashed once and the teacher stays unloaded; a re-saved one (other bytes, same tensors) loads the teacher,
    whose state-dict hash matches."""
    out = _run(digits, member, tmp_path / "out")
    hashed = []
    monkeypatch.setattr("hf_dr.models.weights.file_sha256", lambda path: hashed.append(path) or file_sha256(path))
    monkeypatch.setattr(hf_dr.generate.run, "create_teacher", _no_teacher)
    _run(digits, member, out)
    assert hashed == []
    os.utime(member["weights"], ns=(1, 1))
    _run(digits, member, out)
    assert hashed == [member["weights"]]
    monkeypatch.undo()
    loads, create = [], hf_dr.generate.run.create_teacher
    monkeypatch.setattr(hf_dr.generate.run, "create_teacher", lambda *a, **k: loads.append(1) or create(*a, **k))
    state = safetensors.torch.load_file(member["weights"])
    safetensors.torch.save_file(state, member["weights"], metadata={"note": "saved again"})
    assert _run(digits, member, out) == out and loads == [1]


# -- overwrite ----------------------------------------------------------------------------------------------------
def test_overwrite_removes_only_what_runs_write(digits, member, tmp_path):
    """overwrite=True starts over without deleting the user's files, in the folder or in shards/."""
    out = _run(digits, member, tmp_path / "out")
    mine = {"notes.txt": b"mine", "shards/README.md": b"about", "shards/extra.parquet": b"not a run shard",
            "shards/reinforcements-notes.txt": b"a name like ours"}
    for name, content in mine.items():
        open(os.path.join(out, name), "wb").write(content)
    _run(digits, member, out, seed=3, overwrite=True)
    assert {name: open(os.path.join(out, name), "rb").read() for name in mine} == mine
    assert ReinforceConfig.load(out).seed == 3 and verify_run(out)["num_rows"] == len(digits)


def test_a_resume_from_another_folder_and_revision_writes_the_recorded_run(digits, member, tmp_path):
    """Review finding: a resume wrote its own provenance (weights path, source revision) into the new shards, so one
    run's shards disagreed; shards now carry the recorded run, with local paths cut to file names."""
    out = _run(digits, member, tmp_path / "run", source={"revision": "r1"})
    reference = {name: file_sha256(os.path.join(out, "shards", name))
                 for name in sorted(os.listdir(os.path.join(out, "shards"))) if name.endswith(".parquet")}
    shard = sorted(reference)[1]
    os.remove(os.path.join(out, "shards", shard))
    os.remove(os.path.join(out, "shards", shard + ".done"))
    os.remove(os.path.join(out, MANIFEST_FILE))
    os.makedirs(tmp_path / "copies")  # the same weights under the same file name, in another folder
    moved = {**member, "weights": shutil.copy(member["weights"], tmp_path / "copies")}
    _run(digits, moved, out, source={"revision": "r2"})
    assert {name: file_sha256(os.path.join(out, "shards", name)) for name in reference} == reference
    description = read_description(load_run_records(out))
    assert description.source["revision"] == "r1"
    assert description.teacher[0]["spec"]["weights"] == os.path.basename(member["weights"])


def test_a_resume_under_other_pixel_library_versions_is_refused(digits, member, tmp_path):
    out = _run(digits, member, tmp_path / "run")
    config = ReinforceConfig.load(out)
    config.versions = {**config.versions, "pillow": "0.0.1"}
    config.save(out)
    os.remove(os.path.join(out, MANIFEST_FILE))
    with pytest.raises(ConfigConflictError, match=r"versions.pillow: 0.0.1 -> .*install the recorded version"):
        _run(digits, member, out)


def test_an_output_dir_that_is_a_file_is_refused(digits, member, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidConfigError, match="is a file, not a folder"):
        _run(digits, member, tmp_path / "file")


def test_a_resume_hashes_each_shard_once(digits, member, tmp_path, monkeypatch):
    """Issue 12: a resume hashed every finished shard when planning and again when writing the manifest, and every
    load hashed them all again; now a shard is hashed once, when written: its .done record keeps the file's identity
    (size, mtime, ctime, inode) beside the hash, and a resume or load trusts an unchanged file by stat."""
    import hf_dr.generate.storage as storage

    out = _run(digits, member, tmp_path / "run")  # 2 shards
    os.remove(os.path.join(out, "shards", "reinforcements-00001.parquet"))
    os.remove(os.path.join(out, MANIFEST_FILE))
    storage._HASHED.clear()  # as in a new process
    hashed = []
    real = storage.file_sha256
    monkeypatch.setattr(storage, "file_sha256", lambda path, *a: hashed.append(os.path.basename(path)) or real(path))
    _run(digits, member, out)
    load_run_records(out)
    assert hashed == ["reinforcements-00001.parquet"]  # the shard rewritten by the resume
    with open(os.path.join(out, "shards", "reinforcements-00000.parquet"), "r+b") as f:  # a changed file is hashed
        f.seek(10)
        f.write(b"\x00")
    with pytest.raises(CorruptShardError):
        verify_run(out)
