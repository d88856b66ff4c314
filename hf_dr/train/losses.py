"""The loss of training on reinforced data: KL divergence to the stored soft target."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hf_dr.errors import InvalidConfigError, MissingSoftLabelsError
from hf_dr.models.outputs import logits_of


def soft_target_loss(
    outputs: Any,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    temperature: float = 1.0,
    tempered_target: bool = False,
) -> torch.Tensor:
    """KL(target || softmax(logits / T)) * T^2, summed over classes and averaged over samples.

    Works as ``transformers.Trainer(compute_loss_func=soft_target_loss)``: the Trainer passes
    ``num_items_in_batch`` = the number of label *elements* in the whole accumulated batch (samples x classes)
    and does not divide by the accumulation steps itself, so the sum is divided by the accumulated sample count
    ``num_items_in_batch / C``. In a plain loop, leave it ``None`` to average over the batch.

    With ``temperature`` T != 1 the target is sharpened/softened as ``p^(1/T)`` renormalised (Hinton et al.), unless
    ``tempered_target``: targets that already are at T (the ``sampled`` codec's, see :func:`target_is_tempered`), which
    tempering again would bias. :func:`hf_dr.fit` and :func:`hf_dr.reinforced_trainer` set it from the dataset; a loop
    of your own passes ``tempered_target=target_is_tempered(transform, T)``.

    Args:
        outputs (`torch.Tensor` or model outputs): logits ``[B, C]`` or an object/dict with ``logits``.
        labels (`torch.Tensor`): dense soft targets ``[B, C]`` (rows sum to one).
        num_items_in_batch (`int` or `torch.Tensor`, *optional*): the Trainer's element count.
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature (the paper uses 1).
        tempered_target (`bool`, *optional*, defaults to False): the targets already are at ``temperature``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0]])
        >>> target = torch.softmax(logits, -1)
        >>> float(soft_target_loss(logits, target)) < 1e-6
        True
    """
    logits = logits_of(outputs)
    if not torch.is_floating_point(labels) or labels.shape != logits.shape:
        raise MissingSoftLabelsError(
            f"soft_target_loss needs dense soft labels shaped like the logits {tuple(logits.shape)}, got "
            f"{labels.dtype} {tuple(labels.shape)}; train on a dataset with hf_dr.ReinforcedTransform set"
        )
    target = labels.float()
    if temperature != 1.0 and not tempered_target:
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


def target_is_tempered(transform: Any, temperature: float) -> bool:
    """Whether ``transform``'s targets already are at the distillation ``temperature``: the ``sampled`` codec's
    estimate the teacher's distribution at the temperature its classes were drawn at (:mod:`hf_dr.data.codec`), without
    bias only as they are. Training such data at another temperature raises :class:`InvalidConfigError`.

    Example:
        >>> target_is_tempered(None, 2.0)
        False
    """
    codec = getattr(transform, "codec", None)
    recorded = None if codec is None else codec.target_temperature
    if recorded is None:
        return False
    if recorded != temperature:
        raise InvalidConfigError(
            f"these reinforcements store classes drawn from the teacher at temperature {recorded} (the 'sampled' "
            f"label codec): their targets estimate that distribution, without bias only as they are, and tempering "
            f"them to {temperature} would bias them. Train at temperature={recorded} (--temperature {recorded}), or "
            f"reinforce with label_temperature={temperature}.")
    return True
