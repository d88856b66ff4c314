"""Students as plain modules: built by name (an unknown name suggests close ones), called the right way whatever
their kind (timm, transformers, wrapped for the Trainer), their classes and channels read and checked before
training, and an ensemble's averaged probabilities."""

from __future__ import annotations

import pytest
import torch
from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

from hf_dr.errors import ClassCountMismatchError, InvalidConfigError
from hf_dr.models.students import (
    PixelValuesClassifier,
    ProbabilityEnsemble,
    check_input_channels,
    check_model_num_classes,
    create_model,
    forward_logits,
    model_in_chans,
    model_num_classes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_unknown_architecture_names_close_ones():
    with pytest.raises(InvalidConfigError, match=r"unknown timm architecture 'resnet5'.*did you mean 'resnet.*'"):
        create_model("resnet5", num_classes=10)


def test_every_kind_of_classifier_is_called_the_right_way_and_reports_its_head():
    torch.manual_seed(0)
    timm_model = create_model("test_resnet", num_classes=4, in_chans=1).eval()
    wrapped = PixelValuesClassifier(timm_model).eval()
    hf_model = TimmWrapperForImageClassification(TimmWrapperConfig(
        architecture="test_resnet", num_labels=4, model_args={"in_chans": 1})).eval()
    pixels = torch.rand(2, 1, 32, 32)
    assert torch.equal(forward_logits(wrapped, pixels), forward_logits(timm_model, pixels))
    assert forward_logits(hf_model, pixels).shape == (2, 4)
    for model in (timm_model, wrapped, hf_model):
        assert model_num_classes(model) == 4 and model_in_chans(model) == 1, type(model).__name__


def test_classes_and_channels_are_checked_with_the_fix_before_training():
    model = create_model("test_resnet", num_classes=10, in_chans=3)
    check_model_num_classes(model, 10)
    with pytest.raises(ClassCountMismatchError, match="predicts 10 classes but the data has 100.*num_classes=100"):
        check_model_num_classes(model, 100)
    check_input_channels(model, "RGB")
    check_input_channels(model, None)  # no recorded mode: nothing to check
    with pytest.raises(InvalidConfigError, match=r"reads 3 input channels but run r holds .*'L'.*in_chans=1"):
        check_input_channels(model, "L", "run r")
    with pytest.raises(InvalidConfigError, match="reads 1 input channel but"):
        check_input_channels(1, "RGB")


def test_an_ensemble_predicts_its_members_mean_probabilities_at_their_temperature():
    torch.manual_seed(0)
    members = [create_model("test_resnet", num_classes=5).eval() for _ in range(2)]
    pixels = torch.rand(3, 3, 32, 32)
    for temperature in (1.0, 2.0):
        ensemble = ProbabilityEnsemble(members, temperature=temperature).eval()
        expected = torch.stack([(m(pixels) / temperature).softmax(-1) for m in members]).mean(0)
        assert torch.allclose(ensemble(pixels).softmax(-1), expected, atol=1e-6)
    assert ProbabilityEnsemble(members).num_classes == 5
    with pytest.raises(ClassCountMismatchError, match=r"\[3, 5\]"):
        ProbabilityEnsemble([*members, create_model("test_resnet", num_classes=3)])
    with pytest.raises(InvalidConfigError, match="at least one model"):
        ProbabilityEnsemble([])
