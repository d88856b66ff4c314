"""Checkpoints of hf_dr: they round-trip (also into a model with another head, and from a wrapped model into a bare
one), and a rebuilt classifier's preprocessing fits its input channels."""

from __future__ import annotations

import pytest
import torch

from hf_dr.errors import InvalidConfigError
from hf_dr.models.checkpoints import (
    checkpoint_metadata,
    checkpoint_model_metadata,
    for_channels,
    load_checkpoint,
    load_classifier,
    save_checkpoint,
)
from hf_dr.models.students import create_model


def test_checkpoints_round_trip_and_fine_tune_into_another_head(tmp_path):
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    path = save_checkpoint(model, tmp_path / "a" / "m.safetensors", {"architecture": "hf_dr_cnn_tiny"})
    assert checkpoint_metadata(path) == {"architecture": "hf_dr_cnn_tiny"}
    same = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    assert load_checkpoint(same, path) == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values(),
                                                 strict=True))
    other = create_model("hf_dr_cnn_tiny", num_classes=4, in_chans=3)
    with pytest.raises(InvalidConfigError, match="ignore_mismatched_sizes"):
        load_checkpoint(other, path)
    skipped = load_checkpoint(other, path, ignore_mismatched_sizes=True)
    assert skipped == ["head.bias", "head.weight"]
    assert torch.equal(other.features[0].weight, model.features[0].weight)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(other, tmp_path / "missing.safetensors")


def test_wrapped_checkpoints_load_into_bare_models(tmp_path):
    from hf_dr.models.students import PixelValuesClassifier

    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    path = save_checkpoint(PixelValuesClassifier(model), tmp_path / "wrapped.safetensors")
    bare = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    load_checkpoint(bare, path)
    assert torch.equal(bare.head.weight, model.head.weight)


def test_a_one_channel_classifier_gets_the_statistics_it_was_normalised_with(tmp_path):
    """A gray student saved with RGB statistics (what a replay of grayscale data normalises with: their average)
    is rebuilt with one-channel statistics, which timm accepts."""
    model = create_model("test_resnet", num_classes=3, in_chans=1)
    path = save_checkpoint(model, tmp_path / "gray.safetensors", checkpoint_model_metadata(
        model, "test_resnet", {"input_size": (1, 24, 24), "mean": (0.2, 0.4, 0.6), "std": (0.3, 0.3, 0.3)}))
    rebuilt, config = load_classifier(path)
    assert config["input_size"] == (1, 24, 24)
    assert config["mean"] == pytest.approx((0.4,)) and config["std"] == pytest.approx((0.3,))
    assert for_channels({"mean": (0.5,)}, 3) == {"mean": (0.5, 0.5, 0.5)}
    assert for_channels({"mean": (0.1, 0.2)}, None) == {"mean": (0.1, 0.2)}
    pixels = torch.rand(2, 1, 24, 24)
    assert torch.equal(rebuilt(pixels), model.eval()(pixels))
