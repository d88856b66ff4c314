"""``hf_dr.hub.opening.open_reinforced``: one opening of a reinforced dataset for training, from a local run folder
or a pushed repo. Map-style Hub loads convert no record (the downloaded Parquet files are opened by row group), for new
pushes (row groups of about a run's) and old ones (one large group per file) alike; every load gives the run's own
replay, by key; a Trainer and ``fit`` train on what it returns."""

from __future__ import annotations

import os

import datasets
import pyarrow.parquet as pq
import pytest
import torch
from huggingface_hub import HfApi

from hf_dr import TrainConfig, create_model, fit, load_reinforced, push_to_hub
from hf_dr.data.epochs import set_epoch, transform_of
from hf_dr.errors import DataMismatchError, InvalidConfigError
from hf_dr.generate.loading import load_run_records
from hf_dr.hub import opening, packing
from hf_dr.hub.opening import open_reinforced, pushed_files
from hf_dr.hub.repo_meta import read_split_meta
from hf_dr.train.trainer import reinforced_trainer, reinforced_training_args
from tests.hub.test_packing import _shards
from tests.hub.test_push_load import _assert_matches_reference, _keys
from tests.utils_hub import (
    NUM_ROWS,
    POLICY,
    SIZE,
    Published,
    published,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
    unique_repo,
)

OLD_ROW_GROUP_BYTES = 64 * 2**20  # what pushes wrote before: one row group per file at these sizes
ROWS_PER_GROUP = 5  # a tiny MAX_ROW_GROUP_BYTES's rows per group: many groups in the session's 48 rows


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(state):
    from hf_dr import ReinforcedTransform

    return ReinforcedTransform(load_run_records(state.run_dir, keep_in_memory=True), POLICY, size=SIZE,
                               images=state.source)


