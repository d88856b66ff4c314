"""The numeric work of the label codecs (:mod:`hf_dr.data.codec`): 8-bit log quantisation, per-image class sets and
classes drawn from the teacher, each as a NumPy function of whole batches.

- :func:`quantize_topk` / :func:`dequantize_topk`: a top-k as ``k + 1`` bytes: each probability ``p`` as
  ``round(-ln(p) / STEP)`` over ``[PROB_FLOOR, 1]`` (``STEP = ln(2**20) / 255``: within :data:`RELATIVE_BOUND`,
  2.76%), then the mass outside the top-k, ``1 - sum``, on the same scale. The decoded top-k is rescaled to sum to
  the decoded leftover's complement: without that byte, quantisation errors (up to 2.76% of a top-1 near 1) swamp
  the leftover (often under 1%: a third of the demo's records summed above one and lost it), and with it the mass a
  calibrated student learns from.
- :func:`class_sets`: the distinct class ids of one image's N records, most frequent first (ties by id), and each
  record's ids as positions in that set (lossless).
- :func:`draw_classes`: ``m`` classes drawn with replacement from the teacher's full distribution (at a temperature)
  per record, stored as distinct ids (most drawn first) with their counts: ``counts / m`` is an unbiased estimate of
  the distribution (Sparse Logit Sampling, Anshumann et al., ACL 2025), where a top-k has to guess the mass outside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from hf_dr.augment.seeding import generator_for

PROB_FLOOR = 2.0**-20
STEP = -math.log(PROB_FLOOR) / 255
RELATIVE_BOUND = math.exp(STEP / 2) - 1
LABEL_STREAM = 1  # the draws of the sampled codec: generator_for(seed, key, index, LABEL_STREAM), apart from params'


def quantize(probs: np.ndarray | Sequence[float]) -> np.ndarray:
    """``uint8`` codes of probabilities (see the module docstring).

    Example:
        >>> quantize([1.0, 0.5, 1e-9]).tolist()
        [0, 13, 255]
    """
    probs = np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, 1.0)
    return np.clip(np.rint(-np.log(probs) / STEP), 0, 255).astype(np.uint8)


def dequantize(codes: np.ndarray | Sequence[int]) -> np.ndarray:
    """The probabilities of :func:`quantize`'s codes, ``float32``.

    Example:
        >>> [round(float(p), 3) for p in dequantize([0, 13])]
        [1.0, 0.493]
    """
    return np.exp(-np.asarray(codes, dtype=np.float64) * STEP).astype(np.float32)


def quantize_topk(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``uint8 [..., k + 1]`` codes of top-k probabilities and of the mass outside them (see the module docstring).

    Example:
        >>> codes = quantize_topk([[0.99, 0.006, 0.001]])
        >>> codes.tolist(), [round(float(p), 4) for p in dequantize_topk(codes)[0]]
        ([[0, 94, 127, 107]], [0.9901, 0.006, 0.001])
    """
    probs = np.asarray(probs, dtype=np.float64)
    leftover = np.clip(1.0 - probs.sum(-1, keepdims=True), 0.0, 1.0)
    return quantize(np.concatenate([probs, leftover], axis=-1))


_VALUES = dequantize(np.arange(256)).astype(np.float64)  # every code's value (a replay decodes one record a sample)


