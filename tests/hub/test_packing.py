"""Packing a run into Hub data files: the sizing rule, the streaming Parquet writer, and pushes of a small run with
tiny targets (monkeypatched) through the local Hub server: 8 files, sizes and row groups within the targets, every
row in order, the same records loaded back, one file staged at a time, and a re-push that uploads nothing."""

from __future__ import annotations

import hashlib
import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets.distributed import split_dataset_by_node
from huggingface_hub import HfApi, hf_hub_download

from hf_dr import ReinforcedTransform, load_reinforced, push_to_hub
from hf_dr.data.epochs import transform_of
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.parquet import split_rows, write_parquet, write_parquet_batches
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import verify_run
from hf_dr.hub import build, packing
from hf_dr.hub.card import SAMPLES_FIGURE
from hf_dr.hub.packing import FILES_MULTIPLE, SourceImages, plan_files, read_shards
from tests.utils_hub import (
    NUM_ROWS,
    POLICY,
    SIZE,
    Published,
    published,
    run,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
    unique_repo,
)

NUM_SAMPLES = 64  # records per row: enough bytes per row that a file's size is mostly rows, not per-page overhead
NUM_FILES = 8
GROUP_ROWS = 2  # rows per row group the tiny MAX_ROW_GROUP_BYTES allows
FILE_MARGIN = 1.25  # a packed file's data bytes against the estimate made on the run's shards (page overheads)


# -- the sizing rule ------------------------------------------------------------------------------------------------
class TestPlanFiles:
    def test_a_small_run_is_one_file(self):
        plan = plan_files("train", [1000, 1000, 500], [14e6, 14e6, 7e6], 46e3)
        assert plan.names == ["data/train-00000-of-00001.parquet"] and plan.num_rows == [2500]
        assert plan.row_group_rows == [90]  # 28 even groups under 4 MiB (91 rows at most): random access decodes one

    @pytest.mark.parametrize("total_bytes", [0.3e9, 2.1e9, 20e9, 160e9])
    def test_files_are_a_multiple_of_8_under_the_target_with_balanced_rows(self, total_bytes):
        shards = 1282
        num_rows = [1000] * (shards - 1) + [167]
        plan = plan_files("train", num_rows, [total_bytes / shards] * shards, 46e3)
        count = len(plan.names)
        assert count % FILES_MULTIPLE == 0 and sum(plan.num_rows) == sum(num_rows)
        assert max(plan.num_rows) - min(plan.num_rows) <= 1
        per_row = total_bytes / sum(num_rows)
        assert max(plan.num_rows) * per_row <= packing.TARGET_FILE_BYTES * 1.001  # every file under the target
        assert max(plan.num_rows) * per_row > packing.TARGET_FILE_BYTES * (count - FILES_MULTIPLE) / count
        assert all(g * 46e3 <= packing.MAX_ROW_GROUP_BYTES for g in plan.row_group_rows)
        assert plan.names == sorted(plan.names) and plan.names[-1].endswith(f"-{count - 1:05d}-of-{count:05d}.parquet")

    def test_row_groups_are_even_within_a_file(self):
        row_bytes = packing.MAX_ROW_GROUP_BYTES / 1024
        assert plan_files("train", [3072], [1e6], row_bytes).row_group_rows == [1024]
        plan = plan_files("train", [3073], [1e6], row_bytes)
        assert plan.row_group_rows == [769]  # 4 groups of 769, 769, 769, 766 rather than 1024, 1024, 1024, 1

    def test_a_few_huge_rows_stay_in_one_file_and_no_file_is_empty(self):
        assert len(plan_files("train", [5], [5e9], 1e9).names) == 1
        plan = plan_files("train", [12], [5e9], 1e9)
        assert len(plan.names) == 8 and min(plan.num_rows) == 1 and plan.row_group_rows[0] == 1
        assert plan_files("train", [0], [0], 0).num_rows == [0]


# -- the streaming writer -------------------------------------------------------------------------------------------
def _table(start: int, stop: int) -> pa.Table:
    schema = pa.schema([("key", pa.string()), ("x", pa.list_(pa.float32()))], metadata={b"huggingface": b"{}"})
    return pa.table({"key": [f"k{i}" for i in range(start, stop)], "x": [[i / 2] * 3 for i in range(start, stop)]},
                    schema=schema)


