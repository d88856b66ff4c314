"""The files of a run: shards and their ``.done`` records, the manifest, verification, temporaries, clearing, and
loading the rows back in source order, on real reinforcement rows of scikit-learn digits."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hf_dr.generate.loading as loading
import hf_dr.generate.storage as storage
from hf_dr import create_policy
from hf_dr.errors import ConfigConflictError, CorruptShardError, IncompleteRunError, InvalidConfigError
from hf_dr.files import file_sha256, write_json_atomic
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.plan import Shard, plan_shards
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import (
    CONFIG_FILE,
    DONE_SUFFIX,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    clear_run,
    read_manifest,
    remove_temporaries,
    shard_record,
    verify_run,
    write_manifest,
    write_shard,
)
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_ROWS, NUM_SAMPLES, SHARD_SIZE = 20, 2, 8
FINGERPRINT, OTHER = "a" * 64, "b" * 64


@pytest.fixture(scope="module")
def rows() -> datasets.Dataset:
    """Real reinforcement rows (key, N records) of 20 digits, labelled by a small projection teacher."""
    return reinforce_in_memory(digits_dataset(NUM_ROWS), create_policy("rrc"), ProjectionTeacher(size=16),
                               NUM_SAMPLES, topk=3)


@pytest.fixture(scope="module")
def shards() -> list[Shard]:
    return plan_shards(NUM_ROWS, SHARD_SIZE)


def _table(rows: datasets.Dataset, shard: Shard) -> pa.Table:
    return rows.data.table.slice(shard.start, shard.num_rows)


def _write_run(rows: datasets.Dataset, shards: list[Shard], output_dir: str, order: list[int] | None = None
               ) -> dict:
    """Writes every shard (in ``order``, e.g. the order processes finish them) and the manifest."""
    for i in order or range(len(shards)):
        write_shard(output_dir, shards[i], _table(rows, shards[i]), FINGERPRINT)
    return write_manifest(output_dir, shards, FINGERPRINT, NUM_SAMPLES)


@pytest.fixture
def run_dir(rows, shards, tmp_path) -> str:
    out = str(tmp_path / "run")
    _write_run(rows, shards, out)
    return out


# -- shards -------------------------------------------------------------------------------------------------------
def test_write_shard_and_shard_record_round_trip(rows, shards, tmp_path):
    """The shard's file holds exactly its rows; its .done record has its range, size, SHA-256 and fingerprint."""
    out, shard = str(tmp_path), shards[1]
    record = write_shard(out, shard, _table(rows, shard), FINGERPRINT)
    path = os.path.join(out, shard.path)
    assert record == {"path": shard.path, "start": 8, "stop": 16, "num_rows": 8, "num_bytes": os.path.getsize(path),
                      "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(), "fingerprint": FINGERPRINT,
                      "identity": list(storage._identity(path))}
    assert json.load(open(path + DONE_SUFFIX)) == record
    assert shard_record(out, shard, FINGERPRINT) == record
    assert pq.read_table(path).to_pylist() == rows.select(range(8, 16)).to_list()
    assert sorted(os.listdir(os.path.dirname(path))) == [os.path.basename(shard.path),
                                                         os.path.basename(shard.path) + DONE_SUFFIX]


