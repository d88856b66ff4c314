"""Push to and load from a local server speaking the Hub's HTTP API, through the real ``huggingface_hub`` and
``datasets`` clients: both layouts round-trip to a train step, pinned revisions, streaming equals map-style, reruns
upload nothing, and every bad input is refused with the problem and the fix."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import timm
import torch
from huggingface_hub import DatasetCard, HfApi, hf_hub_download
from torch.utils.data import DataLoader

from hf_dr import ReinforcedTransform, create_policy, load_reinforced, push_to_hub, soft_target_loss
from hf_dr.cli import main as cli_main
from hf_dr.data.epochs import set_epoch, transform_of
from hf_dr.data.source_keys import scan_keys
from hf_dr.data.streaming import ReinforcedIterableDataset, StreamReplay
from hf_dr.errors import CorruptShardError, DataMismatchError, HubNotFoundError, IncompleteRunError, InvalidConfigError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.storage import verify_run
from hf_dr.hub import build
from tests.data_utils import ProjectionTeacher, digit_images, digits_dataset, reinforce_in_memory
from tests.utils_hub import (
    NUM_ROWS,
    NUM_SAMPLES,
    POLICY,
    SIZE,
    Published,
    published,
    run,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
    unique_repo,
)
from tests.utils_teacher import TEACHER_ARCH


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(state) -> ReinforcedTransform:
    """The run's own reinforcements replayed on the source images: what every loaded dataset must give."""
    return ReinforcedTransform(load_run_records(state.run_dir, keep_in_memory=True), POLICY, size=SIZE,
                               images=state.source)


def _keys(dataset: datasets.Dataset) -> list[str]:
    return dataset.with_format("arrow")[:].column("key").to_pylist()


def _load(state: Published, repo_id: str, **options):
    return load_reinforced(repo_id, size=SIZE, cache_dir=state.cache_dir, **options)


