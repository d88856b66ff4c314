"""What :func:`hf_dr.train.finetune.finetune_teacher` checks and fixes in a trained ensemble before it labels data.

- Member screening (:func:`screen_members`): a member far below the best one (beyond a tolerance and the noise of
  the eval set) is reported and left out, so one failed seed does not dilute the teacher.
- Calibration (:func:`fit_temperature`, :func:`calibrate_members`): an ensemble's averaged probabilities are often
  miscalibrated even when its members are not (averaging lowers the confidence, and members trained on augmented
  views are under-confident on clean images; members trained without label smoothing are often over-confident). A
  student distilled from stored teacher probabilities inherits that, so one temperature T for every member is
  fitted on a calibration split (rows neither the members nor the reinforced subset learn from) and recorded in
  every member of the teacher spec (:attr:`hf_dr.models.teacher.MemberSpec.temperature`): the teacher then
  averages ``softmax(logits / T)``.

Example:
    >>> labels = torch.arange(40) % 2
    >>> logits = [torch.tensor([[2.0, 0.0], [0.0, 2.0]] * 20)]  # each at 88%...
    >>> logits[0][:12] = logits[0][:12].flip(-1)  # ...and 12 of 40 wrong
    >>> fit_temperature(logits, labels) > 1  # over-confident: softened
    True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hf_dr.errors import CalibrationError, InvalidConfigError

logger = logging.getLogger(__name__)

# candidate temperatures: log-spaced from 0.25 to 4 (1 included), then refined around the best
GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 121))
# a split with fewer wrong predictions cannot fit T: its NLL keeps falling as T drops (every right answer gains) and
# its optimum is set by a handful of rows. Measured: 0 errors in 129 digits drove T to 0.097, 4 in 2,000 shapes to
# the grid's end (0.25), labels near one-hot either way
MIN_ERRORS = 10


# -- calibration -----------------------------------------------------------------------------------------------------
def ensemble_nll(member_logits: Sequence[torch.Tensor], labels: torch.Tensor, temperature: float) -> float:
    """The NLL of the ensemble's mean probabilities (the teacher's rule) with every member's logits divided by
    ``temperature``."""
    from hf_dr.models.teacher import mean_probabilities

    probs = mean_probabilities(logits.float() / temperature for logits in member_logits)
    return float(-probs.gather(1, labels.long()[:, None]).clamp(min=1e-12).log().mean())


def fit_temperature(member_logits: Sequence[torch.Tensor], labels: torch.Tensor) -> float:
    """The temperature (between 0.25 and 4) that minimises :func:`ensemble_nll` on ``labels``: a log-spaced grid,
    then a finer one around its best point (deterministic, no optimiser state).

    Raises :class:`CalibrationError` when the ensemble gets fewer than :data:`MIN_ERRORS` rows wrong, or when the
    NLL is lowest at the low end of the range: such a split drives the temperature towards 0 (one-hot labels), which
    would throw the soft labels away. A teacher over-confident beyond the range gets its largest temperature."""
    from hf_dr.models.teacher import mean_probabilities

    if not len(member_logits) or not len(labels):
        raise InvalidConfigError("calibrating a teacher needs member logits on at least one labelled row")
    errors = int((mean_probabilities(member_logits).argmax(-1) != labels).sum())
    if errors < MIN_ERRORS:
        raise CalibrationError(
            f"the teacher gets {errors} of {len(labels)} calibration rows wrong (fewer than {MIN_ERRORS}): they "
            "cannot tell a calibrated teacher from an over-confident one. Pass a larger calibration split.")
    best = min(GRID, key=lambda t: ensemble_nll(member_logits, labels, float(t)))
    if best == GRID[0]:  # sharpening without end: the few errors do not pin it down
        raise CalibrationError(
            f"the calibration rows' NLL is lowest at the low end of the temperature range ({best:.2f}): they do not "
            "pin a temperature down. Pass a larger or harder calibration split.")
    if best == GRID[-1]:
        logger.warning("the teacher is so over-confident that its temperature is the range's largest, %.1f", best)
        return float(GRID[-1])
    step = float(GRID[1] / GRID[0])
    fine = np.clip(np.exp(np.linspace(np.log(best / step), np.log(best * step), 21)), GRID[0], GRID[-1])
    return round(float(min(fine, key=lambda t: ensemble_nll(member_logits, labels, float(t)))), 4)


def calibrate_members(members: list[dict[str, Any]], logits: list[torch.Tensor], labels: torch.Tensor,
                      kept: list[int]) -> dict[str, Any]:
    """Fits the kept members' shared temperature on their calibration ``logits`` and records it in their specs
    (``members[i]["spec"]["temperature"]``); returns the calibration record (temperature, rows, NLL before and after;
    ``skipped`` with the reason and T = 1 when the split cannot fit one, see :func:`fit_temperature`)."""
    try:
        temperature = fit_temperature(logits, labels)
    except CalibrationError as err:  # the members are sound; the split is too easy to calibrate them on
        logger.warning("teacher left uncalibrated: %s", err)
        return {"temperature": 1.0, "num_samples": len(labels), "skipped": str(err)}
    for index in kept:
        members[index]["spec"]["temperature"] = temperature
    record = {"temperature": temperature, "num_samples": len(labels),
              "nll_before": ensemble_nll(logits, labels, 1.0), "nll_after": ensemble_nll(logits, labels, temperature)}
    logger.info("teacher temperature %.3f on %d calibration rows: NLL %.4f -> %.4f", temperature, len(labels),
                record["nll_before"], record["nll_after"])
    return record


# -- screening -------------------------------------------------------------------------------------------------------
def screen_members(members: list[dict[str, Any]], tolerance: float | None) -> list[int]:
    """The indices of the members kept. A member is left out when its eval top-1 is below the best member's by more
    than ``tolerance`` *and* by more than 3 standard errors of the difference of the two accuracies on the eval set
    (``metrics["num_samples"]`` images), so a small eval set's noise leaves no member out. All are kept without eval
    metrics or a tolerance. Marks each record ``kept`` and warns about each member left out.

    Example:
        >>> members = [{"metrics": {"top1": top1, "num_samples": 1000}} for top1 in (0.91, 0.62, 0.88)]
        >>> screen_members(members, 0.05), [m["kept"] for m in members]
        ([0, 2], [True, False, True])
        >>> screen_members([{"metrics": {"top1": 0.84, "num_samples": 100}},
        ...                 {"metrics": {"top1": 0.71, "num_samples": 100}}], 0.05)  # within 3 s.e. of 100 images
        [0, 1]
    """
    metrics = [m.get("metrics", {}) for m in members]
    scores = [m.get("top1") for m in metrics]
    if tolerance is None or any(s is None for s in scores):
        kept = list(range(len(members)))
    else:
        best = max(range(len(scores)), key=scores.__getitem__)
        kept = [i for i in range(len(scores)) if scores[best] - scores[i] <= max(tolerance, _noise(metrics, best, i))]
    for index, member in enumerate(members):
        member["kept"] = index in kept
        if not member["kept"]:
            logger.warning("leaving member %d (seed %s) out of the teacher: top-1 %.2f%%, %.2f points below the best "
                           "member (tolerance %.2f points, 3 s.e. %.2f points)", index, member.get("seed"),
                           100 * scores[index], 100 * (max(scores) - scores[index]), 100 * tolerance,
                           100 * _noise(metrics, best, index))
    return kept


def _noise(metrics: list[dict[str, Any]], a: int, b: int) -> float:
    """3 standard errors of the difference of two eval accuracies (binomial; 0 without a sample count)."""
    variance = 0.0
    for m in (metrics[a], metrics[b]):
        if not m.get("num_samples"):
            return 0.0
        variance += m["top1"] * (1 - m["top1"]) / m["num_samples"]
    return 3 * math.sqrt(variance)
