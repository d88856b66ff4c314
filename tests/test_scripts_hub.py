"""The training entry points on a reinforced dataset named by its Hub id (issue 24): ``scripts/train.py --dataset
org/x-plus`` trains reinforced (the stored soft labels reach the loss), ``--plain`` trains plainly and says so, the
Trainer script needs no ``--run-dir``, and ``hf-dr eval --dataset org/x-plus`` evaluates on the recorded source."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import hf_dr.train.loop as loop
from hf_dr.cli import main as cli_main
from hf_dr.errors import InvalidConfigError
from hf_dr.train.evaluation import evaluate_checkpoint
from tests.utils_hub import (
    NUM_ROWS,
    Published,
    published,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
)
from tests.utils_scripts import load_script

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]



def _script(name: str):
    return load_script(name)


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


@pytest.fixture
def labels_seen(monkeypatch) -> list[torch.Tensor]:
    """Every batch's ``labels`` as the loss receives them (fit's :func:`hf_dr.train.loop.batch_loss`)."""
    seen: list[torch.Tensor] = []
    original = loop.batch_loss

    def recording(model, batch, *args, **kwargs):
        seen.append(batch["labels"].detach().clone())
        return original(model, batch, *args, **kwargs)

    monkeypatch.setattr(loop, "batch_loss", recording)
    return seen


def _train(dataset: str, out: Path, *extra: str) -> list[str]:
    return ["--dataset", dataset, "--arch", "hf_dr_cnn_tiny", "--image-size", "16", "--epochs", "1",
            "--batch-size", "16", "--output-dir", str(out), "--no-progress", *extra]


@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_train_script_on_a_pushed_dataset_trains_on_its_soft_labels(state, layout, labels_seen, tmp_path):
    repo_id = getattr(state, layout)
    result = _script("train").main(_train(repo_id, tmp_path / layout))
    assert result["steps"] == NUM_ROWS // 16 and len(labels_seen) == NUM_ROWS // 16
    labels = torch.cat(labels_seen)
    assert labels.dtype == torch.float32 and labels.shape == (NUM_ROWS, 10)  # dense soft targets, not class ids
    assert torch.allclose(labels.sum(dim=1), torch.ones(NUM_ROWS), atol=1e-3)
    assert bool((labels.max(dim=1).values < 1.0).any())  # the teacher's probabilities, not one-hot labels


def test_plain_training_on_a_pushed_dataset_is_explicit_and_announced(state, labels_seen, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = _script("train").main(_train(state.metadata_only, tmp_path / "plain", "--plain", "--in-chans", "3",
                                               "--eval-split", "train"))
    assert "PLAIN training" in caplog.text and state.metadata_only in caplog.text
    assert all(not torch.is_floating_point(labels) for labels in labels_seen)  # cross-entropy on class ids
    assert result["metrics"]["num_samples"] == NUM_ROWS  # evaluated on the recorded source's split


def test_plain_flag_on_a_plain_dataset_and_two_label_sources_are_refused(state, tmp_path):
    train = _script("train")
    with pytest.raises(InvalidConfigError, match="is not one"):
        train.main(_train(state.source_id, tmp_path / "a", "--plain"))
    with pytest.raises(InvalidConfigError, match="--run-dir"):
        train.main(_train(state.self_contained, tmp_path / "b", "--run-dir", state.run_dir))


def test_trainer_script_on_a_pushed_dataset_needs_no_run_dir(state, tmp_path):
    trainer = _script("train_trainer")
    metrics = trainer.main(_train(state.self_contained, tmp_path / "trainer", "--eval-split", "train"))
    assert metrics["eval"]["eval_top1"] >= 0.0
    with pytest.raises(InvalidConfigError, match="carries no soft labels"):
        trainer.main(_train(state.source_id, tmp_path / "plain"))


def test_eval_of_a_pushed_reinforced_dataset_reads_its_recorded_source(state, tmp_path):
    _script("train").main(_train(state.metadata_only, tmp_path / "student"))
    checkpoint = str(tmp_path / "student" / "model.safetensors")
    assert cli_main(["eval", "--checkpoint", checkpoint, "--dataset", state.metadata_only, "--split", "train",
                     "-o", str(tmp_path / "on_repo.json")]) == 0
    on_repo = json.loads((tmp_path / "on_repo.json").read_text())
    on_source = evaluate_checkpoint(checkpoint, dataset=state.source_id, split="train")
    assert on_repo["num_samples"] == on_source["num_samples"] == NUM_ROWS
    assert on_repo["top1"] == pytest.approx(on_source["top1"]) and on_repo["nll"] == pytest.approx(on_source["nll"])