def _assert_same(sample: dict, expected: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert torch.equal(sample["pixel_values"], expected[0])
    assert torch.equal(sample["labels"], expected[1])


def _assert_matches_reference(dataset, reference: ReinforcedTransform, images: datasets.Dataset, epoch: int) -> None:
    """Row i of ``dataset`` is the reference replay of the image with the same key (never by position)."""
    reference.set_epoch(epoch)
    set_epoch(dataset, epoch)
    by_key = {row["key"]: row["image"] for row in images}
    for row, key in enumerate(_keys(dataset)):
        _assert_same(dataset[row], reference.replay(by_key[key], key))


def _train_step(dataset, batch_size: int = 16) -> float:
    """One SGD step of a small timm model on a batch of ``dataset``; checks that it learned something."""
    torch.manual_seed(0)
    model = timm.create_model(TEACHER_ARCH, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = next(iter(DataLoader(dataset, batch_size=batch_size)))
    before = [p.detach().clone() for p in model.parameters()]
    loss = soft_target_loss(model(batch["pixel_values"]), batch["labels"])
    loss.backward()
    optimizer.step()
    assert batch["pixel_values"].shape == (batch_size, 3, SIZE, SIZE) and batch["labels"].shape == (batch_size, 10)
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    return float(loss)


@pytest.mark.slow
class TestPush:
    def test_self_contained_repo(self, state, hub):
        api = HfApi()
        data = ["data/train-00000-of-00001.parquet"]  # the run's 3 shards, packed into one file
        assert api.list_repo_files(state.self_contained, repo_type="dataset") == [
            ".gitattributes", "README.md", "assets/replayed_samples.png", "assets/teacher_confidence.png", *data,
            "hf_dr.json", "reinforce_config.json", "splits/train/hf_dr.json", "splits/train/reinforce_config.json"]
        tree = {e.path: e for e in api.list_repo_tree(state.self_contained, "data", repo_type="dataset")}
        assert all(tree[name].lfs is not None and tree[name].lfs.sha256 in hub.lfs_uploads for name in data)
        meta = json.load(open(hf_hub_download(state.self_contained, "hf_dr.json", repo_type="dataset")))
        assert meta["layout"] == "self-contained" and meta["split"] == "train" and meta["num_rows"] == NUM_ROWS
        assert meta["source"]["id"] == state.source_id and meta["source"]["revision"] == state.source_commit
        config = json.load(open(hf_hub_download(state.self_contained, "reinforce_config.json", repo_type="dataset")))
        assert [m["spec"]["weights"] for m in config["teacher"]] == [os.path.basename(m["weights"])
                                                                     for m in state.members]  # no local paths

    def test_metadata_only_repo_holds_the_run_shards_and_no_images(self, state):
        api = HfApi()
        files = api.list_repo_files(state.metadata_only, repo_type="dataset")
        assert "assets/replayed_samples.png" not in files
        manifest = verify_run(state.run_dir)
        packed = pq.read_table(hf_hub_download(state.metadata_only, "data/train-00000-of-00001.parquet",
                                               repo_type="dataset"))
        shards = pa.concat_tables([pq.read_table(os.path.join(state.run_dir, s["path"])) for s in manifest["shards"]])
        assert packed.equals(shards) and packed.schema.metadata == shards.schema.metadata  # the run's rows, in order
        meta = json.load(open(hf_hub_download(state.metadata_only, "hf_dr.json", repo_type="dataset")))
        assert meta["source"] | {"fingerprint": None} == {
            "id": state.source_id, "revision": state.source_commit, "split": "train", "image_column": "image",
            "label_column": "label", "key_column": "key", "key_source": "column", "num_rows": NUM_ROWS,
            "fingerprint": None, "data_files": [{"path": "data/train-00000-of-00001.parquet", "num_rows": NUM_ROWS,
                                                "row_groups": [NUM_ROWS]}],
            "keys_sha256": json.load(open(os.path.join(state.run_dir, "reinforce_config.json")))["dataset"][
                "keys_sha256"]}
        plain = datasets.load_dataset(state.metadata_only, split="train", cache_dir=state.cache_dir)
        assert plain.column_names == ["key", "label", "image_digest", "reinforcements"] and len(plain) == NUM_ROWS

    def test_pushing_again_uploads_only_what_changed(self, state, hub):
        api, repo = HfApi(), unique_repo("rerun")
        first = push_to_hub(state.run_dir, repo, dataset=state.source)
        uploads, requests = len(hub.lfs_uploads), len(hub.requests)
        assert push_to_hub(state.run_dir, repo, dataset=state.source) == first
        assert len(hub.lfs_uploads) == uploads
        assert not [path for _, path, _ in hub.requests[requests:] if "/commit/" in path]
        second = push_to_hub(state.run_dir, repo, dataset=state.source, generation_cost="2 CPU-seconds")
        assert second != first and len(hub.lfs_uploads) == uploads  # only the card changed
        info = api.get_paths_info(repo, ["README.md", "data/train-00000-of-00001.parquet"], expand=True,
                                  repo_type="dataset")
        assert [entry.last_commit.oid for entry in info] == [second, first]

    def test_an_unchanged_repush_writes_no_data_file_and_makes_no_commit(self, state, hub, monkeypatch, capsys):
        repo, written, real = unique_repo("record"), [], build.write_files

        def counting(jobs, *args, **kwargs):
            for file in real(jobs, *args, **kwargs):
                written.append(file.name)
                yield file

        monkeypatch.setattr(build, "write_files", counting)
        command = ["push", "--run-dir", state.run_dir, repo, "--layout", "metadata-only", "--num-proc", "2"]
        assert cli_main(command) == 0 and written == ["data/train-00000-of-00001.parquet"]
        head, requests, uploads = HfApi().dataset_info(repo).sha, len(hub.requests), len(hub.lfs_uploads)
        record = json.load(open(os.path.join(state.run_dir, ".hf-dr-push", repo.replace("/", "--") + ".json")))
        assert record["files"]["data/train-00000-of-00001.parquet"]["num_rows"] == NUM_ROWS
        assert cli_main(command) == 0 and written == ["data/train-00000-of-00001.parquet"]  # none the second time
        assert f"at commit {head}" in capsys.readouterr().out.splitlines()[-1]
        assert not [path for _, path, _ in hub.requests[requests:] if "/commit/" in path]
        assert len(hub.lfs_uploads) == uploads
        with pytest.raises(InvalidConfigError, match="num_proc should be a positive integer, but got 0"):
            push_to_hub(state.run_dir, repo, layout="metadata-only", num_proc=0)

    def test_incomplete_or_corrupt_runs_are_refused_before_any_upload(self, state, tmp_path):
        repo = unique_repo("refused")
        incomplete = shutil.copytree(state.run_dir, tmp_path / "incomplete")
        os.remove(incomplete / "manifest.json")
        with pytest.raises(IncompleteRunError, match="no finished reinforcement run"):
            push_to_hub(str(incomplete), repo, dataset=state.source)
        corrupt = shutil.copytree(state.run_dir, tmp_path / "corrupt")
        shard = corrupt / "shards/reinforcements-00001.parquet"
        shard.write_bytes(shard.read_bytes()[:-10])
        with pytest.raises(CorruptShardError, match="reinforcements-00001.parquet"):
            push_to_hub(str(corrupt), repo, layout="metadata-only")
        assert not HfApi().repo_exists(repo, repo_type="dataset")

    def test_self_contained_push_joins_by_key_and_refuses_missing_rows(self, state):
        with pytest.raises(DataMismatchError, match=r"lacks 2 of the 48 reinforced keys \(first: \['digit-00000', "
                                                    r"'digit-00001'\]\)"):
            push_to_hub(state.run_dir, unique_repo("missing"), dataset=state.source.select(range(2, NUM_ROWS)))

    def test_metadata_only_needs_a_hub_source(self, state, tmp_path):
        local = shutil.copytree(state.run_dir, tmp_path / "local")
        config = json.loads((local / "reinforce_config.json").read_text())
        config["dataset"]["id"] = None
        (local / "reinforce_config.json").write_text(json.dumps(config))
        with pytest.raises(InvalidConfigError, match="source_id="):
            push_to_hub(str(local), unique_repo("nosource"), layout="metadata-only")
        with pytest.raises(InvalidConfigError, match="layout should be one of"):
            push_to_hub(str(local), unique_repo("nolayout"), layout="images-only")

    def test_push_command(self, state, tmp_path, capsys):
        repo = unique_repo("cli")
        assert cli_main(["push", state.run_dir, repo, "--generation-cost", "2 CPU-seconds"]) == 0  # recorded source
        assert f"to datasets/{repo} at commit" in capsys.readouterr().out
        assert len(_load(state, repo)) == NUM_ROWS
        assert cli_main(["push", str(tmp_path / "nothing"), repo]) == 1
        assert "no finished reinforcement run" in capsys.readouterr().err


@pytest.mark.slow
class TestSplitsAndBranches:
    """Case 8: a push behaves like ``Dataset.push_to_hub``: other splits kept, ``--branch``, ``--create-pr``."""

    def test_a_second_split_is_added_and_a_split_pushed_again_replaces_only_its_files(self, state):
        api, repo = HfApi(), unique_repo("splits")
        push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=3)
        push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=3, split="test")
        loaded = datasets.load_dataset(repo, cache_dir=state.cache_dir)
        assert {name: len(rows) for name, rows in loaded.items()} == {"test": NUM_ROWS, "train": NUM_ROWS}
        assert [len(_load(state, repo, split=name)) for name in ("train", "test")] == [NUM_ROWS, NUM_ROWS]
        files = ["data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
        before = api.get_paths_info(repo, files, expand=True, repo_type="dataset")
        push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=19)  # train again, other bytes
        after = api.get_paths_info(repo, files, expand=True, repo_type="dataset")
        assert after[0].blob_id == before[0].blob_id and after[0].last_commit.oid == before[0].last_commit.oid
        assert after[1].blob_id != before[1].blob_id
        card = DatasetCard.load(repo, repo_type="dataset")
        assert card.data.configs[0]["data_files"] == [{"split": "test", "path": "data/test-*"},
                                                      {"split": "train", "path": "data/train-*"}]
        assert [split["name"] for split in card.data.dataset_info["splits"]] == ["test", "train"]
        with pytest.raises(DataMismatchError, match=r"holds the splits \['train'\] with the columns"):
            push_to_hub(state.run_dir, repo, dataset=state.source, split="test")  # self-contained beside metadata-only

    def test_branch_and_pull_request(self, state, capsys):
        api, repo = HfApi(), unique_repo("branches")
        push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=3)
        main = api.dataset_info(repo).sha
        assert cli_main(["push", "--run-dir", state.run_dir, repo, "--layout", "metadata-only", "--split", "test",
                         "--branch", "v2", "--compression-level", "3"]) == 0
        assert f"to datasets/{repo} (branch v2) at commit" in capsys.readouterr().out
        v2 = api.list_repo_files(repo, repo_type="dataset", revision="v2")
        assert {"data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"} <= set(v2)
        assert cli_main(["push", "--run-dir", state.run_dir, repo, "--layout", "metadata-only", "--split", "valid",
                         "--create-pr", "--revision", state.source_commit, "--compression-level", "3"]) == 0
        out, err = capsys.readouterr()
        assert f"to datasets/{repo} (a pull request on main) at commit" in out and err == ""
        pr = api.list_repo_files(repo, repo_type="dataset", revision="refs/pr/1")
        assert "data/valid-00000-of-00001.parquet" in pr
        assert api.dataset_info(repo).sha == main  # neither the branch nor the pull request touched main

    def test_a_bundled_source_is_not_looked_up_on_the_hub(self, state, hub, tmp_path):
        bundled = shutil.copytree(state.run_dir, tmp_path / "bundled")
        config = json.loads((bundled / "reinforce_config.json").read_text())
        config["dataset"]["id"], config["dataset"]["revision"] = "digits", None
        (bundled / "reinforce_config.json").write_text(json.dumps(config))
        repo, start = unique_repo("bundled"), len(hub.requests)
        push_to_hub(str(bundled), repo, dataset=state.source)
        assert [path for _, path, _ in hub.requests[start:] if path.startswith("/api/datasets/digits")] == []
        assert DatasetCard.load(repo, repo_type="dataset").data.license == "cc-by-4.0"


