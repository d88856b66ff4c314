"""sparsify / densify: top-k order, argmax and the leftover-mass rule."""

from __future__ import annotations

import pytest
import torch

from hf_dr import densify, sparsify
from hf_dr.errors import ClassCountMismatchError


def test_sparsify_keeps_top_k_in_order():
    probs = torch.softmax(torch.randn(64, 100), -1)
    ids, values = sparsify(probs, 10)
    assert ids.shape == values.shape == (64, 10)
    assert torch.all(values[:, :-1] >= values[:, 1:])
    assert torch.equal(ids[:, 0], probs.argmax(-1))
    assert torch.equal(probs.gather(-1, ids), values)


@pytest.mark.parametrize("leftover", ["uniform", "renormalize"])
def test_densify_preserves_argmax_order_and_sums_to_one(leftover):
    probs = torch.softmax(torch.randn(256, 100) * 3, -1)
    ids, values = sparsify(probs, 10)
    dense = densify(ids, values.half(), 100, leftover)  # stored as float16
    assert dense.dtype == torch.float32 and dense.shape == (256, 100)
    assert torch.allclose(dense.sum(-1), torch.ones(256), atol=1e-5)
    assert torch.equal(dense.argmax(-1), probs.argmax(-1))
    top = dense.gather(-1, ids)
    assert torch.all(top[:, :-1] >= top[:, 1:])
    others = dense.clone().scatter_(-1, ids, float("inf")).min(-1).values
    assert torch.all(others <= top[:, -1] + 1e-7)  # nothing outside the top-k overtakes it


def test_uniform_leftover_spreads_missing_mass():
    dense = densify(torch.tensor([3, 1]), torch.tensor([0.5, 0.3]), 5)
    assert dense.tolist() == pytest.approx([0.2 / 3, 0.3, 0.2 / 3, 0.5, 0.2 / 3])


def test_float16_sum_above_one_is_clamped():
    dense = densify(torch.tensor([0, 1]), torch.tensor([0.7, 0.3007], dtype=torch.float16), 4)
    assert torch.all(dense >= 0) and float(dense.sum()) == pytest.approx(1.0, abs=1e-6)


def test_class_ids_beyond_num_classes_are_refused():
    with pytest.raises(ClassCountMismatchError, match="num_classes=10"):
        densify(torch.tensor([12, 1]), torch.tensor([0.5, 0.3]), 10)


def test_k_out_of_range_is_refused():
    with pytest.raises(ValueError, match="k should be in"):
        sparsify(torch.rand(5), 6)
