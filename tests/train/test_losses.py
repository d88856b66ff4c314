"""soft_target_loss in a plain loop and with the Trainer's num_items_in_batch convention."""

from __future__ import annotations

import pytest
import torch

from hf_dr import soft_target_loss
from hf_dr.errors import MissingSoftLabelsError


def test_matches_kl_divergence():
    logits, target = torch.randn(8, 5), torch.softmax(torch.randn(8, 5), -1)
    expected = (target * (target.log() - torch.log_softmax(logits, -1))).sum(-1).mean()
    assert soft_target_loss(logits, target) == pytest.approx(float(expected), rel=1e-5)
    assert float(soft_target_loss(torch.log(target), target)) == pytest.approx(0.0, abs=1e-6)


def test_trainer_convention_equals_plain_mean_under_accumulation():
    """Two accumulated micro-batches with num_items_in_batch = total label elements sum to the full-batch mean."""
    logits, target = torch.randn(12, 7), torch.softmax(torch.randn(12, 7), -1)
    full = soft_target_loss(logits, target)
    items = torch.tensor(target.numel())  # what Trainer counts: labels.ne(-100).sum() over both micro-batches
    parts = soft_target_loss(logits[:5], target[:5], items) + soft_target_loss(logits[5:], target[5:], items)
    assert float(parts) == pytest.approx(float(full), rel=1e-5)


def test_accepts_model_outputs():
    logits, target = torch.randn(2, 3), torch.softmax(torch.randn(2, 3), -1)
    assert soft_target_loss({"logits": logits}, target) == soft_target_loss(logits, target)


def test_temperature_scales_like_hinton():
    logits, target = torch.randn(4, 6), torch.softmax(torch.randn(4, 6), -1)
    assert float(soft_target_loss(logits, target, temperature=2.0)) > 0
    sharp = target.pow(0.5) / target.pow(0.5).sum(-1, keepdim=True)
    assert float(soft_target_loss(torch.log(sharp) * 2.0, target, temperature=2.0)) == pytest.approx(0, abs=1e-5)


def test_hard_labels_are_refused_with_the_fix():
    with pytest.raises(MissingSoftLabelsError, match="ReinforcedTransform") as info:
        soft_target_loss(torch.randn(4, 10), torch.tensor([1, 2, 3, 4]))
    assert isinstance(info.value, ValueError)


def test_a_tempered_target_is_matched_as_it_is():
    """Sampled targets already estimate the teacher at T (hf_dr.data.codec): the loss must not temper them again,
    and its optimum is the student whose softmax(logits / T) is the target itself."""
    target = torch.tensor([[0.625, 0.25, 0.125, 0.0]])
    logits = torch.log(target.clamp_min(1e-9)) * 2.0
    assert float(soft_target_loss(logits, target, temperature=2.0, tempered_target=True)) == pytest.approx(0, abs=1e-5)
    assert float(soft_target_loss(logits, target, temperature=2.0)) > 0.01