def _push(state: Published, name: str, group_bytes: float, layout: str) -> str:
    """The session's run pushed with row groups of at most ``group_bytes`` (Parquet-uncompressed)."""
    repo = unique_repo(name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(packing, "MAX_ROW_GROUP_BYTES", int(group_bytes))
        push_to_hub(state.run_dir, repo, layout=layout, dataset=state.source if layout == "self-contained" else None)
    return repo


def _group_rows(repo: str) -> list[int]:
    """The rows of each row group of the repo's train files."""
    commit = HfApi().dataset_info(repo).sha
    meta, _ = read_split_meta(repo, "train", commit)
    metadata = [pq.read_metadata(path) for path in pushed_files(repo, "train", commit, meta)]
    return [m.row_group(g).num_rows for m in metadata for g in range(m.num_row_groups)]


@pytest.fixture(scope="module")
def pushes(state) -> dict[tuple[str, str], str]:
    """Both layouts pushed as before (64 MiB groups) and with many small row groups."""
    out = {}
    for layout in ("metadata-only", "self-contained"):
        row_bytes = max(_shards(state, layout).row_bytes)
        out[(layout, "old")] = _push(state, f"old-{layout}", OLD_ROW_GROUP_BYTES, layout)
        out[(layout, "new")] = _push(state, f"small-{layout}", (ROWS_PER_GROUP + 0.5) * row_bytes, layout)
    return out


@pytest.mark.parametrize("layout", ["metadata-only", "self-contained"])
@pytest.mark.parametrize("age", ["old", "new"])
def test_a_map_style_load_converts_no_record_and_replays_the_run(state, reference, pushes, layout, age,
                                                                 monkeypatch, tmp_path):
    repo = pushes[(layout, age)]
    groups = _group_rows(repo)
    assert groups == [NUM_ROWS] if age == "old" else max(groups) <= ROWS_PER_GROUP
    real_load = datasets.load_dataset

    def no_conversion(path, *args, **kwargs):  # the source may be loaded; the reinforced repo's records may not
        assert path != repo, "the reinforced repo was converted by datasets.load_dataset"
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", no_conversion)
    cache_dir = str(tmp_path / "cache")
    loaded = load_reinforced(repo, size=SIZE, cache_dir=cache_dir)
    records = transform_of(loaded)._records
    assert not os.path.isdir(records.cache_dir) or os.listdir(records.cache_dir) == []  # nothing decoded yet
    assert sorted(_keys(loaded)) == sorted(state.source["key"])
    for epoch in (0, 1):
        _assert_matches_reference(loaded, reference, state.source, epoch)
    assert len(os.listdir(records.cache_dir)) == len(groups)  # every group decoded once, when first read


def test_an_old_push_without_listed_data_files_opens_the_split_files(state, pushes):
    repo = pushes[("metadata-only", "old")]
    commit = HfApi().dataset_info(repo).sha
    meta, _ = read_split_meta(repo, "train", commit)
    assert meta["data_files"] and pushed_files(repo, "train", commit, {}) == pushed_files(repo, "train", commit, meta)
    with pytest.raises(Exception, match="holds no data file of the split 'test'"):
        pushed_files(repo, "test", commit, {})


def test_a_local_run_opens_with_its_recorded_source_or_a_given_one(state, reference, tmp_path):
    recorded = open_reinforced(state.run_dir, size=SIZE, cache_dir=str(tmp_path / "a"))
    given = open_reinforced(state.run_dir, source=state.source, size=SIZE, cache_dir=str(tmp_path / "b"))
    for dataset in (recorded, given):
        assert len(dataset) == NUM_ROWS
        _assert_matches_reference(dataset, reference, state.source, 2)
    with pytest.raises(DataMismatchError, match="lacks 8 of the 48 reinforced keys"):
        open_reinforced(state.run_dir, source=state.source.select(range(40)), size=SIZE)
    with pytest.raises(DataMismatchError, match="rows that were not reinforced"):
        open_reinforced(state.run_dir, source=datasets.concatenate_datasets(
            [state.source, state.source.select(range(2)).map(lambda r: {"key": r["key"] + "-x"})]), size=SIZE)
    with pytest.raises(InvalidConfigError, match="local run folder, which loads map-style"):
        open_reinforced(state.run_dir, streaming=True)


def test_fit_and_a_trainer_train_on_an_opened_dataset(state, pushes, tmp_path):
    for target in (state.run_dir, pushes[("metadata-only", "new")]):
        dataset = open_reinforced(target, size=SIZE, cache_dir=str(tmp_path / "cache"))
        set_epoch(dataset, 0)
        torch.manual_seed(0)
        model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
        before = [p.detach().clone() for p in model.parameters()]
        fit(model, dataset, TrainConfig(epochs=1, batch_size=16, lr=0.05))
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    args = reinforced_training_args(str(tmp_path / "trainer"), per_device_train_batch_size=16, max_steps=2,
                                    report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True)
    before = [p.detach().clone() for p in model.parameters()]
    reinforced_trainer(model, args, dataset).train()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_streams_are_unchanged_by_the_map_style_opening(state, pushes, monkeypatch):
    calls = []
    monkeypatch.setattr(opening, "open_parquet_records", lambda *a, **k: calls.append(a))
    stream = load_reinforced(pushes[("metadata-only", "new")], streaming=True, size=SIZE,
                             cache_dir=state.cache_dir)
    assert len(list(stream)) == NUM_ROWS and calls == []


def test_a_given_source_dataset_is_left_as_it_was(state, pushes):
    """The replay is set on a new Dataset: the caller's source keeps its rows (it used to get the transform)."""
    source = state.source.select(range(NUM_ROWS))
    loaded = load_reinforced(pushes[("metadata-only", "new")], source=source, size=SIZE, cache_dir=state.cache_dir)
    assert set(loaded[0]) == {"pixel_values", "labels"}
    assert {"image", "label", "key"} <= set(source[0]) and source[0]["key"] == state.source[0]["key"]


@pytest.mark.parametrize("layout", ["metadata-only", "self-contained"])
def test_a_downloaded_push_opens_from_its_folder(state, reference, pushes, layout, tmp_path):
    from huggingface_hub import snapshot_download

    folder = snapshot_download(pushes[(layout, "new")], repo_type="dataset", local_dir=str(tmp_path / "repo"))
    loaded = open_reinforced(folder, size=SIZE, cache_dir=str(tmp_path / "cache"))
    _assert_matches_reference(loaded, reference, state.source, 1)
    with pytest.raises(InvalidConfigError, match="loads map-style"):
        open_reinforced(folder, streaming=True)
    os.remove(os.path.join(folder, _data_file(folder)))
    with pytest.raises(Exception, match="lacks 1 data file"):
        open_reinforced(folder, size=SIZE)


def _data_file(folder: str) -> str:
    return next(os.path.join("data", name) for name in sorted(os.listdir(os.path.join(folder, "data"))))
