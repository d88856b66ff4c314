"""``hf_dr.hub.load``'s helpers: ``check_source_keys`` on missing, extra and reordered source keys, and
``read_repo_json`` against the local Hub server (pinned commits, a missing file). Full round trips are in
test_push_load.py."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import HfApi

from hf_dr.data.source_keys import keys_sha256
from hf_dr.errors import DataMismatchError, HubNotFoundError
from hf_dr.hub.load import MAX_KEYS_SHOWN, check_source_keys, read_repo_json
from hf_dr.hub.push import HUB_META_FILE
from tests.utils_hub import server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)

KEYS = [f"digit-{i:05d}" for i in range(20)]
RECORDED = {"id": "tester/digits", "revision": "abc123", "num_rows": len(KEYS), "keys_sha256": keys_sha256(KEYS)}


# -- check_source_keys --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verify_source", [True, False])
def test_the_reinforced_source_is_kept_whole(verify_source):
    """Exactly the reinforced keys in the recorded order: every row is kept (None)."""
    assert check_source_keys(KEYS, KEYS, RECORDED, verify_source) is None


@pytest.mark.parametrize("verify_source", [True, False])
def test_missing_keys_are_always_refused(verify_source):
    """A source that lost rows is refused either way; the error counts them, shows the first few and the version."""
    lost = [k for i, k in enumerate(KEYS) if i % 3]  # 7 of 20 lost
    with pytest.raises(DataMismatchError, match=r"the source lacks 7 of the 20 reinforced keys") as info:
        check_source_keys(lost, KEYS, RECORDED, verify_source)
    message = str(info.value)
    missing = KEYS[::3]
    assert str(missing[:MAX_KEYS_SHOWN]) in message and missing[MAX_KEYS_SHOWN] not in message
    assert "tester/digits at revision abc123" in message and "source=" in message


def test_extra_rows_are_refused_when_verifying_and_dropped_otherwise():
    """Rows that were not reinforced: refused (naming them) with verify_source, else the reinforced rows' positions."""
    source = ["new-0", *KEYS[:10], "new-1", *KEYS[10:]]
    with pytest.raises(DataMismatchError, match=r"has 2 rows that were not reinforced \(first keys: \['new-0', "
                                                r"'new-1'\]\).*verify_source=False"):
        check_source_keys(source, KEYS, RECORDED)
    keep = check_source_keys(source, KEYS, RECORDED, verify_source=False)
    assert keep == [i for i, key in enumerate(source) if not key.startswith("new")]
    assert [source[i] for i in keep] == KEYS


def test_reordered_keys_are_refused_when_verifying_and_accepted_otherwise():
    """The same keys in another order: another version of the source, unless the order is allowed to differ."""
    reordered = KEYS[1:] + KEYS[:1]
    with pytest.raises(DataMismatchError, match=r"in another order than the run read .*verify_source=False") as info:
        check_source_keys(reordered, KEYS, RECORDED)
    assert keys_sha256(reordered)[:12] in str(info.value) and RECORDED["keys_sha256"][:12] in str(info.value)
    assert check_source_keys(reordered, KEYS, RECORDED, verify_source=False) is None


def test_reordered_source_with_extra_rows_keeps_the_reinforced_ones_in_source_order():
    """Without verifying, extra rows are dropped and the kept rows stay in the source's own order (joined by key)."""
    source = [KEYS[5], "extra", KEYS[0], *KEYS[1:5], *KEYS[6:]]
    keep = check_source_keys(source, KEYS, RECORDED, verify_source=False)
    assert [source[i] for i in keep] == [k for k in source if k != "extra"]


def test_a_recorded_source_without_a_key_hash_only_checks_the_key_set():
    """Older records without keys_sha256: the order cannot be checked, so it is not refused."""
    recorded = {k: v for k, v in RECORDED.items() if k != "keys_sha256"}
    assert check_source_keys(KEYS[::-1], KEYS, recorded) is None
    with pytest.raises(DataMismatchError, match="lacks 1 of the 20"):
        check_source_keys(KEYS[1:], KEYS, recorded)


# -- read_repo_json -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repo(hub) -> tuple[str, str, str]:
    """A dataset repo on the local Hub whose hf_dr.json changed in a second commit: (repo id, first, second)."""
    api = HfApi()
    repo_id = unique_repo("load-json")
    api.create_repo(repo_id, repo_type="dataset")
    commits = []
    for version in (1, 2):
        content = json.dumps({"format": "hf-dr-hub", "version": version}).encode()
        commits.append(api.upload_file(path_or_fileobj=content, path_in_repo=HUB_META_FILE, repo_id=repo_id,
                                       repo_type="dataset").oid)
    return repo_id, commits[0], commits[1]


