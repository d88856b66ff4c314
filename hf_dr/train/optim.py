"""The optimizer and the learning-rate schedule of :func:`hf_dr.fit` and ``scripts/train_trainer.py``: SGD
(Nesterov) or AdamW from :func:`timm.optim.create_optimizer_v2`, and transformers' ``cosine_with_min_lr`` schedule
(linear warmup from 0, then cosine decay to ``min_lr_ratio`` x the peak), built exactly as ``transformers.Trainer``
builds it, so that :func:`hf_dr.fit` and a Trainer given :func:`hf_dr.train.trainer.trainer_arguments` of the same
:class:`~hf_dr.TrainConfig` step the same learning rates.

Imports: ``timm`` (when building an optimizer), ``transformers`` (when building a schedule); the config type from
:mod:`hf_dr.train.loop` for annotations only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from hf_dr.train.loop import TrainConfig

SCHEDULE = "cosine_with_min_lr"  # transformers' SchedulerType: the Trainer's lr_scheduler_type for the same schedule


def warmup_steps(warmup_fraction: float, total_steps: int) -> int:
    """The warmup's optimizer steps: ``ceil(fraction x total)``, as ``TrainingArguments.get_warmup_steps`` counts a
    fractional ``warmup_steps``.

    Example:
        >>> warmup_steps(0.05, 390), warmup_steps(0.0, 390)
        (20, 0)
    """
    return math.ceil(total_steps * warmup_fraction)


def optimizer_steps_per_epoch(batches: int, gradient_accumulation_steps: int) -> int:
    """Optimizer steps in an epoch of ``batches`` forward passes: a last, shorter accumulation steps too (accelerate
    syncs the gradients at the end of the loader), as the Trainer counts its epochs.

    Example:
        >>> optimizer_steps_per_epoch(10, 3), optimizer_steps_per_epoch(9, 3)
        (4, 3)
    """
    return math.ceil(batches / gradient_accumulation_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' ``cosine_with_min_lr`` schedule over ``total_steps`` optimizer steps, from
    ``transformers.get_scheduler`` with the arguments the Trainer passes it: :func:`warmup_steps` of
    ``config.warmup_fraction``, then cosine decay to ``config.min_lr_ratio`` x the peak. The learning rate of the
    first step is 0 when there is a warmup (transformers' warmup starts at 0).

    Example:
        >>> from hf_dr.train.loop import TrainConfig
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = build_scheduler(opt, TrainConfig(warmup_fraction=0.2, min_lr_ratio=0.1), total_steps=10)
        >>> lrs = []
        >>> for _ in range(10):
        ...     lrs.append(round(schedule.get_last_lr()[0], 3))
        ...     opt.step()
        ...     schedule.step()
        >>> lrs
        [0.0, 0.5, 1.0, 0.966, 0.868, 0.722, 0.55, 0.378, 0.232, 0.134]
        >>> round(schedule.get_last_lr()[0], 3)  # after the last step: min_lr_ratio x the peak
        0.1
    """
    from transformers import get_scheduler

    return get_scheduler(SCHEDULE, optimizer, num_warmup_steps=warmup_steps(config.warmup_fraction, total_steps),
                         num_training_steps=total_steps,
                         scheduler_specific_kwargs={"min_lr_rate": config.min_lr_ratio})


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` from :func:`timm.optim.create_optimizer_v2`: SGD with Nesterov momentum
    (``"sgd"``; plain SGD when ``momentum`` is 0) or AdamW, with no weight decay on 1-d parameters (biases,
    normalisation weights) and on the names the model's ``no_weight_decay()`` lists.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))
        >>> from hf_dr.train.loop import TrainConfig
        >>> optimizer = build_optimizer(model, TrainConfig(weight_decay=1e-4))
        >>> sorted((g["weight_decay"], len(g["params"])) for g in optimizer.param_groups)  # 3 1-d, 1 matrix
        [(0.0, 3), (0.0001, 1)]
        >>> type(optimizer).__name__, optimizer.defaults["nesterov"]
        ('SGD', True)
    """
    from timm.optim import create_optimizer_v2

    if config.optimizer == "adamw":
        return create_optimizer_v2(model, opt="adamw", lr=config.lr, weight_decay=config.weight_decay)
    opt = "sgd" if config.momentum > 0 else "momentum"  # timm's "sgd" is Nesterov, which needs a momentum
    return create_optimizer_v2(model, opt=opt, lr=config.lr, weight_decay=config.weight_decay,
                               momentum=config.momentum)
