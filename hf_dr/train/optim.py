"""The optimizer and the learning-rate schedule of :func:`hf_dr.fit` and ``scripts/train_trainer.py``: SGD
(Nesterov) or AdamW from :func:`timm.optim.create_optimizer_v2`, linear warmup then cosine decay.

Imports: ``timm`` (when building an optimizer); the config type from :mod:`hf_dr.train.loop` for annotations only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from hf_dr.train.loop import TrainConfig


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from ~0 to the peak over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` x peak.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = cosine_with_warmup(opt, warmup_steps=2, total_steps=10)
        >>> [round(schedule.get_last_lr()[0], 2)]
        [0.5]
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