@pytest.mark.slow
class TestRoundTrip:
    def test_self_contained_with_load_dataset_and_reinforced_transform(self, state, reference):
        ds = datasets.load_dataset(state.self_contained, split="train", cache_dir=state.cache_dir)
        assert ds.column_names == ["image", "key", "label", "image_digest", "reinforcements"] and len(ds) == NUM_ROWS
        assert ds.features["label"] == state.source.features["label"]
        config = json.load(open(hf_hub_download(state.self_contained, "reinforce_config.json", repo_type="dataset")))
        ReinforcedTransform(ds, policy=config["policy"], size=SIZE).attach(ds)
        for epoch in (0, 1):
            _assert_matches_reference(ds, reference, state.source, epoch)
        _train_step(ds)

    def test_metadata_only_joins_the_pinned_source_by_key(self, state, reference):
        ds = _load(state, state.metadata_only)
        assert len(ds) == NUM_ROWS and transform_of(ds).num_classes == 10
        for epoch in (0, 2):
            _assert_matches_reference(ds, reference, state.source, epoch)
        _train_step(ds)

    def test_load_reinforced_self_contained(self, state, reference):
        ds = _load(state, state.self_contained)
        _assert_matches_reference(ds, reference, state.source, 1)
        assert float(ds[0]["labels"].sum()) == pytest.approx(1.0, abs=1e-3)

    def test_local_image_files_and_content_keys(self, state, tmp_path):
        """Images referenced by local paths are embedded (no local path is published); rows keyed by a hash of the
        image bytes join back by that hash in both layouts."""
        images, labels = digit_images(12)
        paths = [str(tmp_path / f"digit{i}.png") for i in range(len(images))]
        for image, path in zip(images, paths, strict=True):
            image.save(path)
        features = datasets.Features({"image": datasets.Image(), "label": state.source.features["label"]})
        local = datasets.Dataset.from_dict({"image": paths, "label": labels}, features=features)
        out = run(local, state.members[:1], tmp_path / "run", key_column=None, source={"id": str(tmp_path)})
        self_contained = unique_repo("files")
        push_to_hub(out, self_contained, dataset=local)
        plain = datasets.load_dataset(self_contained, split="train", cache_dir=state.cache_dir)
        cells = plain.data.column("image").to_pylist()
        assert [c["path"] for c in cells] == [os.path.basename(p) for p in paths]
        assert [c["bytes"] for c in cells] == [open(p, "rb").read() for p in paths]
        meta = json.load(open(hf_hub_download(self_contained, "hf_dr.json", repo_type="dataset")))
        assert meta["source"]["id"] is None and meta["source"]["key_column"] is None
        config = open(hf_hub_download(self_contained, "reinforce_config.json", repo_type="dataset")).read()
        assert str(tmp_path) not in config
        source_repo, metadata_only = unique_repo("files-source"), unique_repo("files-meta")
        local.push_to_hub(source_repo)  # the same image bytes, on the Hub
        push_to_hub(out, metadata_only, layout="metadata-only", source_id=source_repo)
        reference = ReinforcedTransform(load_run_records(out, keep_in_memory=True), POLICY, size=SIZE)
        keys = scan_keys(local, "image")
        for repo in (self_contained, metadata_only):
            ds = _load(state, repo)
            assert sorted(_keys(ds)) == sorted(keys)
            for row, key in enumerate(_keys(ds)):
                _assert_same(ds[row], reference.replay(images[keys.index(key)], key))

    def test_pinned_revision(self, state, tmp_path):
        repo = unique_repo("pinned")
        first = push_to_hub(state.run_dir, repo, dataset=state.source)
        smaller = run(state.source.select(range(16)), state.members[:1], tmp_path / "smaller", num_samples=2)
        second = push_to_hub(smaller, repo, dataset=state.source)
        assert HfApi().list_repo_files(repo, repo_type="dataset").count("data/train-00000-of-00001.parquet") == 1
        for revision, rows, records in [(first, NUM_ROWS, NUM_SAMPLES), (second, 16, 2), (None, 16, 2)]:
            ds = _load(state, repo, revision=revision)
            key = _keys(ds)[0]  # the records stay in the data files, read by row group: the rows hold none
            assert len(ds) == rows and len(transform_of(ds)._records_of(key)[0]) == records
            plain = datasets.load_dataset(repo, split="train", revision=revision, cache_dir=state.cache_dir)
            assert len(plain) == rows