def dequantize_topk(codes: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """The top-k probabilities of :func:`quantize_topk`'s codes, ``float32 [..., k]``, rescaled to sum to one minus
    the decoded leftover: each within about ``2 * RELATIVE_BOUND`` of the stored one while the leftover is small (its
    own error adds ``RELATIVE_BOUND * leftover / (1 - leftover)``), the leftover within ``RELATIVE_BOUND``."""
    values = _VALUES[np.asarray(codes, dtype=np.intp)]
    probs, leftover = values[..., :-1], values[..., -1:]
    total = probs.sum(-1, keepdims=True)
    return (probs * np.clip(1.0 - leftover, 0.0, None) / np.maximum(total, 1e-12)).astype(np.float32)


def class_sets(ids: np.ndarray, row_offsets: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-row class sets of flat class ids, and every id as its position in its row's set.

    Args:
        ids (`np.ndarray`): every record's class ids, concatenated, rows in order.
        row_offsets (`np.ndarray`): ``R + 1`` offsets of the rows' ids in ``ids``.

    Returns:
        The set of each row (distinct ids, most frequent first, ties by id) and the positions, shaped like ``ids``.

    Example:
        >>> sets, positions = class_sets(np.array([3, 1, 3, 7, 7, 7]), np.array([0, 3, 6]))
        >>> [s.tolist() for s in sets], positions.tolist()
        ([[3, 1], [7]], [0, 1, 0, 0, 0, 0])
    """
    ids = np.asarray(ids, dtype=np.int64)
    positions = np.empty_like(ids)
    sets = []
    for start, stop in zip(row_offsets[:-1].tolist(), row_offsets[1:].tolist(), strict=True):
        distinct, inverse, counts = np.unique(ids[start:stop], return_inverse=True, return_counts=True)
        order = np.lexsort((distinct, -counts))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        sets.append(distinct[order])
        positions[start:stop] = rank[inverse]
    return sets, positions


def tempered(probs: torch.Tensor, temperature: float) -> np.ndarray:
    """``probs ** (1 / T)`` renormalised, as ``float64`` (the distribution a distillation at T matches)."""
    probs = probs.detach().double().cpu().numpy()
    if temperature != 1.0:
        probs = np.clip(probs, 1e-300, None) ** (1.0 / temperature)
    return probs / probs.sum(-1, keepdims=True)


def draw_classes(probs: torch.Tensor, draws: int, temperature: float, seed: int,
                 views: Sequence[tuple[str, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``draws`` classes drawn per record from ``probs [B, C]`` at ``temperature``, as distinct ids (most drawn first,
    ties by id) and their counts. Record ``b`` draws from ``generator_for(seed, key, index, LABEL_STREAM)`` for its
    ``views[b] = (key, index)``, so the draws do not depend on batching, processes or workers.

    Example:
        >>> ids, counts = draw_classes(torch.tensor([[0.0, 1.0, 0.0]]), 4, 1.0, 0, [("a", 0)])
        >>> ids[0].tolist(), counts[0].tolist()
        ([1], [4])
    """
    cdf = np.cumsum(tempered(probs, temperature), axis=-1)
    ids, counts = [], []
    for row, (key, index) in enumerate(views):
        distinct, count = np.unique(_picks(cdf[row], _uniforms(cdf[row], draws, seed, key, index)), return_counts=True)
        order = np.lexsort((distinct, -count))
        ids.append(distinct[order])
        counts.append(count[order].astype(np.uint8))
    return ids, counts


def _uniforms(cdf: np.ndarray, draws: int, seed: int, key: str, index: int) -> np.ndarray:
    return generator_for(seed, key, index, LABEL_STREAM).random(draws) * cdf[-1]


def _picks(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, uniforms, side="right"), len(cdf) - 1)


def unexplained_draws(probs: torch.Tensor, counts: np.ndarray, draws: int, temperature: float, seed: int,
                      views: Sequence[tuple[str, int]], tolerance: float) -> np.ndarray:
    """Per record, how many stored draws the teacher's ``probs [B, C]`` do not explain: the classes are drawn again
    with the run's generators and compared with the stored ``counts [B, C]``; a draw that falls within ``tolerance``
    of a class boundary of the cumulative distribution may land on either side (a teacher in half precision moves the
    boundaries), so it is not counted. 0 everywhere for a faithful record in any precision within ``tolerance``.

    Example:
        >>> probs = torch.tensor([[0.5, 0.5]])
        >>> ids, got = draw_classes(probs, 8, 1.0, 0, [("a", 0)])
        >>> stored = np.zeros((1, 2)); stored[0, ids[0]] = got[0]
        >>> unexplained_draws(probs, stored, 8, 1.0, 0, [("a", 0)], 0.01).tolist()
        [0]
    """
    cdf = np.cumsum(tempered(probs, temperature), axis=-1)
    out = np.zeros(len(views), dtype=np.int64)
    for row, (key, index) in enumerate(views):
        uniforms = _uniforms(cdf[row], draws, seed, key, index)
        again = np.bincount(_picks(cdf[row], uniforms), minlength=cdf.shape[-1])
        ambiguous = int((np.abs(uniforms[:, None] - cdf[row][None, :-1]).min(-1) < tolerance).sum()) if \
            cdf.shape[-1] > 1 else 0
        differing = int(np.abs(again - np.asarray(counts[row])).sum()) // 2
        out[row] = max(differing - ambiguous, 0)
    return out
