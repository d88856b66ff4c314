"""What a classifier's forward returns, as logits: a tensor, a ``dict`` with ``"logits"`` (a transformers
``ModelOutput``) or an object with ``.logits``."""

from __future__ import annotations

from typing import Any

import torch


def logits_of(outputs: Any) -> torch.Tensor:
    """The logits of a model's outputs.

    Example:
        >>> import torch
        >>> logits_of({"logits": torch.ones(1, 3)}).shape
        torch.Size([1, 3])
        >>> logits_of(torch.zeros(2, 5)).shape
        torch.Size([2, 5])
    """
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = outputs["logits"] if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    if logits is None:
        raise TypeError(f"expected logits or model outputs with .logits, got {type(outputs).__name__}")
    return logits
