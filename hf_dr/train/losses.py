"""The loss of training on reinforced data: KL divergence to the stored soft target."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hf_dr.errors import MissingSoftLabelsError


def _logits_of(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = outputs["logits"] if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    if logits is None:
        raise TypeError(f"expected logits or model outputs with .logits, got {type(outputs).__name__}")
    return logits


def soft_target_loss(
    outputs: Any,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(target || softmax(logits / T)) * T^2, summed over classes and averaged over samples.

    Works as ``transformers.Trainer(compute_loss_func=soft_target_loss)``: the Trainer passes
    ``num_items_in_batch`` = the number of label *elements* in the whole accumulated batch (samples x classes)
    and does not divide by the accumulation steps itself, so the sum is divided by the accumulated sample count
    ``num_items_in_batch / C``. In a plain loop, leave it ``None`` to average over the batch.

    With ``temperature`` T != 1 the target is sharpened/softened as ``p^(1/T)`` renormalised (Hinton et al.).

    Args:
        outputs (`torch.Tensor` or model outputs): logits ``[B, C]`` or an object/dict with ``logits``.
        labels (`torch.Tensor`): dense soft targets ``[B, C]`` (rows sum to one).
        num_items_in_batch (`int` or `torch.Tensor`, *optional*): the Trainer's element count.
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature (the paper uses 1).

    Example:
        >>> logits = torch.tensor([[2.0, 0.0]])
        >>> target = torch.softmax(logits, -1)
        >>> float(soft_target_loss(logits, target)) < 1e-6
        True
    """
    logits = _logits_of(outputs)
    if not torch.is_floating_point(labels) or labels.shape != logits.shape:
        raise MissingSoftLabelsError(
            f"soft_target_loss needs dense soft labels shaped like the logits {tuple(logits.shape)}, got "
            f"{labels.dtype} {tuple(labels.shape)}; train on a dataset with hf_dr.ReinforcedTransform set"
        )
    target = labels.float()
    if temperature != 1.0:
        target = target.clamp(min=1e-12).pow(1.0 / temperature)
        target = target / target.sum(-1, keepdim=True)
    log_student = F.log_softmax(logits.float() / temperature, dim=-1)
    per_sample = F.kl_div(log_student, target, reduction="none").sum(-1) * temperature**2
    if num_items_in_batch is None:
        return per_sample.mean()
    samples = num_items_in_batch / logits.shape[-1]
    if isinstance(samples, torch.Tensor):
        samples = samples.to(per_sample.device)
    return per_sample.sum() / samples