def test_write_shard_refuses_a_table_of_another_size(rows, shards, tmp_path):
    """A table whose row count differs from the shard's is refused before anything is written."""
    with pytest.raises(CorruptShardError, match=r"reinforcements-00000.parquet: built 7 rows for a shard of 8"):
        write_shard(str(tmp_path), shards[0], _table(rows, shards[0]).slice(0, 7), FINGERPRINT)
    assert not os.path.exists(tmp_path / "shards" / "reinforcements-00000.parquet")


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "append", "no_shard", "no_record", "garbage_record"])
def test_damaged_or_unfinished_shards_count_as_not_done(damage, rows, shards, tmp_path):
    """A truncated, modified or missing shard file, or a missing or unreadable .done record: not done (None)."""
    out, shard = str(tmp_path), shards[0]
    write_shard(out, shard, _table(rows, shard), FINGERPRINT)
    path = os.path.join(out, shard.path)
    data = open(path, "rb").read()
    if damage == "truncate":
        open(path, "wb").write(data[: len(data) // 2])
    elif damage == "flip_byte":  # same size, one byte changed: only the checksum can tell
        middle = len(data) // 2
        open(path, "wb").write(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    elif damage == "append":
        open(path, "ab").write(b"\0")
    elif damage == "no_shard":
        os.remove(path)
    elif damage == "no_record":
        os.remove(path + DONE_SUFFIX)
    else:
        open(path + DONE_SUFFIX, "w").write("{not json")
    assert shard_record(out, shard, FINGERPRINT) is None


def test_a_record_of_another_row_range_is_not_done(rows, shards, tmp_path):
    """The same file name with another row range (e.g. a run over more rows) is not this shard."""
    out = str(tmp_path)
    write_shard(out, shards[2], _table(rows, shards[2]), FINGERPRINT)
    assert shard_record(out, Shard(2, 16, 24), FINGERPRINT) is None
    assert shard_record(out, shards[2], FINGERPRINT) is not None


def test_a_shard_of_another_configuration_is_refused(rows, shards, tmp_path):
    """A shard whose record carries another fingerprint raises ConfigConflictError naming it and both fingerprints."""
    out = str(tmp_path)
    write_shard(out, shards[0], _table(rows, shards[0]), OTHER)
    with pytest.raises(ConfigConflictError, match="00000.parquet was made by a run with another") as info:
        shard_record(out, shards[0], FINGERPRINT)
    assert OTHER in str(info.value) and FINGERPRINT in str(info.value) and "overwrite" in str(info.value)


# -- manifest -----------------------------------------------------------------------------------------------------
def test_manifest_lists_every_shard_and_the_totals(rows, shards, run_dir):
    """The manifest: format, fingerprint, row total, N and each shard's record (without its fingerprint)."""
    manifest = read_manifest(run_dir)
    assert manifest == json.load(open(os.path.join(run_dir, MANIFEST_FILE)))
    assert (manifest["format"], manifest["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert (manifest["fingerprint"], manifest["num_rows"], manifest["num_samples"]) == (FINGERPRINT, 20, 2)
    assert [(s["path"], s["start"], s["stop"], s["num_rows"]) for s in manifest["shards"]] == [
        (s.path, s.start, s.stop, s.num_rows) for s in shards]
    for record in manifest["shards"]:
        assert "fingerprint" not in record
        assert record["sha256"] == hashlib.sha256(open(os.path.join(run_dir, record["path"]), "rb").read()).hexdigest()
    assert verify_run(run_dir) == manifest


def test_write_manifest_refuses_a_missing_shard_naming_its_path(rows, shards, tmp_path):
    """Without shard 1, no manifest is written and the error names that shard's file."""
    out = str(tmp_path)
    for shard in (shards[0], shards[2]):
        write_shard(out, shard, _table(rows, shard), FINGERPRINT)
    with pytest.raises(CorruptShardError, match="reinforcements-00001.parquet is missing") as info:
        write_manifest(out, shards, FINGERPRINT, NUM_SAMPLES)
    assert os.path.join(out, shards[1].path) in str(info.value) and "rerun" in str(info.value)
    assert not os.path.exists(os.path.join(out, MANIFEST_FILE))


def test_read_manifest_of_an_unfinished_run_counts_the_done_shards(rows, shards, tmp_path):
    """No manifest: IncompleteRunError saying how many shards are done and how to resume."""
    out = str(tmp_path)
    with pytest.raises(IncompleteRunError, match=r"no finished reinforcement run .*0 shard\(s\) done"):
        read_manifest(out)
    write_shard(out, shards[0], _table(rows, shards[0]), FINGERPRINT)
    write_shard(out, shards[1], _table(rows, shards[1]), FINGERPRINT)
    with pytest.raises(IncompleteRunError, match=r"2 shard\(s\) done\). Rerun the same reinforce command"):
        read_manifest(out)
    with pytest.raises(IncompleteRunError):
        load_run_records(out)


def test_read_manifest_refuses_a_foreign_json_file(tmp_path):
    """A manifest.json of another tool is not a run."""
    write_json_atomic(str(tmp_path / MANIFEST_FILE), {"format": "something-else", "shards": []})
    with pytest.raises(IncompleteRunError, match=r"not a hf-dr reinforcement manifest \(format 'something-else'\)"):
        read_manifest(str(tmp_path))


def test_verify_run_names_a_missing_shard(run_dir, shards):
    os.remove(os.path.join(run_dir, shards[2].path))
    with pytest.raises(CorruptShardError, match="reinforcements-00002.parquet is listed in the manifest but missing"):
        verify_run(run_dir)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_verify_run_names_a_damaged_shard(damage, run_dir, shards):
    """Truncated, or the same size with one byte changed: the checksum in the manifest catches both."""
    path = os.path.join(run_dir, shards[1].path)
    data = open(path, "rb").read()
    changed = data[:-10] if damage == "truncate" else data[:100] + bytes([data[100] ^ 1]) + data[101:]
    open(path, "wb").write(changed)
    with pytest.raises(CorruptShardError, match="reinforcements-00001.parquet does not match the checksum"):
        verify_run(run_dir)
    with pytest.raises(CorruptShardError):
        load_run_records(run_dir)


def _edit_manifest(run_dir: str, edit) -> None:
    path = os.path.join(run_dir, MANIFEST_FILE)
    manifest = json.load(open(path))
    edit(manifest)
    write_json_atomic(path, manifest)


def _readers(run_dir: str) -> list:
    return [lambda: read_manifest(run_dir), lambda: verify_run(run_dir),
            lambda: load_run_records(run_dir, verify=False, keep_in_memory=True)]


MANIFEST_DAMAGE = {  # what a damaged manifest lists, and what the error names
    "duplicated": (lambda m: m["shards"].insert(1, dict(m["shards"][0])),
                   "listed more than once: shards/reinforcements-00000.parquet"),
    "dropped": (lambda m: m["shards"].pop(1), "missing: shards/reinforcements-00001.parquet"),
    "replaced": (lambda m: m["shards"].__setitem__(2, dict(m["shards"][1])),
                 "listed more than once: shards/reinforcements-00001.parquet; missing: "
                 "shards/reinforcements-00002.parquet"),
    "extra": (lambda m: m["shards"].append({**m["shards"][2], "path": "shards/reinforcements-00003.parquet",
                                             "start": 20, "stop": 24}),
              "not in the plan: shards/reinforcements-00003.parquet rows [20, 24)"),
    "reordered": (lambda m: m["shards"].reverse(), "the shards are out of order"),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_a_manifest_that_is_not_the_plan_is_refused(damage, run_dir):
    """A duplicated, dropped, foreign or reordered shard entry: every reader (read_manifest, verify_run,
    load_run_records, and so the push) refuses it, naming the entries and the fix, instead of training on some rows
    twice and publishing others never. Without a config the plan is the manifest's row count in shards of its
    largest shard; with one, the config's (test_run.py)."""
    edit, named = MANIFEST_DAMAGE[damage]
    _edit_manifest(run_dir, edit)
    for read in _readers(run_dir):
        with pytest.raises(CorruptShardError) as info:
            read()
        assert named in str(info.value) and "Delete manifest.json and rerun" in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("escape", ["dotdot", "absolute", "link"])
def test_a_manifest_path_outside_the_run_folder_is_never_read(escape, run_dir, shards, tmp_path):
    """A manifest entry naming a file outside the run folder, with the right size and SHA-256 (a copy of the real
    shard), by ``..``, an absolute path, or a link in the folder that leads out: refused by every reader."""
    outside = tmp_path / "outside"
    outside.mkdir()
    copy = shutil.copy(os.path.join(run_dir, shards[0].path), outside / "x.parquet")
    if escape == "link":
        os.symlink(outside, os.path.join(run_dir, "shards", "elsewhere"))
    entry = {"dotdot": "../outside/x.parquet", "absolute": str(copy), "link": "shards/elsewhere/x.parquet"}[escape]
    _edit_manifest(run_dir, lambda m: m["shards"][0].update(path=entry))
    for read in _readers(run_dir):
        with pytest.raises(CorruptShardError) as info:
            read()
        assert f"names the file {entry!r}, which is not inside the run folder" in str(info.value)


def test_each_shard_is_hashed_once_across_processes(run_dir, shards, tmp_path, monkeypatch):
    """The run's own shards are trusted by their recorded identity; a copied folder (new inodes) is hashed by its
    first verification only (new processes: the in-process cache emptied), and a byte flipped later is caught."""
    hashed = []
    monkeypatch.setattr(storage, "file_sha256", lambda path: hashed.append(path) or file_sha256(path))
    monkeypatch.setattr(storage, "_HASHED", {})
    verify_run(run_dir)
    assert [shard_record(run_dir, shard, FINGERPRINT) is not None for shard in shards] == [True] * len(shards)
    assert hashed == []  # a resume decides by stat alone
    copy = shutil.copytree(run_dir, str(tmp_path / "copy"))
    monkeypatch.setattr(storage, "RACY_NS", 0)  # as if the copy was made more than RACY_NS before
    verify_run(copy)
    assert len(hashed) == len(shards)
    monkeypatch.setattr(storage, "_HASHED", {})
    verify_run(copy)
    load_run_records(copy)
    assert len(hashed) == len(shards)
    monkeypatch.undo()
    monkeypatch.setattr(storage, "file_sha256", lambda path: hashed.append(path) or file_sha256(path))
    fresh = shutil.copytree(run_dir, str(tmp_path / "fresh"))  # just copied: verified, but not stamped
    verify_run(fresh)
    assert not os.path.exists(os.path.join(fresh, storage.VERIFIED_FILE))
    path = os.path.join(fresh, shards[1].path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(CorruptShardError, match="reinforcements-00001.parquet does not match the checksum"):
        verify_run(fresh)
    assert hashed[-1] == path


# -- temporaries and clearing -------------------------------------------------------------------------------------
def _touch(root: str, *names: str) -> None:
    for name in names:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(b"partial")


def _tree(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names)


def test_remove_temporaries_of_one_shard_or_of_the_whole_run(run_dir):
    """A shard's temporaries (ours and the Parquet writer's hidden ones) go; other shards' stay until the run-wide
    clean-up, which keeps every finished file and the user's own files."""
    before = _tree(run_dir)
    ours = ["shards/reinforcements-00000.parquet.tmp-1a2b", "shards/.reinforcements-00000.parquet.tmp-123",
            "shards/reinforcements-00000.parquet.done.tmp-9f"]
    others = ["shards/reinforcements-00001.parquet.tmp-77", "shards/.reinforcements-00002.parquet.tmp-5",
              "manifest.json.tmp-abc"]
    _touch(run_dir, *ours, *others, "notes.txt")
    remove_temporaries(run_dir, Shard(0, 0, SHARD_SIZE))
    assert _tree(run_dir) == sorted([*before, *others, "notes.txt"])
    remove_temporaries(run_dir)
    assert _tree(run_dir) == sorted([*before, "notes.txt"])
    verify_run(run_dir)


def test_clear_run_leaves_foreign_files_alone(run_dir):
    """Config, manifest and shards go; the user's files next to them (and in other folders) stay."""
    write_json_atomic(os.path.join(run_dir, CONFIG_FILE), {"seed": 0})
    _touch(run_dir, "notes.txt", "plots/loss.png", "manifest.json.bak")
    clear_run(run_dir)
    assert _tree(run_dir) == ["manifest.json.bak", "notes.txt", "plots/loss.png"]
    clear_run(run_dir)  # nothing left to clear: no error
    clear_run(os.path.join(run_dir, "never-made"))


# -- loading ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep_in_memory", [True, False])
def test_load_reinforcements_returns_rows_in_source_order(keep_in_memory, rows, shards, tmp_path):
    """Shards finished in any order load back as the source rows, in source order, with the declared features."""
    out = str(tmp_path / "run")
    _write_run(rows, shards, out, order=[2, 0, 1])
    loaded = load_run_records(out, keep_in_memory=keep_in_memory, cache_dir=str(tmp_path / "cache"))
    assert loaded.features == rows.features
    assert loaded["key"][:] == rows["key"][:] == [f"digit-{i:05d}" for i in range(NUM_ROWS)]
    assert loaded.to_list() == rows.to_list()
    if keep_in_memory:
        assert not os.path.exists(tmp_path / "cache")  # nothing written


def test_load_without_verify_skips_the_checksums(run_dir, shards):
    """With verify=False a checksum mismatch in the manifest is not checked (the data still loads)."""
    path = os.path.join(run_dir, MANIFEST_FILE)
    manifest = json.load(open(path))
    manifest["shards"][0]["sha256"] = "0" * 64
    write_json_atomic(path, manifest)
    with pytest.raises(CorruptShardError, match="reinforcements-00000.parquet does not match"):
        load_run_records(run_dir, keep_in_memory=True)
    assert len(load_run_records(run_dir, verify=False, keep_in_memory=True)) == NUM_ROWS


def test_clear_run_removes_only_what_runs_write(run_dir):
    """Shard files, their .done records and the temporaries of every run file go; the user's files stay, in shards/
    too (even with names close to ours), and so does the lock file of the run that clears."""
    write_json_atomic(os.path.join(run_dir, CONFIG_FILE), {"seed": 0})
    user = ["shards/README.md", "shards/extra.parquet", "shards/reinforcements-notes.txt", "notes.tmp-1",
            "shards/reinforcements-00000.parquet.bak", "plots/manifest.json.tmp-3"]
    run_temporaries = ["shards/reinforcements-00001.parquet.tmp-ab12", "shards/.reinforcements-00002.parquet.tmp-5",
                       "shards/reinforcements-00000.parquet.done.tmp-9f", "reinforce_config.json.tmp-77"]
    _touch(run_dir, *user, *run_temporaries, ".hf-dr.lock")
    clear_run(run_dir)
    assert _tree(run_dir) == sorted([*user, ".hf-dr.lock"])


# -- the config bound to the manifest -----------------------------------------------------------------------------
def _config(seed: int = 0) -> ReinforceConfig:
    return ReinforceConfig(policy=create_policy("rrc").config(), num_samples=NUM_SAMPLES, topk=3, seed=seed,
                           shard_size=SHARD_SIZE, teacher=[{"spec": {"arch": "resnet18"}}])


def test_a_manifest_is_read_only_next_to_its_own_config(rows, shards, tmp_path):
    """The config whose fingerprint the manifest records is accepted; another run's config is refused by every
    reader, naming both files and the fix."""
    out, config = str(tmp_path / "run"), _config()
    for shard in shards:
        write_shard(out, shard, _table(rows, shard), config.fingerprint())
    write_manifest(out, shards, config.fingerprint(), NUM_SAMPLES)
    config.save(out)
    assert read_manifest(out)["fingerprint"] == config.fingerprint()
    _config(seed=1).save(out)
    for read in (read_manifest, verify_run, load_run_records):
        with pytest.raises(ConfigConflictError) as info:
            read(out)
        message = str(info.value)
        assert os.path.join(out, CONFIG_FILE) in message and os.path.join(out, MANIFEST_FILE) in message
        assert "mixes two runs' files" in message and "--overwrite" in message


def test_keep_in_memory_does_not_hash_the_table(tmp_path, monkeypatch):
    """Issue 12: ``keep_in_memory=True`` let datasets fingerprint the whole table (peak ~5x the table); the run's
    content identity (manifest fingerprint and shard checksums) is the fingerprint instead."""
    import datasets.arrow_dataset

    images = digits_dataset(8)
    table = reinforce_in_memory(images, create_policy("rrc"), ProjectionTeacher(size=16), 2, 3, seed=0)
    shards = plan_shards(len(table), 4)
    for shard in shards:
        write_shard(str(tmp_path), shard, table.select(range(shard.start, shard.stop)).data.table, "f" * 64)
    write_manifest(str(tmp_path), shards, "f" * 64, 2)

    def refuse(dataset):
        raise AssertionError("the table was hashed")

    monkeypatch.setattr(datasets.arrow_dataset, "generate_fingerprint", refuse)
    first, again = (load_run_records(str(tmp_path), keep_in_memory=True) for _ in range(2))
    assert len(first) == 8 and first._fingerprint == again._fingerprint


def test_the_shard_writer_writes_in_the_background_and_raises_a_failed_write(rows, shards, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    with storage.ShardWriter(out, FINGERPRINT) as writer:
        for shard in shards:
            writer.submit(shard, _table(rows, shard))
    assert [shard_record(out, shard, FINGERPRINT)["num_rows"] for shard in shards] == [8, 8, 4]
    started = []

    def failing(output_dir, shard, table, fingerprint, skipped=()):
        started.append(shard.index)
        raise OSError(f"disk full writing {shard.path}")

    monkeypatch.setattr(storage, "write_shard", failing)
    with pytest.raises(OSError, match="disk full writing shards/reinforcements-00000.parquet"):
        with storage.ShardWriter(str(tmp_path / "other"), FINGERPRINT) as writer:
            writer.submit(shards[0], _table(rows, shards[0]))
            writer.submit(shards[1], _table(rows, shards[1]))  # raises the first write's error
    assert started == [0]


def test_keep_in_memory_is_refused_above_half_the_available_memory(run_dir, monkeypatch):
    assert len(load_run_records(run_dir, keep_in_memory=True)) == NUM_ROWS
    monkeypatch.setattr(loading, "available_memory", lambda: 2 * 2**10)
    with pytest.raises(InvalidConfigError, match="keep_in_memory=True would hold .* leave keep_in_memory out"):
        load_run_records(run_dir, keep_in_memory=True)
    assert len(load_run_records(run_dir)) == NUM_ROWS


def test_a_parallel_conversion_keeps_the_row_order(run_dir, tmp_path):
    """num_proc converts the shards in parallel (ImageNet+: minutes in one process); the rows stay in order."""
    one = load_run_records(run_dir, cache_dir=str(tmp_path / "one"), num_proc=1)
    two = load_run_records(run_dir, cache_dir=str(tmp_path / "two"), num_proc=2)
    assert two["key"] == one["key"] and two["reinforcements"] == one["reinforcements"]
    forked = multiprocessing.get_context().get_start_method() == "fork"
    expected = min(3, os.cpu_count()) if forked and os.cpu_count() > 1 else None
    assert loading.default_num_proc(10 * 2**30, 3) == expected
