"""Runs written with every record codec (:mod:`hf_dr.data.codec`), end to end on real digits: the CLI writes them,
``load_run_records``, ``load_reinforced`` (both layouts, map-style and streamed) and ``verify`` read them, seeded
params replay bit-exact with stored ones, labels decode within each codec's bound, and a tampered checksum is refused
naming the record."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch

from hf_dr import ReinforcedTransform, TrainConfig, create_model, fit, load_reinforced, push_to_hub, verify
from hf_dr.cli import main as cli_main
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.description import read_description
from hf_dr.data.epochs import set_epoch
from hf_dr.data.label_coding import RELATIVE_BOUND
from hf_dr.errors import InvalidConfigError, RecomputedParamsError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run_config import ReinforceConfig
from tests.utils_hub import pushed_digits, run, server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_teacher import save_teacher

CODECS = {"default": None, "q8": {"labels": "q8-topk"}, "seeded-set": {"params": "seeded", "labels": "q8-topk-set"},
          "sampled": {"params": "seeded", "labels": "sampled", "draws": 6, "temperature": 2.0}}
ROWS, SIZE = 24, 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory, hub):
    """The source on the local Hub (the metadata-only layout points at it), a run per codec and two mixing runs."""
    root = tmp_path_factory.mktemp("codecs")
    source_id, commit, source = pushed_digits(ROWS, "digits-codecs", str(root / "cache"))
    members = [save_teacher(str(root / "teachers"), seed=0)]
    recorded = {"id": source_id, "revision": commit, "split": "train"}
    runs = {name: run(source, members, root / name, codec=codec, shard_size=10, source=recorded)
            for name, codec in CODECS.items()}
    mixing = {mode: run(source, members, root / f"mix-{mode}", policy="rrc+mix+ra_re", codec={"params": mode},
                        shard_size=10) for mode in ("stored", "seeded")}
    return source, members, runs, mixing


def _transform(run_dir, source, **options) -> ReinforcedTransform:
    return ReinforcedTransform(load_run_records(run_dir, keep_in_memory=True), size=SIZE, images=source, **options)


def _replays(transform: ReinforcedTransform, source, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    transform.set_epoch(epoch)
    return [transform.replay(row["image"], row["key"]) for row in source]


def test_every_codec_replays_the_views_of_stored_params_with_its_labels(setup):
    source, _, runs, mixing = setup
    reference = _replays(_transform(runs["default"], source), source)
    for name in ("q8", "seeded-set", "sampled"):
        transform = _transform(runs[name], source)
        assert transform.codec == RecordCodec.from_config(CODECS[name]).resolved(5)
        for (pixels, target), (ref_pixels, ref_target) in zip(_replays(transform, source), reference, strict=True):
            assert torch.equal(pixels, ref_pixels)  # seeded params: the stored ones, bit for bit
            assert torch.isclose(target.sum(), torch.tensor(1.0)) and bool((target >= 0).all())
            if name != "sampled":  # the same top-k, each probability within the 8-bit bounds (then renormalised)
                assert float((target - ref_target).abs().max()) <= 3 * RELATIVE_BOUND
    stored, seeded = (_transform(mixing[m], source) for m in ("stored", "seeded"))
    for row in source:
        for index in range(4):
            assert torch.equal(stored.replay(row["image"], row["key"], index)[0],
                               seeded.replay(row["image"], row["key"], index)[0])


def test_codec_runs_describe_themselves(setup):
    _, _, runs, _ = setup
    loaded = {name: load_run_records(path) for name, path in runs.items()}
    assert read_description(loaded["sampled"]).record_codec.config() == CODECS["sampled"]
    assert CLASSES_COLUMN in loaded["seeded-set"].column_names and CLASSES_COLUMN not in loaded["q8"].column_names
    record = loaded["seeded-set"][0]["reinforcements"][0]
    assert set(record["params"]) == {"check"} and all(isinstance(c, int) and 0 <= c < 256 for c in record["probs"])
    assert len(record["probs"]) == 5 + 1  # the top-k codes and the leftover mass's (bytes: benchmarks/storage.py)


def test_verify_checks_every_codec_and_refuses_a_changed_seed(setup):
    source, members, runs, mixing = setup
    for path in [*runs.values(), mixing["seeded"]]:
        report = verify(load_run_records(path), source, ReinforceConfig.load(path), num_pairs=24)
        assert report.passed, report.summary()
    config = ReinforceConfig.load(runs["seeded-set"])
    config.seed = 1
    report = verify(load_run_records(runs["seeded-set"]), source, config, num_pairs=8)
    assert not report.passed and "seeded record(s) draw other params" in report.summary()


def test_a_tampered_checksum_is_refused_naming_the_record(setup):
    source, _, runs, _ = setup
    reinforcements = load_run_records(runs["seeded-set"])

    def tamper(row):
        if row["key"] == source[3]["key"]:
            row["reinforcements"][2]["params"]["check"] ^= 1 << 7
        return row

    transform = ReinforcedTransform(reinforcements.map(tamper), size=SIZE)
    transform.replay(source[2]["image"], source[2]["key"], 2)
    with pytest.raises(RecomputedParamsError, match=rf"record 2 of key '{source[3]['key']}'"):
        transform.replay(source[3]["image"], source[3]["key"], 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seeded-set", "sampled"])
def test_pushed_codec_runs_load_in_both_layouts_and_stream(setup, name, tmp_path):
    source, _, runs, _ = setup
    reference = _transform(runs[name], source)
    by_key = {row["key"]: row["image"] for row in source}
    for layout in ("self-contained", "metadata-only"):
        repo = unique_repo(f"codec-{name}")
        push_to_hub(runs[name], repo, dataset=source, layout=layout)
        loaded = load_reinforced(repo, size=SIZE, cache_dir=str(tmp_path / "cache"))
        stream = load_reinforced(repo, size=SIZE, cache_dir=str(tmp_path / "cache"), streaming=True)
        for epoch in (0, 1):
            reference.set_epoch(epoch)
            set_epoch(loaded, epoch)
            stream.set_epoch(epoch)
            rows = {key: row for row, key in enumerate(loaded.with_format("arrow")[:].column("key").to_pylist())}
            streamed = list(stream)  # a stream of several shards shuffles their order after epoch 0 (datasets 5.x)
            assert sorted(sample["key"] for sample in streamed) == sorted(rows)
            for sample in streamed:
                key = sample["key"]
                expected = reference.replay(by_key[key], key)
                for got in (loaded[rows[key]], sample):
                    assert torch.equal(got["pixel_values"], expected[0]) and torch.equal(got["labels"], expected[1])


def test_the_cli_writes_a_codec_run(setup, tmp_path, capsys):
    source, members, runs, _ = setup
    source.save_to_disk(str(tmp_path / "source"))
    spec = tmp_path / "teacher.json"
    spec.write_text(json.dumps(members))
    out = tmp_path / "run"
    assert cli_main(["reinforce", "--dataset", str(tmp_path / "source"), "--teacher-spec", str(spec),
                     "--policy", "rrc+ra_re", "--num-samples", "4", "--topk", "5", "--key-column", "key",
                     "--param-mode", "seeded", "--label-codec", "sampled", "--label-draws", "6",
                     "--label-temperature", "2", "--output-dir", str(out), "--no-progress"]) == 0
    assert ReinforceConfig.load(str(out)).codec == CODECS["sampled"]
    ours, theirs = load_run_records(str(out)), load_run_records(runs["sampled"])
    assert ours.with_format("arrow")[:].column("reinforcements").equals(
        theirs.with_format("arrow")[:].column("reinforcements"))


def test_sampled_targets_train_at_their_temperature_only(setup):
    source, _, runs, _ = setup
    train = source.select(range(16))
    _transform(runs["sampled"], source).attach(train)
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    with pytest.raises(InvalidConfigError, match=r"temperature 2.0.*--temperature 2.0"):
        fit(model, train, TrainConfig(epochs=1, batch_size=8, temperature=1.0))
    result = fit(model, train, TrainConfig(epochs=1, batch_size=8, temperature=2.0))
    assert result.steps == 2 and np.isfinite(result.history[-1]["loss"])


def test_codec_records_without_their_description_are_refused_not_misread(setup):
    """8-bit codes read as float16 probabilities (or set positions as class ids) would train on garbage targets."""
    source, _, runs, _ = setup
    loaded = load_run_records(runs["seeded-set"])
    record = loaded.features["reinforcements"].feature
    bare = datasets.Features({**loaded.features, "reinforcements": datasets.List({
        **record, "probs": datasets.List(datasets.Value("uint8"), length=record["probs"].length)})})
    stripped = loaded.cast(bare)
    assert read_description(stripped) is None
    with pytest.raises(InvalidConfigError, match=r"'probs' holds uint8, where this codec stores float16"):
        ReinforcedTransform(stripped, policy="rrc+ra_re", num_classes=10, size=SIZE)
    assert read_description(loaded).to_id().startswith("hf-dr-run/2 ")  # readers that predate codecs refuse it
    default = read_description(load_run_records(runs["default"])).to_id()
    assert default.startswith("hf-dr-run/1 ") and '"codec"' not in default  # the bytes earlier versions wrote


def test_the_temperature_guard_sees_through_a_subset(setup):
    source, _, runs, _ = setup
    train = source.select(range(16))
    _transform(runs["sampled"], source).attach(train)
    with pytest.raises(InvalidConfigError, match="temperature 2.0"):
        fit(create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3), torch.utils.data.Subset(train, range(8)),
            TrainConfig(epochs=1, batch_size=8, temperature=1.0))
