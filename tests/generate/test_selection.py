"""Sample selection at generation time (App. C.6): each rule on known records, and a real run cut to N' of N that
loads, describes itself, replays through the training flow and keeps the exact stored records."""

from __future__ import annotations

import numpy as np
import pytest

from hf_dr.data.codec import RecordCodec
from hf_dr.data.description import read_description
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.selection import RULES, select_records, select_samples
from hf_dr.generate.storage import verify_run
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

N, KEEP = 6, 2
pytestmark = pytest.mark.usefixtures("one_thread")

# four records of one sample (label 0) in 3 classes, top-2 stored
IDS = np.array([[0, 1], [1, 0], [0, 2], [2, 1]])
PROBS = np.array([[0.98, 0.01], [0.50, 0.45], [0.60, 0.39], [0.70, 0.20]])


@pytest.mark.parametrize(("rule", "expected"), [
    ("min_confidence", [1, 2]),  # max probs 0.98, 0.50, 0.60, 0.70: the two smallest
    ("max_entropy", [1, 3]),     # entropies 0.11, 0.86, 0.72, 0.80 (the mass left out counted as one outcome)
    ("max_loss", [1, 3]),        # p(label 0): 0.98, 0.45, 0.60, and the 0.10 left out of record 3's top-2
])
def test_each_rule_keeps_the_records_it_names(rule, expected):
    assert select_records(IDS, PROBS, label=0, num_classes=3, keep=2, rule=rule) == expected


def test_kmeans_keeps_one_record_per_cluster_and_random_is_seeded_per_key():
    ids = np.array([[0, 1]] * 3 + [[2, 1]] * 3)
    probs = np.array([[0.9, 0.1], [0.88, 0.1], [0.91, 0.09], [0.8, 0.2], [0.79, 0.2], [0.81, 0.19]])
    picks = select_records(ids, probs, 0, 3, keep=2, rule="kmeans")
    assert len(picks) == 2 and picks[0] < 3 <= picks[1]  # one view of each kind of teacher answer
    draws = {tuple(select_records(ids, probs, 0, 3, 3, "random", seed=0, key=k)) for k in ("a", "b", "c", "d")}
    assert len(draws) > 1 and select_records(ids, probs, 0, 3, 3, "random", 0, "a") == select_records(
        ids, probs, 0, 3, 3, "random", 0, "a")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> str:
    teacher = [save_teacher(str(tmp_path_factory.mktemp("teacher")))]
    out = str(tmp_path_factory.mktemp("run") / "full")
    reinforce(digits_dataset(24), teacher, "rrc", num_samples=N, topk=3, seed=0, output_dir=out, key_column="key",
              shard_size=10, batch_size=16, num_workers=0, progress=False)
    return out


@pytest.mark.parametrize("rule", RULES)
def test_a_selected_run_is_a_complete_run_that_describes_its_selection(run_dir, tmp_path, rule):
    out = str(tmp_path / rule)
    config = select_samples(run_dir, out, KEEP, rule)
    assert (config.num_samples, config.selection) == (KEEP, {"rule": rule, "from": N})
    assert ReinforceConfig.load(out) == config and verify_run(out)["num_samples"] == KEEP
    full, selected = load_run_records(run_dir), load_run_records(out)
    description = read_description(selected)
    assert (description.num_samples, description.selection) == (KEEP, {"rule": rule, "from": N})
    assert list(selected["key"]) == list(full["key"]) and list(selected["label"]) == list(full["label"])
    for before, after in zip(full["reinforcements"], selected["reinforcements"], strict=True):
        assert len(after) == KEEP and all(record in before for record in after)  # the stored records, unchanged
        assert [before.index(record) for record in after] == sorted(before.index(r) for r in after)


def test_the_training_flow_replays_a_selected_run(run_dir, tmp_path):
    from hf_dr.train.inputs import DataConfig, training_data

    out = str(tmp_path / "hard")
    select_samples(run_dir, out, KEEP, "max_loss")
    train, transform = training_data(digits_dataset(24), DataConfig((24, 24), (0.5,) * 3, (0.5,) * 3, 3), out)
    row = train[0]
    assert row["pixel_values"].shape == (3, 24, 24) and abs(float(row["labels"].sum()) - 1) < 1e-3
    assert transform.choose("digit-00000") in range(KEEP)


def test_refusals_name_the_fix(run_dir, tmp_path, monkeypatch):
    with pytest.raises(InvalidConfigError, match="between 1 and N - 1"):
        select_samples(run_dir, str(tmp_path / "a"), N, "max_loss")
    with pytest.raises(InvalidConfigError, match="unknown selection rule"):
        select_samples(run_dir, str(tmp_path / "b"), KEEP, "hardest")
    with pytest.raises(InvalidConfigError, match="its own folder"):
        select_samples(run_dir, run_dir, KEEP, "max_loss")
    select_samples(run_dir, str(tmp_path / "c"), KEEP, "max_loss")
    with pytest.raises(InvalidConfigError, match="overwrite=True"):
        select_samples(run_dir, str(tmp_path / "c"), KEEP, "max_loss")
    select_samples(run_dir, str(tmp_path / "c"), 1, "kmeans", overwrite=True)
    assert ReinforceConfig.load(str(tmp_path / "c")).num_samples == 1
    seeded = ReinforceConfig.load(run_dir).to_dict() | {"codec": RecordCodec(params="seeded").config()}
    monkeypatch.setattr(ReinforceConfig, "load", classmethod(lambda cls, path: cls(**seeded)))
    with pytest.raises(InvalidConfigError, match="bound to their index"):
        select_samples(run_dir, str(tmp_path / "d"), KEEP, "max_loss")


def test_the_card_of_a_selected_run_states_the_selection_and_the_teacher_temperature(run_dir, tmp_path):
    import datasets

    from hf_dr.hub.card import build_card, reinforcement_stats
    from hf_dr.hub.push import hub_metadata, public_config

    out = str(tmp_path / "selected")
    config = select_samples(run_dir, out, KEEP, "kmeans")
    config.teacher[0]["spec"]["temperature"] = 0.7  # as a calibrated spec records it
    manifest = verify_run(out)
    source = {"id": "tester/digits", "split": "train", "revision": "0" * 40, "key_column": "key",
              "num_rows": manifest["num_rows"], "keys_sha256": config.dataset["keys_sha256"]}
    meta = hub_metadata("metadata-only", "train", config, source, ["data/train-00000-of-00001.parquet"])
    paths = [f"{out}/{s['path']}" for s in manifest["shards"]]
    card = build_card("tester/digits-plus", meta, public_config(config), reinforcement_stats(paths, manifest, config),
                      [], datasets.DatasetInfo())
    assert f"| augmentations per image (N) | {KEEP} (kept by `kmeans` of {N} generated; App. C.6) |" in card.text
    assert "logits / 0.7 (calibrated)" in card.text
