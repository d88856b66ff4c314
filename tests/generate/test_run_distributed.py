"""``scripts/reinforce.py`` in real processes: 1 vs 2 processes (torchrun, gloo) write the same bytes, and a run
killed with SIGKILL mid-way then rerun gives exactly the output of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hf_dr.generate.loading import load_run_records
from tests.data_utils import digits_dataset
from tests.generate.test_run import _files, _same_tree
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "reinforce.py")
NUM_ROWS, SHARD_SIZE = 96, 8


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """A Parquet file of real digits and a two-member teacher spec (32 and 24 px views)."""
    directory = tmp_path_factory.mktemp("inputs")
    digits_dataset(NUM_ROWS).to_parquet(str(directory / "digits.parquet"))
    members = [save_teacher(str(directory), seed=0, size=32), save_teacher(str(directory), seed=1, size=24)]
    (directory / "teacher.json").write_text(json.dumps(members))
    return {"dataset": str(directory / "digits.parquet"), "teacher_spec": str(directory / "teacher.json")}


def _arguments(inputs: dict[str, str], output_dir: str) -> list[str]:
    return [SCRIPT, "--dataset", inputs["dataset"], "--teacher-spec", inputs["teacher_spec"], "--key-column", "key",
            "--policy", "rrc+ra_re", "--num-samples", "16", "--topk", "5", "--seed", "7", "--shard-size",
            str(SHARD_SIZE), "--batch-size", "16", "--num-workers", "1", "--no-progress", "--output-dir", output_dir]


def _start(command: list[str], **kwargs) -> subprocess.Popen:
    # one OpenMP thread per process, as torchrun sets it: the suite shares two cores, where spinning OpenMP threads
    # of concurrent processes slow each other down by orders of magnitude
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, text=True, **kwargs)


def _run(command: list[str]) -> str:
    """Runs ``command`` to completion (killing its whole process group on timeout); returns its stderr."""
    process = _start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]
    return stderr


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> str:
    """One uninterrupted single-process run, made in this process through the same command line (the script is
    `hf-dr reinforce`; tests/generate/test_run.py checks the command line against the library call)."""
    from hf_dr.cli import main

    output_dir = str(tmp_path_factory.mktemp("reference") / "out")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses run
    try:
        assert main(["reinforce", *_arguments(inputs, output_dir)[1:]]) == 0
    finally:
        torch.set_num_threads(threads)
    return output_dir


def test_two_processes_write_the_same_bytes_as_one(inputs, reference, tmp_path):
    output_dir = str(tmp_path / "two")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    stderr = _run([*torchrun, *_arguments(inputs, output_dir)])
    for rank in (0, 1):  # both processes really worked, on half of the 12 shards each
        assert f"process {rank} of 2: 6 of its 6 shards to do (12 shards in all)" in stderr
    _same_tree(reference, output_dir)
    assert len(load_run_records(output_dir, keep_in_memory=True)) == NUM_ROWS


def test_killed_run_resumes_to_the_same_output(inputs, reference, tmp_path):
    output_dir = str(tmp_path / "killed")
    shards = os.path.join(output_dir, "shards")
    process = _start([sys.executable, *_arguments(inputs, output_dir)], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (os.path.isdir(shards) and any(f.endswith(".done") for f in os.listdir(shards))):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first shard"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)  # the run and its DataLoader worker, mid-way
    process.wait()
    done = [f for f in os.listdir(shards) if f.endswith(".done")]
    assert 1 <= len(done) < NUM_ROWS // SHARD_SIZE and not os.path.exists(os.path.join(output_dir, "manifest.json"))
    stderr = _run([sys.executable, *_arguments(inputs, output_dir)])
    assert f"process 0 of 1: {12 - len(done)} of its 12 shards to do" in stderr
    _same_tree(reference, output_dir)
    assert not [f for f in _files(output_dir) if ".tmp-" in f]
