"""A trained student as a timm model repo (issue 24): ``hf-dr push-model`` on what ``scripts/train.py`` wrote, then
``timm.create_model("hf-hub:...")`` on a fresh cache rebuilds it (channels, classes, preprocessing) and evaluates to
the metrics training recorded; the card names the reinforced dataset and those metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import ModelCard

from hf_dr import EvalTransform, evaluate
from hf_dr.cli import main as cli_main
from hf_dr.train.model_repo import model_card, training_record
from tests.utils_hub import (
    NUM_ROWS,
    Published,
    published,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
    unique_repo,
)
from tests.utils_scripts import load_script

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(state, tmp_path_factory) -> Path:
    """A student trained by scripts/train.py on the pushed metadata-only dataset, evaluated on the source split."""
    module = load_script("train")
    out = tmp_path_factory.mktemp("student")
    module.main(["--dataset", state.metadata_only, "--arch", "test_resnet", "--image-size", "32", "--epochs", "1",
                 "--batch-size", "16", "--eval-split", "train", "--output-dir", str(out), "--no-progress"])
    return out


def test_a_pushed_student_loads_in_timm_and_evaluates_to_its_recorded_metrics(state, trained, tmp_path, monkeypatch):
    repo_id = unique_repo("student")
    assert cli_main(["push-model", "--checkpoint", str(trained / "model.safetensors"), repo_id]) == 0
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "fresh-cache"))  # nothing from the push is reused
    model = timm.create_model(f"hf-hub:{repo_id}", pretrained=True).eval()
    config = timm.data.resolve_model_data_config(model)
    recorded = json.loads((trained / "result.json").read_text())["metrics"]
    assert model.num_classes == 10 and config["input_size"] == (3, 32, 32)
    test = EvalTransform(size=config["input_size"][1:], mean=config["mean"], std=config["std"]).attach(
        state.source.with_format(None))
    metrics = evaluate(model, test)
    assert metrics["num_samples"] == recorded["num_samples"] == NUM_ROWS
    assert metrics["top1"] == pytest.approx(recorded["top1"]) and metrics["nll"] == pytest.approx(recorded["nll"],
                                                                                                  rel=1e-4)
    card = ModelCard.load(repo_id)
    assert card.data.library_name == "timm" and card.data.datasets == [state.metadata_only]
    assert f'timm.create_model("hf-hub:{repo_id}", pretrained=True)' in card.text
    assert f"| top1 | {recorded['top1']:.4g} |" in card.text


def test_a_one_channel_student_keeps_its_channels(tmp_path):
    from hf_dr import create_model
    from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint

    model = create_model("test_resnet", num_classes=5, in_chans=1)
    path = save_checkpoint(model, tmp_path / "model.safetensors", checkpoint_model_metadata(
        model, "test_resnet", {"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.25,)}))
    repo_id = unique_repo("gray-student")
    assert cli_main(["push-model", "--checkpoint", str(path), repo_id, "--dataset", "me/digits-plus"]) == 0
    loaded = timm.create_model(f"hf-hub:{repo_id}", pretrained=True).eval()
    config = timm.data.resolve_model_data_config(loaded)
    assert config["input_size"] == (1, 28, 28) and tuple(config["mean"]) == (0.5,)
    pixels = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(pixels), model.eval()(pixels))  # same weights, same channels


def test_the_card_without_a_training_record(tmp_path):
    assert training_record(tmp_path / "model.safetensors") == {}
    card = model_card("me/student", "hf_dr_cnn_tiny", in_chans=1)
    assert "Training recorded none" in card and "import hf_dr.models.networks" in card and "datasets:" not in card
    local = model_card("me/student", "resnet18", dataset=str(tmp_path / "digits+"))  # a local path: named, not linked
    assert "datasets:" not in local and "huggingface.co/datasets" not in local and "digits+" in local


def test_a_one_channel_student_trained_with_rgb_statistics_pushes_their_average(tmp_path):
    """What scripts/train.py records for a student of grayscale data: RGB statistics (the replay normalised with
    their average). Before: timm's save_for_hf raised "mean must have one value or 1 values, got 3" and push-model
    failed. Now the pushed config holds the one-channel statistics the student saw."""
    from hf_dr import create_model
    from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint

    model = create_model("test_resnet", num_classes=5, in_chans=1)
    path = save_checkpoint(model, tmp_path / "model.safetensors", checkpoint_model_metadata(
        model, "test_resnet", {"input_size": (1, 28, 28), "mean": (0.2, 0.4, 0.6), "std": (0.1, 0.2, 0.3)}))
    repo_id = unique_repo("gray-rgb-stats")
    assert cli_main(["push-model", "--checkpoint", str(path), repo_id]) == 0
    config = timm.data.resolve_model_data_config(timm.create_model(f"hf-hub:{repo_id}", pretrained=True))
    assert config["input_size"] == (1, 28, 28)
    assert config["mean"] == pytest.approx((0.4,)) and config["std"] == pytest.approx((0.2,))
