"""Metrics of :func:`hf_dr.fit` through accelerate's experiment trackers (``TrainConfig.report_to``).

``report_to`` names trackers the way ``TrainingArguments.report_to`` does (``"tensorboard"``, ``"wandb"``, ...,
``"all"`` for every installed one, ``"none"``), or holds ``accelerate.tracking.GeneralTracker`` instances (a custom
tracker, from Python). accelerate itself skips a named tracker whose package is missing with a debug message, so a
run asked to report to TensorBoard would report nowhere: :func:`check_report_to` refuses it before training, naming
the package to install.

What :func:`hf_dr.fit` logs (``accelerator.log``, main process only): ``train/loss`` (the mean since the last
record), ``train/lr`` and ``train/epoch`` every ``log_every`` optimizer steps and at the last one, then the final
``eval/<metric>`` (and ``eval_ema/<metric>``) at the last step. The run's :class:`~hf_dr.TrainConfig` is stored as
the trackers' configuration (hyperparameters).

Imports: ``accelerate`` (when checking or starting trackers).
"""

from __future__ import annotations

import logging
from typing import Any

from hf_dr.errors import InvalidConfigError

logger = logging.getLogger(__name__)

NO_TRACKERS = ("none",)
PROJECT_NAME = "hf-dr"  # the trackers' project (TensorBoard: the event files go to OUTPUT_DIR/hf-dr)
PACKAGES = {"comet_ml": "comet-ml"}  # a tracker whose pip package is spelled otherwise


def normalize_report_to(report_to: Any) -> list[Any]:
    """``report_to`` as a list: a name or a tracker becomes a one-item list; ``"none"`` (or empty) an empty one.

    Example:
        >>> normalize_report_to("none"), normalize_report_to("tensorboard"), normalize_report_to(["none"])
        ([], ['tensorboard'], [])
    """
    items = list(report_to) if isinstance(report_to, (list, tuple)) else [report_to]
    items = [item for item in items if item is not None and item not in NO_TRACKERS]
    return items


def check_report_to(report_to: Any, output_dir: str | None = None, installed: bool = True) -> list[Any]:
    """The trackers of ``report_to`` (see :func:`normalize_report_to`), refused up front when unknown, not
    installed (``installed=True``), or writing files without an ``output_dir``.

    Raises:
        InvalidConfigError: an unknown name (the known ones are listed), a tracker whose package is missing (the
            ``pip install`` is named), or one that writes files (TensorBoard) and no ``output_dir``.

    Example:
        >>> check_report_to(["none"])
        []
        >>> check_report_to("tensorbord")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: report_to: unknown tracker 'tensorbord'; known ones are ['aim', 'all', ...
    """
    trackers = normalize_report_to(report_to)
    if not trackers:
        return trackers
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker, get_available_trackers

    available = {str(tracker) for tracker in get_available_trackers()}
    for tracker in trackers:
        if isinstance(tracker, GeneralTracker):
            continue
        if tracker != "all" and str(tracker) not in LOGGER_TYPE_TO_CLASS:
            raise InvalidConfigError(f"report_to: unknown tracker {tracker!r}; known ones are "
                                     f"{sorted([*LOGGER_TYPE_TO_CLASS, 'all', 'none'])} or an "
                                     "accelerate.tracking.GeneralTracker instance")
        if not installed or tracker == "all":
            continue
        if tracker not in available:
            raise InvalidConfigError(f"report_to={tracker!r} needs the {tracker} package, which is not installed: "
                                     f"pip install {PACKAGES.get(tracker, tracker)} (or leave {tracker!r} out)")
        if LOGGER_TYPE_TO_CLASS[tracker].requires_logging_directory and not output_dir:
            raise InvalidConfigError(f"report_to={tracker!r} writes its logs into the output folder: pass "
                                     "fit(..., output_dir=...) (scripts: --output-dir)")
    if "all" in trackers and installed and not available:
        logger.warning("report_to='all' but no tracker package is installed (pip install tensorboard, for one): "
                       "the metrics go to the log only")
    return trackers


def tracker_config(config: Any) -> dict[str, Any]:
    """``config`` (a :class:`~hf_dr.TrainConfig`) as the flat scalars trackers store as hyperparameters: unset
    settings left out, ``report_to`` as its names joined by commas.

    Example:
        >>> from hf_dr.train.loop import TrainConfig
        >>> values = tracker_config(TrainConfig(report_to=["none"]))
        >>> values["lr"], values["report_to"], "max_steps" in values
        (0.1, 'none', False)
    """
    values = {}
    for name, value in config.to_dict().items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value) or "none"
        if value is not None:
            values[name] = value
    return values


def start_trackers(accelerator: Any, config: Any) -> bool:
    """Starts the trackers an accelerator was made with (``log_with``), once, storing ``config``; returns whether
    this call started them (the caller then ends them with ``accelerator.end_training()``)."""
    if not accelerator.log_with or accelerator.trackers:
        return False
    accelerator.init_trackers(PROJECT_NAME, config=tracker_config(config))
    return True


def log_metrics(accelerator: Any, prefix: str, metrics: dict[str, Any] | None, step: int) -> None:
    """Logs the numbers of ``metrics`` under ``prefix/`` at ``step`` (nothing without trackers)."""
    if metrics and accelerator.trackers:
        accelerator.log({f"{prefix}/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
                        step=step)
