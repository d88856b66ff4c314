"""Bad inputs end in one line naming the file, row or argument and the fix: a damaged manifest, a dataset path
that does not exist (locally, and neither locally nor on the Hub). Real runs on scikit-learn digits with a small local
teacher. Labels a teacher cannot have made are in test_labels.py."""

from __future__ import annotations

import errno
import os

import datasets
import pyarrow.parquet as pq
import pytest

from hf_dr.cli import main as cli_main
from hf_dr.data.sources import load_source
from hf_dr.errors import (
    IncompleteRunError,
    InvalidConfigError,
    OutputWriteError,
    SourceNotFoundError,
)
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import CONFIG_FILE
from hf_dr.generate.storage import MANIFEST_FILE, read_manifest, verify_run
from hf_dr.models.teacher import load_teacher_spec
from tests.data_utils import digits_dataset
from tests.utils_hub import unique_repo
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(16)


@pytest.fixture(scope="module")
def member(tmp_path_factory) -> dict:
    return save_teacher(str(tmp_path_factory.mktemp("teacher")), seed=0)


def _run(dataset, member: dict, output_dir, **options) -> str:
    arguments = {"policy": "rrc", "num_samples": 2, "topk": 3, "seed": 0, "key_column": "key", "shard_size": 8,
                 "batch_size": 16, "num_workers": 0, "progress": False, **options}
    return reinforce(dataset, [member], output_dir=str(output_dir), **arguments)


# -- the manifest -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"{not json", b"", b"\x00\xff\xfe garbage", b"[1, 2]", b'"a string"'])
def test_a_damaged_manifest_is_named_with_the_fix(content, digits, member, tmp_path):
    """A manifest that is not JSON, or not a JSON object: one line naming the file; rerunning the same command
    writes it again from the finished shards."""
    out = _run(digits, member, tmp_path / "out")
    path = os.path.join(out, MANIFEST_FILE)
    open(path, "wb").write(content)
    for read in (read_manifest, verify_run, load_run_records):
        with pytest.raises(IncompleteRunError) as info:
            read(out)
        assert path in str(info.value) and "\n" not in str(info.value)
    if content.startswith(b"{") or not content.strip():
        assert "rerun the same reinforce command" in str(info.value)
    _run(digits, member, out)
    assert len(load_run_records(out, keep_in_memory=True)) == len(digits)


# -- the run's mistakes: one line each, and the corrected rerun works without --overwrite ---------------------------
def _empty_dataset(digits, member, out, monkeypatch):
    _run(digits.select([]), member, out)


def _negative_seed(digits, member, out, monkeypatch):
    _run(digits, member, out, seed=-1)


def _read_only_folder(digits, member, out, monkeypatch):
    """A folder this user cannot write in (simulated: the tests run as root, whom file modes do not stop)."""
    os.makedirs(out)
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path).startswith(str(out)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    _run(digits, member, out)


class _FullDisk(pq.ParquetWriter):
    def write_table(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")


def _full_disk(digits, member, out, monkeypatch):
    monkeypatch.setattr(pq, "ParquetWriter", _FullDisk)
    _run(digits, member, out)


MISTAKES = [  # (the mistake, the error, what its one line names, whether the config was written)
    (_empty_dataset, InvalidConfigError, ["has no rows", "--split"], False),
    (_negative_seed, InvalidConfigError, ["seed (--seed)", ">= 0", "-1"], False),
    (_read_only_folder, OutputWriteError, [".hf-dr.lock", "Permission denied", "writable", "--output-dir"], False),
    (_full_disk, OutputWriteError, ["shards/reinforcements-00000.parquet", "No space left on device",
                                    "rerun the same command"], True),
]


@pytest.mark.parametrize("mistake, error, names, config_written", MISTAKES, ids=[m[0].__name__[1:] for m in MISTAKES])
def test_a_run_mistake_is_one_line_and_the_corrected_rerun_needs_no_overwrite(mistake, error, names, config_written,
                                                                             digits, member, tmp_path, monkeypatch):
    """Arguments and the dataset are checked before the folder is touched; a folder that cannot be written, or a disk
    that fills up, is named with the file. Rerunning the corrected call then works as is (no --overwrite)."""
    out = tmp_path / "out"
    with pytest.raises(error) as info:
        mistake(digits, member, out, monkeypatch)
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in names), message
    assert os.path.exists(out / CONFIG_FILE) == config_written
    if not config_written and mistake is not _read_only_folder:
        assert not os.path.exists(out)
    monkeypatch.undo()
    _run(digits, member, out)
    assert len(load_run_records(str(out), keep_in_memory=True)) == len(digits)
    assert not [n for n in os.listdir(out / "shards") if ".tmp-" in n]


@pytest.mark.parametrize("text, position", [('[{"arch": "resnet18",}]', "line 1, column 22"),
                                            ('{"members": [\n  "resnet18"\n  "resnet50"]}', "line 3, column 3")])
def test_a_teacher_spec_json_typo_names_the_file_and_the_position(text, position, tmp_path, capsys):
    path = tmp_path / "teacher.json"
    path.write_text(text)
    with pytest.raises(InvalidConfigError) as info:
        load_teacher_spec(str(path))
    assert str(path) in str(info.value) and position in str(info.value)
    assert cli_main(["reinforce", "--dataset", str(tmp_path / "none"), "--teacher-spec", str(path),
                     "--output-dir", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(path) in error and position in error


# -- the dataset argument -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["./digts.parquet", "data/sub/digits.parquet", "~/hf-dr-no-such-folder",
                                  "/hf-dr/no/such/dataset"])
def test_a_local_path_that_does_not_exist_is_said_so(path, tmp_path, monkeypatch):
    """A typo in a path is reported as a missing file or folder (its absolute path), without asking the Hub."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", _no_hub)
    with pytest.raises(SourceNotFoundError) as info:
        load_source(path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message
    assert os.path.abspath(os.path.expanduser(path)) in message and "does not exist" in message
    assert "--dataset" in message


def _no_hub(*args, **kwargs):
    raise AssertionError("a path that looks local was looked up on the Hub")


def test_a_name_neither_local_nor_on_the_hub_says_both_were_tried(hub, tmp_path, monkeypatch):
    """An id the Hub does not have (and no such local folder): the error says that both were tried."""
    monkeypatch.chdir(tmp_path)
    name = unique_repo("no-such-dataset")
    with pytest.raises(SourceNotFoundError) as info:
        load_source(name)
    message = str(info.value)
    assert "neither a local file or folder" in message and "from the Hub" in message and name in message
    assert "\n" not in message


def test_the_reinforce_command_names_a_mistyped_dataset_path(tmp_path, capsys):
    assert cli_main(["reinforce", "--dataset", str(tmp_path / "digts.parquet"), "--teacher", "resnet18",
                     "--output-dir", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(tmp_path / "digts.parquet") in error and "does not exist" in error
