"""hf_dr.files, the one writer: a failed or killed write leaves the old file and a temporary the next run removes;
JSON is indented and key-sorted; every ``to_dict`` gives its JSON round trip; and every file a reinforcement run or
a push writes is renamed into place from a temporary (fine-tuning and the demo are checked in tests/train and
tests/demo)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from hf_dr.errors import HfDrError, OutputWriteError
from hf_dr.files import (
    TEMPORARY_INFIX,
    file_sha256,
    find_temporaries,
    json_text,
    read_json,
    to_json_value,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


class RenameLog:
    """Wraps :func:`os.replace` (the real one still runs) and records the targets renamed from temporaries."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.targets: list[str] = []
        self.others: list[tuple[str, str]] = []
        real = os.replace

        def replace(src, dst, **kwargs):
            src, dst = os.fspath(src), os.fspath(dst)
            if src.startswith(dst + TEMPORARY_INFIX):
                self.targets.append(os.path.abspath(dst))
            else:
                self.others.append((src, dst))
            return real(src, dst, **kwargs)

        monkeypatch.setattr(os, "replace", replace)


def _tree(folder: str) -> set[str]:
    return {os.path.abspath(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_json_atomic(tmp_path / "record.json", {"rows": 1})
    before = file_sha256(path)

    def half_then_fail(temporary: str) -> None:
        with open(temporary, "w") as f:
            f.write('{"rows": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert file_sha256(path) == before and read_json(path) == {"rows": 1}
    assert os.listdir(tmp_path) == ["record.json"]


def test_a_killed_write_keeps_the_old_file_and_the_next_run_removes_its_temporary(tmp_path):
    """A real SIGKILL in the middle of a write (no ``finally`` runs): the old bytes stay, the partial temporary is
    found, and a reinforcement run's cleanup removes it."""
    target = tmp_path / "shards" / "reinforcements-00000.parquet.done"
    write_json_atomic(target, {"num_rows": 8})
    before = target.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal
        from hf_dr.files import write_atomic

        def write(temporary):
            with open(temporary, "w") as f:
                f.write('{{"num_rows": 1')
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        write_atomic({str(target)!r}, write)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9, killed.stderr
    assert target.read_bytes() == before
    left = find_temporaries(target.parent, target.name)
    assert len(left) == 1 and os.path.basename(left[0]).startswith(target.name + TEMPORARY_INFIX)

    from hf_dr.generate.storage import remove_temporaries

    remove_temporaries(str(tmp_path))
    assert sorted(os.listdir(target.parent)) == [target.name]


def test_json_is_indented_key_sorted_and_stable(tmp_path):
    content = {"b": [1, (2, 3)], "a": {"z": None, "y": 1.5}}
    path = write_json_atomic(tmp_path / "a.json", content)
    text = open(path).read()
    assert text == json_text(content) == json.dumps(content, indent=2, sort_keys=True) + "\n"
    assert write_json_atomic(tmp_path / "b.json", json.loads(text)) and file_sha256(tmp_path / "b.json") == \
        file_sha256(path)


def test_every_to_dict_equals_its_json_round_trip(tmp_path):
    """The one tuple->list rule: what each ``to_dict`` returns is what reading its JSON back gives."""
    from hf_dr.augment.registry import create_policy
    from hf_dr.builders import get_builder
    from hf_dr.demo.config import DemoConfig
    from hf_dr.models.teacher import MemberSpec, load_member
    from hf_dr.train.finetune import FinetuneConfig

    member = load_member(save_teacher(str(tmp_path)))
    values = [
        *[op.config() for op in create_policy("rrc+ra_re").base_ops], create_policy("rrc+mix+ra_re").config(),
        MemberSpec.parse({"arch": "resnet18", "weights": "w.safetensors", "input_size": [3, 64, 64]}).to_dict(),
        member.describe(), get_builder("cifar100_plus").to_dict(), FinetuneConfig("test_resnet").to_dict(),
        DemoConfig.quick().to_dict(),
    ]
    for value in values:
        assert value == json.loads(json.dumps(value)) == to_json_value(value)
    assert member.describe()["data_config"]["input_size"] == [3, 32, 32]


def test_one_layout_definition():
    import hf_dr.hub.card
    import hf_dr.hub.load
    import hf_dr.hub.push
    from hf_dr.generate import builder

    assert builder.LAYOUTS == (builder.SELF_CONTAINED, builder.METADATA_ONLY) == ("self-contained", "metadata-only")
    assert hf_dr.hub.push.LAYOUTS is builder.LAYOUTS
    assert hf_dr.hub.push.SELF_CONTAINED is hf_dr.hub.load.SELF_CONTAINED is hf_dr.hub.card.SELF_CONTAINED


def test_every_file_of_a_run_is_renamed_into_place(tmp_path, monkeypatch):
    from hf_dr.generate.run import reinforce

    log = RenameLog(monkeypatch)
    members = [save_teacher(str(tmp_path / "teachers"), seed=s) for s in (0, 1)]
    out = str(tmp_path / "run")
    reinforce(digits_dataset(12), members, "rrc", num_samples=2, topk=3, seed=0, output_dir=out, key_column="key",
              shard_size=4, batch_size=8, num_workers=0, progress=False)
    files = _tree(out)
    assert len(files) == 1 + 1 + 2 * 3  # config, manifest, 3 shards with their records
    assert files <= set(log.targets) and log.others == []


def test_every_file_of_a_push_is_renamed_into_place(hub, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    from hf_dr import push_to_hub
    from tests.utils_hub import run, unique_repo

    source = digits_dataset(16)
    run_dir = run(source, [save_teacher(str(tmp_path / "teachers"))], tmp_path / "run")
    log, uploaded = RenameLog(monkeypatch), []
    real_preupload = HfApi.preupload_lfs_files

    def preupload_lfs_files(self, repo_id, *, additions, **kwargs):  # every file a push adds passes here
        additions = list(additions)
        uploaded.extend(os.path.abspath(op.path_or_fileobj) for op in additions if isinstance(op.path_or_fileobj, str))
        return real_preupload(self, repo_id, additions=additions, **kwargs)

    monkeypatch.setattr(HfApi, "preupload_lfs_files", preupload_lfs_files)
    for layout in ("self-contained", "metadata-only"):
        uploaded.clear()
        push_to_hub(run_dir, unique_repo("atomic"), layout=layout, dataset=source, source_id="tester/digits",
                    source_revision="0" * 40)
        names = {os.path.basename(p) for p in uploaded}
        assert {"README.md", "hf_dr.json", "reinforce_config.json", "teacher_confidence.png"} <= names
        assert any(n.endswith(".parquet") for n in names) and set(uploaded) <= set(log.targets), layout


@pytest.mark.parametrize("code, named", [(errno.ENOSPC, "Free space on that disk"), (errno.EDQUOT, "Free space"),
                                         (errno.EACCES, "writable"), (errno.EROFS, "writable")])
def test_a_full_disk_or_a_read_only_folder_names_the_file_and_the_fix(code, named, tmp_path):
    """The write fails: the error names the file being written (not its temporary), says why and what to do, is both
    an hf_dr error and an OSError with the errno, and the old file and no temporary are left."""
    path = write_text_atomic(tmp_path / "run" / "manifest.json", "old")

    def fail(temporary: str) -> None:
        open(temporary, "w").write("half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputWriteError) as info:
        write_atomic(path, fail)
    message = str(info.value)
    assert message.startswith(f"cannot write {path}: {os.strerror(code)}") and named in message
    assert isinstance(info.value, OSError) and isinstance(info.value, HfDrError) and info.value.errno == code
    assert open(path).read() == "old" and os.listdir(tmp_path / "run") == ["manifest.json"]


def test_other_write_errors_pass_unchanged(tmp_path):
    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "x.json", lambda temporary: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    assert type(info.value) is OSError and info.value.errno == errno.EIO
