"""Top-1, NLL and ECE against hand-computed cases; evaluate() over datasets; hf-dr eval on a saved checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from hf_dr.data.transforms import EvalTransform
from hf_dr.errors import InvalidConfigError, MissingColumnError
from hf_dr.models.checkpoints import save_checkpoint
from hf_dr.models.students import create_model
from hf_dr.train.evaluation import (
    classification_metrics,
    evaluate,
    evaluate_checkpoint,
    expected_calibration_error,
    negative_log_likelihood,
    top1_accuracy,
)
from tests.data_utils import digits_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ece_matches_a_hand_computed_case():
    # confidences 0.95, 0.95 (bin 15), 0.55 x 3 (bin 9), 0.36 (bin 6); correct: 1 of 2, 2 of 3, 1 of 1
    probs = torch.tensor([
        [0.95, 0.05, 0.00], [0.95, 0.00, 0.05],
        [0.55, 0.45, 0.00], [0.55, 0.00, 0.45], [0.00, 0.55, 0.45],
        [0.34, 0.30, 0.36],
    ])
    labels = torch.tensor([0, 1, 0, 0, 2, 2])
    # bin (14/15, 1]: acc 1/2, conf .95; bin (8/15, 9/15]: acc 2/3, conf .55; bin (5/15, 6/15]: acc 1, conf .36
    expected = (2 * abs(0.5 - 0.95) + 3 * abs(2 / 3 - 0.55) + 1 * abs(1.0 - 0.36)) / 6
    assert expected_calibration_error(probs, labels) == pytest.approx(expected, abs=1e-6)


def test_ece_is_zero_when_confidence_equals_accuracy_and_uses_equal_width_bins():
    probs = torch.tensor([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, torch.tensor([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-6)
    # every row in one bin of confidence 0.75: all wrong gives |0 - 0.75|
    assert expected_calibration_error(probs, torch.tensor([1, 1, 1, 1]), num_bins=2) == pytest.approx(0.75)
    with pytest.raises(InvalidConfigError, match="num_bins"):
        expected_calibration_error(probs, torch.tensor([0, 0, 0, 0]), num_bins=0)


def test_top1_and_nll():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    labels = torch.tensor([0, 1])
    assert top1_accuracy(logits, labels) == 0.5
    expected = -(math.log(math.exp(2) / (math.exp(2) + 2)) + math.log(1 / (2 + math.exp(5)))) / 2
    assert negative_log_likelihood(logits, labels) == pytest.approx(expected, rel=1e-5)
    metrics = classification_metrics(logits, labels)
    assert set(metrics) == {"top1", "nll", "ece", "num_samples"} and metrics["num_samples"] == 2


def test_metrics_refuse_soft_or_misshaped_labels():
    with pytest.raises(InvalidConfigError, match="integer class labels"):
        top1_accuracy(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(InvalidConfigError, match="expected scores"):
        expected_calibration_error(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_evaluate_runs_a_model_over_a_dataset():
    dataset = EvalTransform(size=16).attach(digits_dataset(40))
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    metrics = evaluate(model, dataset, batch_size=16)
    assert metrics["num_samples"] == 40 and 0.0 <= metrics["top1"] <= 1.0 and metrics["nll"] > 0
    assert model.training  # evaluate restores the mode it found


def test_evaluate_needs_pixel_values_and_labels():
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    with pytest.raises(MissingColumnError, match="pixel_values"):
        evaluate(model, [{"image": torch.zeros(2, 3, 16, 16), "labels": torch.zeros(2, dtype=torch.long)}])
    soft = [{"pixel_values": torch.zeros(2, 3, 16, 16), "labels": torch.full((2, 10), 0.1)}]
    with pytest.raises(InvalidConfigError, match="soft labels"):
        evaluate(model, soft)


def test_evaluate_checkpoint_reads_architecture_and_preprocessing_from_the_file(tmp_path):
    from datasets import Dataset

    images = digits_dataset(30)
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"architecture": "hf_dr_cnn_tiny", "num_classes": 10,
                                                               "in_chans": 3, "input_size": [3, 16, 16],
                                                               "mean": [0.5] * 3, "std": [0.25] * 3})
    images.save_to_disk(str(tmp_path / "digits"))
    metrics = evaluate_checkpoint(str(path), dataset=str(tmp_path / "digits"), split="train")
    expected = evaluate(model, EvalTransform(size=16, mean=[0.5] * 3, std=[0.25] * 3).attach(images))
    assert metrics["top1"] == pytest.approx(expected["top1"]) and metrics["nll"] == pytest.approx(expected["nll"])
    assert isinstance(images, Dataset)
    with pytest.raises(InvalidConfigError, match="which model"):
        bare = tmp_path / "bare.safetensors"
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(bare))
        evaluate_checkpoint(str(bare), dataset=str(tmp_path / "digits"), split="train")