class TestStreamingWriter:
    def test_row_groups_hold_exactly_the_rows_asked_across_tables(self, tmp_path):
        parts = [_table(0, 5), _table(5, 6), _table(6, 13)]
        path = write_parquet_batches(iter(parts), tmp_path / "t.parquet", parts[0].schema, row_group_rows=4)
        meta = pq.read_metadata(path)
        assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [4, 4, 4, 1]
        table = pq.read_table(path)
        assert table.equals(_table(0, 13)) and table.schema.metadata == parts[0].schema.metadata
        assert os.listdir(tmp_path) == ["t.parquet"]  # written atomically: no temporary left

    def test_whole_tables_are_written_as_write_parquet_writes_them(self, tmp_path):
        table = _table(0, 20)
        whole = write_parquet(table, tmp_path / "whole.parquet", compression_level=5)
        streamed = write_parquet_batches([table], tmp_path / "streamed.parquet", table.schema, compression_level=5)
        assert whole.read_bytes() == streamed.read_bytes()
        column = pq.read_metadata(whole).row_group(0).column(1)
        assert column.compression == "ZSTD" and "BYTE_STREAM_SPLIT" in column.encodings

    def test_a_failed_stream_leaves_no_file(self, tmp_path):
        def tables():
            yield _table(0, 3)
            raise RuntimeError("the source broke")

        with pytest.raises(RuntimeError, match="the source broke"):
            write_parquet_batches(tables(), tmp_path / "t.parquet", _table(0, 0).schema, row_group_rows=2)
        assert os.listdir(tmp_path) == []

    def test_split_rows_refuses_rows_left_over(self):
        with pytest.raises(ValueError, match="hold 2 rows more than the 3 rows asked for"):
            [list(part) for part in split_rows([_table(0, 5)], [3])]

    def test_split_rows_cuts_a_stream_lazily(self):
        read = []

        def tables():
            for start in range(0, 10, 4):
                read.append(start)
                yield _table(start, min(start + 4, 10))

        parts = split_rows(tables(), [3, 0, 6, 1])
        first = list(next(parts))
        assert read == [0] and [t.column("key").to_pylist() for t in first] == [["k0", "k1", "k2"]]
        assert list(next(parts)) == []
        assert [t.num_rows for t in next(parts)] == [1, 4, 1] and [t.num_rows for t in next(parts)] == [1]
        with pytest.raises(ValueError, match="1 rows short of the 3 rows"):
            [list(part) for part in split_rows([_table(0, 2)], [3])]


# -- pushes with tiny targets ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    """The session's source repo with a run of its 48 rows at N=64 (3 shards of 16 rows) in place of the shared run."""
    shared = published(tmp_path_factory)
    recorded = {"id": shared.source_id, "revision": shared.source_commit, "split": "train"}
    run_dir = run(shared.source, shared.members[:1], tmp_path_factory.mktemp("packing") / "run",
                  num_samples=NUM_SAMPLES, source=recorded)
    return Published(shared.source_id, shared.source_commit, shared.source, run_dir, shared.members[:1], "", "",
                     shared.cache_dir)


def _shards(state: Published, layout: str) -> packing.RunShards:
    config = ReinforceConfig.load(state.run_dir)
    shards = read_shards(state.run_dir, verify_run(state.run_dir), config)
    return SourceImages(state.source, config, shards).add_bytes(shards) if layout == "self-contained" else shards


@pytest.fixture
def tiny_targets(state, monkeypatch):
    """Targets that cut the session's run (48 rows, 3 shards of 16) into 8 files of 6 rows in row groups of 2."""

    def set_for(layout: str) -> packing.RunShards:
        shards = _shards(state, layout)
        monkeypatch.setattr(packing, "TARGET_FILE_BYTES", int(sum(shards.num_bytes) / 6))
        monkeypatch.setattr(packing, "MAX_ROW_GROUP_BYTES", int((GROUP_ROWS + 0.5) * max(shards.row_bytes)))
        return shards

    return set_for


@pytest.fixture
def staged(monkeypatch) -> list[list[str]]:
    """For every ``preupload_lfs_files`` call: the Parquet files on disk in the push's staging folder."""
    calls, real = [], HfApi.preupload_lfs_files

    def preupload(self, repo_id, *, additions, **kwargs):
        additions = list(additions)
        for operation in additions:
            if isinstance(operation.path_or_fileobj, str) and operation.path_in_repo.endswith(".parquet"):
                staging = operation.path_or_fileobj[: -len(operation.path_in_repo)]
                calls.append(sorted(name for _, _, names in os.walk(staging) for name in names
                                    if name.endswith(".parquet")))
        return real(self, repo_id, additions=additions, **kwargs)

    monkeypatch.setattr(HfApi, "preupload_lfs_files", preupload)
    return calls


