"""``logits_of``: the logits of every form a classifier's forward returns, and a clear error otherwise."""

import pytest
import torch
from transformers.modeling_outputs import ImageClassifierOutput

from hf_dr.models.outputs import logits_of


def test_logits_of_every_output_form():
    logits = torch.randn(2, 3)
    for outputs in (logits, {"logits": logits}, ImageClassifierOutput(logits=logits)):
        assert logits_of(outputs) is logits


def test_outputs_without_logits_are_refused_naming_their_type():
    with pytest.raises(TypeError, match="got list"):
        logits_of([1, 2])
