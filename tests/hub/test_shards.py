"""``hf_dr.hub.shards``: a metadata-only stream of a source of ONE Parquet file (CIFAR-100's layout on the Hub) splits
into one part per row group of that file, so DataLoader workers share it; the per-row key check stays."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

from hf_dr.hub.load import read_repo_json
from hf_dr.hub.push import HUB_META_FILE
from tests.utils_hub import server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)

GROUP_ROWS = 12  # 48 rows in 4 row groups


@pytest.fixture(scope="module")
def one_file(hub, tmp_path_factory):
    """A metadata-only push of a source of one Parquet file of 4 row groups: (repo id, cache dir)."""
    from tests.data_utils import digits_dataset
    from tests.utils_hub import NUM_ROWS, metadata_only_plus

    root = tmp_path_factory.mktemp("one-file")
    source_id = unique_repo("digits-1-file")
    HfApi().create_repo(source_id, repo_type="dataset")
    parquet = root / "train.parquet"
    digits_dataset(NUM_ROWS).to_parquet(str(parquet), batch_size=GROUP_ROWS)  # one row group per batch
    HfApi().upload_file(path_or_fileobj=str(parquet), path_in_repo="data/train-00000-of-00001.parquet",
                        repo_id=source_id, repo_type="dataset")
    repo_id = metadata_only_plus(source_id, root, "digits-1-file-plus")
    return repo_id, str(root / "cache")


def _tag_worker(row: dict) -> dict:
    import torch

    info = torch.utils.data.get_worker_info()
    return {**row, "worker": -1 if info is None else info.id}


def test_a_push_records_the_row_groups_of_each_source_file(one_file):
    from tests.utils_hub import NUM_ROWS

    repo_id, _ = one_file
    meta = read_repo_json(repo_id, HUB_META_FILE, HfApi().dataset_info(repo_id).sha)
    [entry] = meta["source"]["data_files"]
    assert entry["num_rows"] == NUM_ROWS and entry["row_groups"] == [GROUP_ROWS] * (NUM_ROWS // GROUP_ROWS)


def test_a_one_file_source_streams_in_row_groups_read_by_every_worker(one_file):
    """Before: one source file made the stream one shard, read by one DataLoader worker (the other idle). Now one
    shard per row group: 2 workers each replay half the rows, every key once, as the map-style dataset replays it."""
    import torch

    from hf_dr import load_reinforced, set_epoch
    from tests.utils_hub import NUM_ROWS, SIZE

    repo_id, cache_dir = one_file
    stream = load_reinforced(repo_id, streaming=True, size=SIZE, cache_dir=cache_dir)
    mapped = load_reinforced(repo_id, size=SIZE, cache_dir=cache_dir)
    keys = mapped.with_format("arrow")[:].column("key").to_pylist()
    assert stream.num_shards == NUM_ROWS // GROUP_ROWS
    tagged = stream.map(_tag_worker)
    loader = torch.utils.data.DataLoader(tagged, batch_size=6, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        tagged.set_epoch(epoch)
        set_epoch(mapped, epoch)
        rows = {key: (pixels, worker) for batch in loader for key, pixels, worker in zip(
            batch["key"], batch["pixel_values"], batch["worker"].tolist(), strict=True)}
        assert sorted(rows) == sorted(keys)
        assert sorted(worker for _, worker in rows.values()) == [0] * (NUM_ROWS // 2) + [1] * (NUM_ROWS // 2)
        for row, key in enumerate(keys):
            assert torch.equal(rows[key][0], mapped[row]["pixel_values"])


def test_ranks_split_the_row_groups(one_file):
    from datasets.distributed import split_dataset_by_node

    from hf_dr import load_reinforced
    from tests.utils_hub import SIZE

    repo_id, cache_dir = one_file
    stream = load_reinforced(repo_id, streaming=True, size=SIZE, cache_dir=cache_dir)
    ranks = [split_dataset_by_node(stream, rank=rank, world_size=2) for rank in range(2)]
    assert [rank.num_shards for rank in ranks] == [2, 2]
    groups = [[f"digit-{i:05d}" for i in range(g * GROUP_ROWS, (g + 1) * GROUP_ROWS)] for g in range(4)]
    assert [[row["key"] for row in rank] for rank in ranks] == [groups[0] + groups[2], groups[1] + groups[3]]