@pytest.fixture
def written(monkeypatch) -> list[str]:
    """The names of the data files a push writes (counted where they come out of the writing processes)."""
    names, real = [], build.write_files

    def counting(jobs, *args, **kwargs):
        for file in real(jobs, *args, **kwargs):
            names.append(file.name)
            yield file

    monkeypatch.setattr(build, "write_files", counting)
    return names


def _lfs_sha256(repo: str) -> dict[str, str]:
    """The repo's data files and the SHA-256 the Hub lists for each (LFS)."""
    return {entry.path: entry.lfs.sha256 for entry in HfApi().list_repo_tree(repo, "data", repo_type="dataset")}


def _data_files(repo: str) -> list[str]:
    files = HfApi().list_repo_files(repo, repo_type="dataset")
    return [hf_hub_download(repo, name, repo_type="dataset") for name in files if name.startswith("data/")]


def _run_table(state: Published) -> pa.Table:
    manifest = verify_run(state.run_dir)
    return pa.concat_tables([pq.read_table(os.path.join(state.run_dir, s["path"])) for s in manifest["shards"]])


def _assert_packed(paths: list[str], shards: packing.RunShards) -> None:
    """8 files of 6 rows, each within the size target and its row groups within the row-group target."""
    assert len(paths) == NUM_FILES and [pq.read_metadata(p).num_rows for p in paths] == [NUM_ROWS // NUM_FILES] * 8
    for path in paths:
        meta = pq.read_metadata(path)
        data_bytes = os.path.getsize(path) - meta.serialized_size - 8  # footer, its length and the magic bytes
        assert data_bytes <= packing.TARGET_FILE_BYTES * FILE_MARGIN, (path, data_bytes, packing.TARGET_FILE_BYTES)
        groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
        assert [g.num_rows for g in groups] == [GROUP_ROWS] * 3
        assert all(g.total_byte_size <= packing.MAX_ROW_GROUP_BYTES for g in groups)
        assert meta.row_group(0).column(0).compression == "ZSTD"


@pytest.mark.slow
class TestPackedPush:
    def test_metadata_only(self, state, tiny_targets, staged, hub):
        shards = tiny_targets("metadata-only")
        repo = unique_repo("packed-meta")
        push_to_hub(state.run_dir, repo, layout="metadata-only", num_proc=2)
        paths = _data_files(repo)
        _assert_packed(paths, shards)
        assert len(staged) == NUM_FILES and max(map(len, staged)) <= 3  # the one uploaded and at most num_proc more
        packed = pa.concat_tables([pq.read_table(p) for p in paths])
        assert packed.equals(_run_table(state)) and packed.schema.metadata == _run_table(state).schema.metadata
        stream = datasets.load_dataset(repo, split="train", streaming=True)
        assert stream.num_shards == NUM_FILES
        assert [split_dataset_by_node(stream, rank=0, world_size=n).num_shards for n in (1, 2, 4, 8)] == [8, 4, 2, 1]
        self._assert_same_records(state, repo)
        parallel = load_reinforced(repo, size=SIZE, cache_dir=os.path.join(state.cache_dir, "parallel"), num_proc=2)
        assert parallel.with_format("arrow")[:].column("key").to_pylist() == state.source["key"]  # order kept
        self._assert_repush_uploads_nothing(state, repo, hub, staged, layout="metadata-only")

    def test_self_contained(self, state, tiny_targets, staged, hub):
        shards = tiny_targets("self-contained")
        repo = unique_repo("packed-self")
        push_to_hub(state.run_dir, repo, dataset=state.source)
        paths = _data_files(repo)
        _assert_packed(paths, shards)
        assert len(staged) == NUM_FILES and all(len(files) == 1 for files in staged)
        assert pq.read_metadata(paths[0]).row_group(0).column(0).path_in_schema == "image.bytes"
        plain = datasets.load_dataset(repo, split="train", cache_dir=state.cache_dir)
        run = _run_table(state)
        assert plain.data.table.drop_columns(["image"]).equals(run.cast(plain.data.table.drop_columns(["image"])
                                                                         .schema))
        by_key = {key: cell for key, cell in zip(state.source["key"], state.source.data.column("image").to_pylist(),
                                                 strict=True)}
        assert plain.data.column("image").to_pylist() == [by_key[k] for k in plain["key"]]
        assert SAMPLES_FIGURE in HfApi().list_repo_files(repo, repo_type="dataset")
        self._assert_same_records(state, repo)
        self._assert_repush_uploads_nothing(state, repo, hub, staged, dataset=state.source)

    def test_files_are_the_same_bytes_for_any_num_proc(self, state, tiny_targets, staged):
        tiny_targets("metadata-only")
        digests = {}
        for num_proc in (1, 3):
            staged.clear()
            repo = unique_repo(f"packed-proc{num_proc}")
            push_to_hub(state.run_dir, repo, layout="metadata-only", num_proc=num_proc)
            assert len(staged) == NUM_FILES and max(map(len, staged)) <= num_proc + 1
            digests[num_proc] = _lfs_sha256(repo)
        assert len(digests[1]) == NUM_FILES and digests[1] == digests[3]

    def test_a_repush_writes_only_the_files_the_repo_lacks(self, state, tiny_targets, written):
        tiny_targets("metadata-only")
        api, repo = HfApi(), unique_repo("packed-record")
        push_to_hub(state.run_dir, repo, layout="metadata-only")
        digests, changed = _lfs_sha256(repo), "data/train-00003-of-00008.parquet"
        assert len(written) == NUM_FILES
        api.upload_file(path_or_fileobj=b"PAR1 other bytes", path_in_repo=changed, repo_id=repo, repo_type="dataset")
        written.clear()
        push_to_hub(state.run_dir, repo, layout="metadata-only")
        assert written == [changed] and _lfs_sha256(repo) == digests  # the build record vouched for the 7 others
        written.clear()
        head = api.dataset_info(repo).sha
        assert push_to_hub(state.run_dir, repo, layout="metadata-only") == head and written == []
        push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=5)  # other inputs: all written
        assert len(written) == NUM_FILES and _lfs_sha256(repo) != digests

    def test_a_smaller_run_replaces_every_packed_file(self, state, tiny_targets, monkeypatch):
        tiny_targets("metadata-only")
        repo = unique_repo("packed-then-one")
        push_to_hub(state.run_dir, repo, layout="metadata-only")
        monkeypatch.setattr(packing, "TARGET_FILE_BYTES", 2**30)
        push_to_hub(state.run_dir, repo, layout="metadata-only")
        files = HfApi().list_repo_files(repo, repo_type="dataset")
        assert [f for f in files if f.startswith("data/")] == ["data/train-00000-of-00001.parquet"]
        card = open(hf_hub_download(repo, "README.md", repo_type="dataset")).read()
        assert "num_examples: 48" in card and "path: data/train-*" in card

    @staticmethod
    def _assert_same_records(state: Published, repo: str) -> None:
        """load_reinforced gives every key the run's own records, in the run's row order."""
        loaded = load_reinforced(repo, size=SIZE, cache_dir=state.cache_dir)
        reference = ReinforcedTransform(load_run_records(state.run_dir, keep_in_memory=True), POLICY, size=SIZE)
        keys = loaded.with_format("arrow")[:].column("key").to_pylist()
        assert keys == state.source["key"]
        transform = transform_of(loaded)
        for key in keys:
            assert [transform.record(key, i) for i in range(NUM_SAMPLES)] == [
                reference.record(key, i) for i in range(NUM_SAMPLES)]

    @staticmethod
    def _assert_repush_uploads_nothing(state: Published, repo: str, hub, staged: list[list[str]], **options) -> None:
        """A re-push writes no data file (self-contained: the first, for the card's samples grid) and commits
        nothing."""
        head = HfApi().dataset_info(repo).sha
        uploads, requests = len(hub.lfs_uploads), len(hub.requests)
        staged.clear()
        digests = {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in _data_files(repo)}
        assert push_to_hub(state.run_dir, repo, **options) == head
        assert len(hub.lfs_uploads) == uploads
        assert not [path for _, path, _ in hub.requests[requests:] if "/commit/" in path]
        assert {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in _data_files(repo)} == digests
        assert staged == ([] if options.get("layout") == "metadata-only" else [["train-00000-of-00008.parquet"]])