class TestStreaming:
    @pytest.mark.slow
    @pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
    def test_same_samples_as_map_style_for_each_epoch(self, state, layout):
        repo = getattr(state, layout)
        mapped, stream = _load(state, repo), _load(state, repo, streaming=True)
        assert isinstance(stream, ReinforcedIterableDataset)
        keys, labels = _keys(mapped), {}
        for epoch in (0, 3):
            set_epoch(mapped, epoch)
            stream.set_epoch(epoch)
            streamed = {row["key"]: row for row in stream}
            assert sorted(streamed) == sorted(keys)
            for row, key in enumerate(keys):
                _assert_same(streamed[key], (mapped[row]["pixel_values"], mapped[row]["labels"]))
            labels[epoch] = torch.stack([streamed[key]["labels"] for key in keys])
        assert not torch.equal(labels[0], labels[3])  # set_epoch advanced the choice of record

    @pytest.mark.slow
    def test_epoch_reaches_derived_datasets_and_persistent_workers(self, state):
        mapped = _load(state, state.self_contained)
        stream = _load(state, state.self_contained, streaming=True)
        stream = stream.shuffle(seed=0, buffer_size=8, max_buffer_input_shards=1).take(NUM_ROWS)
        assert isinstance(stream, ReinforcedIterableDataset)
        loader = DataLoader(stream, batch_size=None, num_workers=1, persistent_workers=True)
        keys, orders = _keys(mapped), []
        for epoch in (0, 1):
            stream.set_epoch(epoch)  # after the first epoch the worker already exists: shared memory must carry it
            set_epoch(mapped, epoch)
            rows = list(loader)
            orders.append([row["key"] for row in rows])
            streamed = {row["key"]: row for row in rows}
            for row, key in enumerate(keys):
                _assert_same(streamed[key], (mapped[row]["pixel_values"], mapped[row]["labels"]))
        assert orders[0] != orders[1]  # the same epoch drives the shuffle

    @pytest.mark.slow
    def test_a_pickled_stream_still_shares_its_epoch_with_the_replay(self, state):
        stream = pickle.loads(pickle.dumps(_load(state, state.self_contained, streaming=True)))  # spawn workers
        mapped = _load(state, state.self_contained)
        stream.set_epoch(2)
        set_epoch(mapped, 2)
        streamed = {row["key"]: row for row in stream.take(8)}
        for row, key in enumerate(_keys(mapped)[:8]):
            _assert_same(streamed[key], (mapped[row]["pixel_values"], mapped[row]["labels"]))

    @pytest.mark.slow
    def test_train_step_on_a_stream(self, state):
        _train_step(_load(state, state.metadata_only, streaming=True))

    def test_mixing_policies_cannot_stream(self):
        digits = digits_dataset(4)
        table = reinforce_in_memory(digits, create_policy("rrc+mix"), ProjectionTeacher(size=24), 2, 3)
        transform = ReinforcedTransform(table, "rrc+mix", num_classes=10, images=digits)
        with pytest.raises(InvalidConfigError, match="streaming=False"):
            StreamReplay(transform, datasets.Image(), "image", "key")