def test_read_repo_json_reads_the_file_at_the_pinned_commit(repo):
    """Each commit gives its own content: the first commit still reads version 1 after the second was pushed."""
    repo_id, first, second = repo
    assert read_repo_json(repo_id, HUB_META_FILE, first) == {"format": "hf-dr-hub", "version": 1}
    assert read_repo_json(repo_id, HUB_META_FILE, second) == {"format": "hf-dr-hub", "version": 2}


def test_read_repo_json_names_a_missing_file(repo):
    """A repo without the file was not pushed by hf-dr: HubNotFoundError naming the repo, revision and file."""
    repo_id, first, _ = repo
    with pytest.raises(HubNotFoundError, match=r"has no reinforce_config.json: it was not pushed by "
                                               r"hf_dr.push_to_hub") as info:
        read_repo_json(repo_id, "reinforce_config.json", first)
    assert repo_id in str(info.value) and first in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


# -- a metadata-only stream read by DataLoader workers -------------------------------------------------------------
def _tag_worker(row: dict) -> dict:
    """Adds the id of the DataLoader worker that produced ``row`` (-1 in the main process)."""
    import torch

    info = torch.utils.data.get_worker_info()
    return {**row, "worker": -1 if info is None else info.id}


@pytest.fixture(scope="module")
def many_files(hub, tmp_path_factory):
    """A metadata-only push of a source of 4 Parquet files: (repo id, cache dir, source id)."""
    from tests.data_utils import digits_dataset
    from tests.utils_hub import NUM_ROWS, metadata_only_plus

    root = tmp_path_factory.mktemp("many-files")
    source_id = unique_repo("digits-4-files")
    digits_dataset(NUM_ROWS).push_to_hub(source_id, num_shards=4)
    repo_id = metadata_only_plus(source_id, root, "digits-4-files-plus")
    return repo_id, str(root / "cache"), source_id


