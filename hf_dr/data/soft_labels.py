"""Sparse teacher probabilities: keep the top-k (``sparsify``), rebuild a dense target (``densify``).

Leftover mass rule: the stored top-k probabilities sum to ``s <= 1``; :func:`densify` spreads ``1 - s`` evenly
over the ``C - k`` classes not stored. Each of those classes had a teacher probability no larger than the k-th
stored one, so the spread share ``(1 - s) / (C - k)`` is too: the argmax and the order of the top-k survive, and
the target sums to one. ``leftover="renormalize"`` instead scales the top-k to sum to one (zero elsewhere).

The rule per label codec (:mod:`hf_dr.data.codec`): ``fp16-topk`` as above; ``q8-topk`` and ``q8-topk-set`` as above
on the decoded 8-bit values (a decoded top-k whose sum exceeds one is scaled to one first); ``sampled`` targets
(``counts / draws``) sum to one, so nothing is left over.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hf_dr.errors import ClassCountMismatchError, InvalidConfigError


def sparsify(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` class ids and probabilities of ``probs [..., C]``, highest first.

    Example:
        >>> ids, values = sparsify(torch.tensor([0.1, 0.6, 0.3]), k=2)
        >>> ids.tolist(), values.tolist()
        ([1, 2], [0.6000000238418579, 0.30000001192092896])
    """
    if not 1 <= k <= probs.shape[-1]:
        raise InvalidConfigError(f"k should be in [1, {probs.shape[-1]}] (the class count), but got {k} instead.")
    values, ids = torch.topk(probs, k, dim=-1, largest=True, sorted=True)
    return ids, values


def densify(
    ids: torch.Tensor | Sequence[int],
    probs: torch.Tensor | Sequence[float],
    num_classes: int,
    leftover: str = "uniform",
) -> torch.Tensor:
    """A dense ``float32 [..., num_classes]`` target from top-k ``ids`` and ``probs`` (see the module rule).

    Args:
        ids (`torch.Tensor` or list): integer class ids ``[..., k]``.
        probs (`torch.Tensor` or list): their probabilities ``[..., k]`` (any float dtype, e.g. the stored float16).
        num_classes (`int`): number of classes C.
        leftover (`str`, *optional*, defaults to ``"uniform"``): ``"uniform"`` or ``"renormalize"``.

    Example:
        >>> target = densify(torch.tensor([2, 0]), torch.tensor([0.7, 0.2]), num_classes=4)
        >>> [round(v, 3) for v in target.tolist()]
        [0.2, 0.05, 0.7, 0.05]
    """
    ids = np.asarray(ids, dtype=np.int64)
    probs = np.clip(np.asarray(probs, dtype=np.float32), 0.0, None)
    if ids.size and (int(ids.max()) >= num_classes or int(ids.min()) < 0):
        raise ClassCountMismatchError(
            f"soft labels hold class id {int(ids.max())} but num_classes={num_classes}; pass the class count the "
            "teacher was run with"
        )
    if leftover not in ("uniform", "renormalize"):
        raise InvalidConfigError(f"leftover should be 'uniform' or 'renormalize', but got {leftover!r} instead.")
    k, total = ids.shape[-1], probs.sum(-1, keepdims=True)
    if leftover == "renormalize" or k == num_classes:
        probs, rest = probs / np.maximum(total, 1e-12), np.zeros_like(total)
    else:
        probs = probs / np.maximum(total, 1.0)  # float16 rounding can push the sum just above one
        rest = np.clip(1.0 - probs.sum(-1, keepdims=True), 0.0, None) / (num_classes - k)
    dense = np.repeat(rest, num_classes, axis=-1).astype(np.float32)
    np.put_along_axis(dense, ids, probs, axis=-1)
    return torch.from_numpy(dense)