@pytest.mark.slow
class TestBadInput:
    def test_source_that_lost_rows(self, state):
        with pytest.raises(DataMismatchError, match=r"lacks 3 of the 48 reinforced keys \(first: \['digit-00005', "
                                                    r"'digit-00017', 'digit-00030'\]\)") as info:
            _load(state, state.metadata_only, source=state.source.select(
                [i for i in range(NUM_ROWS) if i not in (5, 17, 30)]), verify_source=False)
        assert state.source_commit in str(info.value)  # names the version to load instead

    def test_source_revision_on_the_hub(self, state):
        repo = unique_repo("digits-moved")
        digits_dataset(NUM_ROWS).push_to_hub(repo)
        complete = HfApi().dataset_info(repo).sha
        digits_dataset(NUM_ROWS).select(range(3, NUM_ROWS)).push_to_hub(repo)  # main loses 3 rows
        with pytest.raises(DataMismatchError, match=r"lacks 3 of the 48 .*'digit-00000', 'digit-00001'"):
            _load(state, state.metadata_only, source=repo)
        assert len(_load(state, state.metadata_only, source=repo, source_revision=complete)) == NUM_ROWS

    def test_reordered_source_is_refused_unless_allowed_and_then_joined_by_key(self, state, reference):
        shuffled = state.source.shuffle(seed=0)
        with pytest.raises(DataMismatchError, match="another order .* verify_source=False"):
            _load(state, state.metadata_only, source=shuffled)
        ds = _load(state, state.metadata_only, source=shuffled, verify_source=False)
        assert _keys(ds) != _keys(state.source)
        _assert_matches_reference(ds, reference, state.source, 0)

    def test_source_with_extra_rows(self, state, reference):
        bigger = digits_dataset(NUM_ROWS + 2)
        with pytest.raises(DataMismatchError, match=r"2 rows that were not reinforced .*'digit-00048', 'digit-00049'"):
            _load(state, state.metadata_only, source=bigger)
        ds = _load(state, state.metadata_only, source=bigger, verify_source=False)
        assert len(ds) == NUM_ROWS
        _assert_matches_reference(ds, reference, state.source, 0)

    def test_a_stream_raises_at_the_row_where_the_source_differs(self, state):
        """Metadata-only streams zip the source with the reinforcement files in order: a lost, extra or reordered
        source row raises at that row, naming it, both keys and the fix."""
        def stream(source):
            return list(_load(state, state.metadata_only, streaming=True, source=source))

        lost = state.source.select([i for i in range(NUM_ROWS) if i != 5])
        with pytest.raises(DataMismatchError, match="row 5 of the source has the key 'digit-00006' where the "
                                                    "reinforcements hold 'digit-00005'.*streaming=False"):
            stream(lost)
        with pytest.raises(DataMismatchError, match=f"row {NUM_ROWS} of the source .key 'digit-000{NUM_ROWS}'. "
                                                    "comes after the last reinforced row"):
            stream(digits_dataset(NUM_ROWS + 2))
        with pytest.raises(DataMismatchError, match=f"the source ended after {NUM_ROWS - 1} rows"):
            stream(state.source.select(range(NUM_ROWS - 1)))

    def test_a_metadata_only_stream_converts_nothing_first(self, state, monkeypatch):
        """Both sides stream: no load_dataset call prepares (converts) the reinforcement files or the source."""
        calls = []
        real = datasets.load_dataset

        def recording(*args, **kwargs):
            calls.append((args[0], kwargs.get("streaming")))
            return real(*args, **kwargs)

        monkeypatch.setattr(datasets, "load_dataset", recording)
        stream = _load(state, state.metadata_only, streaming=True)
        assert len(list(stream.take(5))) == 5
        assert calls == [(state.metadata_only, True), (state.source_id, True)]

    def test_unknown_repo_revision_or_not_a_reinforced_repo(self, state):
        with pytest.raises(HubNotFoundError, match="no dataset repo 'tester/does-not-exist'") as info:
            _load(state, "tester/does-not-exist")
        assert isinstance(info.value, FileNotFoundError)
        with pytest.raises(HubNotFoundError, match=r"revision 'v9' does not exist .*\['main'\]"):
            _load(state, state.self_contained, revision="v9")
        with pytest.raises(HubNotFoundError, match="has no hf_dr.json: it was not pushed by hf_dr"):
            _load(state, state.source_id)
        with pytest.raises(InvalidConfigError, match="split='train'"):
            _load(state, state.self_contained, split="validation")
        with pytest.raises(HubNotFoundError, match="cannot load the source 'tester/no-source'"):
            _load(state, state.metadata_only, source="tester/no-source")


def test_a_split_name_that_is_a_path_is_refused_before_anything_is_written(state, tmp_path):
    """Issue 21, case 10: the repo's split names files (data/{split}-*.parquet) in the staging folder."""
    with pytest.raises(InvalidConfigError, match="is not a split name"):
        push_to_hub(state.run_dir, unique_repo("evil-split"), dataset=state.source, split="../../../../outside/evil")
    assert not (tmp_path.parent / "outside").exists()