def test_a_push_records_the_source_files_with_their_row_counts(many_files):
    """Issue 23: hf_dr.json lists the source split's 4 data files at the pinned revision, in stream order, with the
    rows of each."""
    from tests.utils_hub import NUM_ROWS

    repo_id, _, source_id = many_files
    meta = read_repo_json(repo_id, HUB_META_FILE, HfApi().dataset_info(repo_id).sha)
    files = meta["source"]["data_files"]
    assert [f["path"] for f in files] == [f"data/train-0000{i}-of-00004.parquet" for i in range(4)]
    assert [f["num_rows"] for f in files] == [NUM_ROWS // 4] * 4
    assert meta["source"]["id"] == source_id


def test_a_metadata_only_stream_of_a_many_file_source_reads_whole_with_workers(many_files):
    """Issue 23: with a source of 4 Parquet files, a DataLoader with 2 workers split the source side across the
    workers but not the reinforcement side, and stopped with "row 20 of the source has the key ... where the
    reinforcements hold ..."; then it was one shard, read by one worker. Now the stream has one shard per source file:
    both workers yield rows, every row arrives once, as the map-style dataset replays it, epoch after epoch."""
    import torch

    from hf_dr import load_reinforced, set_epoch
    from tests.utils_hub import SIZE

    repo_id, cache_dir, _ = many_files
    stream = load_reinforced(repo_id, streaming=True, size=SIZE, cache_dir=cache_dir)
    mapped = load_reinforced(repo_id, size=SIZE, cache_dir=cache_dir)
    keys = mapped.with_format("arrow")[:].column("key").to_pylist()
    assert stream.num_shards == 4
    tagged = stream.map(_tag_worker)
    loader = torch.utils.data.DataLoader(tagged, batch_size=8, num_workers=2, persistent_workers=True)
    for epoch in range(2):
        tagged.set_epoch(epoch)
        set_epoch(mapped, epoch)
        seen, workers = {}, {}
        for batch in loader:
            for key, pixels, labels, worker in zip(batch["key"], batch["pixel_values"], batch["labels"],
                                                   batch["worker"].tolist(), strict=True):
                assert key not in seen
                seen[key] = (pixels, labels)
                workers[worker] = workers.get(worker, 0) + 1
        assert sorted(seen) == sorted(keys)
        assert workers == {0: len(keys) // 2, 1: len(keys) // 2}  # two files each
        for row, key in enumerate(keys):
            assert torch.equal(seen[key][0], mapped[row]["pixel_values"]) and torch.equal(seen[key][1],
                                                                                           mapped[row]["labels"])


def test_split_dataset_by_node_ranks_read_their_own_files(many_files):
    """Issue 23: split_dataset_by_node made every rank read all 4 files and keep half; now each rank's split has 2
    shards (2 files) and the ranks partition the keys."""
    from datasets.distributed import split_dataset_by_node

    from hf_dr import load_reinforced
    from tests.utils_hub import NUM_ROWS, SIZE

    repo_id, cache_dir, _ = many_files
    stream = load_reinforced(repo_id, streaming=True, size=SIZE, cache_dir=cache_dir)
    ranks = [split_dataset_by_node(stream, rank=rank, world_size=2) for rank in range(2)]
    assert [rank.num_shards for rank in ranks] == [2, 2]
    keys = [[row["key"] for row in rank] for rank in ranks]
    files = [[f"digit-{i:05d}" for i in range(f * NUM_ROWS // 4, (f + 1) * NUM_ROWS // 4)] for f in range(4)]
    assert keys == [files[0] + files[2], files[1] + files[3]]  # datasets deals the shards out in turn


def test_a_self_contained_stream_of_one_file_uses_every_worker(hub, tmp_path_factory):
    """Issue 23: a self-contained repo of one data file (one row group) streamed as one shard, read by one worker;
    now it streams in 8 row ranges: 2 workers replay half the rows each, every key once, as map-style."""
    import torch

    from hf_dr import load_reinforced, set_epoch
    from tests.utils_hub import SIZE, published

    state = published(tmp_path_factory)
    stream = load_reinforced(state.self_contained, streaming=True, size=SIZE, cache_dir=state.cache_dir)
    mapped = load_reinforced(state.self_contained, size=SIZE, cache_dir=state.cache_dir)
    keys = mapped.with_format("arrow")[:].column("key").to_pylist()
    assert stream.num_shards == 8
    tagged = stream.map(_tag_worker)
    loader = torch.utils.data.DataLoader(tagged, batch_size=5, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        tagged.set_epoch(epoch)
        set_epoch(mapped, epoch)
        rows = {key: (pixels, labels, worker) for batch in loader for key, pixels, labels, worker in zip(
            batch["key"], batch["pixel_values"], batch["labels"], batch["worker"].tolist(), strict=True)}
        assert sorted(rows) == sorted(keys)
        assert sorted(worker for *_, worker in rows.values()) == [0] * (len(keys) // 2) + [1] * (len(keys) // 2)
        for row, key in enumerate(keys):
            assert torch.equal(rows[key][0], mapped[row]["pixel_values"])
            assert torch.equal(rows[key][1], mapped[row]["labels"])


def test_a_limited_run_names_both_causes_and_the_fix():
    """A run over the first 12 of 20 rows (--limit) loaded from the full split: the keys cannot tell it from a source
    that gained rows, so the refusal names both and the fix (issue 21: the --limit run's false alarm)."""
    recorded = {**RECORDED, "num_rows": 12, "keys_sha256": keys_sha256(KEYS[:12])}
    with pytest.raises(DataMismatchError, match=r"8 rows that were not reinforced .*--limit.*verify_source=False"):
        check_source_keys(KEYS, KEYS[:12], recorded)
    assert check_source_keys(KEYS, KEYS[:12], recorded, verify_source=False) == list(range(12))


def test_a_stream_stays_one_shard_without_recorded_source_files_or_with_another_source(many_files):
    """Pushes made before issue 23 (no source["data_files"]) and a source given with source= stream as one shard,
    every row still checked."""
    import datasets

    from hf_dr import load_reinforced
    from hf_dr.hub.shards import stream_parts
    from tests.utils_hub import NUM_ROWS, SIZE

    repo_id, cache_dir, source_id = many_files
    commit = HfApi().dataset_info(repo_id).sha
    meta = read_repo_json(repo_id, HUB_META_FILE, commit)
    images = datasets.load_dataset(source_id, split="train", streaming=True)
    assert len(stream_parts(repo_id, commit, meta, images, True)[0]) == 4
    old = {**meta, "source": {k: v for k, v in meta["source"].items() if k != "data_files"}}
    assert stream_parts(repo_id, commit, old, images, True) is None
    assert stream_parts(repo_id, commit, meta, images, False) is None
    given = load_reinforced(repo_id, streaming=True, size=SIZE, cache_dir=cache_dir, source=source_id)
    assert given.num_shards == 1 and len(list(given)) == NUM_ROWS


def test_a_repo_that_cannot_be_reached_is_not_taken_for_a_plain_one(repo, monkeypatch):
    """A connection error while reading hf_dr.json (after the repo answered) must not make a reinforced repo look
    plain to the training entry points: it propagates instead of reading as "no such file"."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    import hf_dr.hub.repo_meta as load

    def unreachable(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub")

    monkeypatch.setattr(load, "hf_hub_download", unreachable)
    with pytest.raises(LocalEntryNotFoundError):
        load.reinforced_repo(repo[0])
