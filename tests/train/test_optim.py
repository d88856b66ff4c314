"""The optimizer and the schedule of ``hf_dr.fit``: linear warmup then cosine decay to ``min_lr_ratio`` of the peak,
and timm's factory with no weight decay on 1-d tensors and ``no_weight_decay()`` names (moved from test_loop.py)."""

from __future__ import annotations

import pytest
import torch

from hf_dr.train.loop import TrainConfig
from hf_dr.train.optim import build_optimizer, cosine_with_warmup


def _learning_rates(steps: int, total: int | None = None, **schedule) -> list[float]:
    """The learning rate of each of ``steps`` steps of a schedule over ``total`` steps (``steps`` by default)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = cosine_with_warmup(optimizer, total_steps=total or steps, **schedule)
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return lrs


def test_cosine_schedule_warms_up_then_decays():
    lrs = _learning_rates(20, warmup_steps=4)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False)) and lrs[-1] < 0.02


def test_cosine_schedule_ends_at_min_lr_ratio_and_stays_there():
    """``min_lr_ratio`` is the floor of the decay (TrainConfig's ``min_lr_ratio``); steps beyond ``total_steps``
    (a resumed or longer run) stay at it instead of rising again along the cosine."""
    lrs = _learning_rates(15, warmup_steps=0, min_lr_ratio=0.1, total=10)
    assert lrs[0] == pytest.approx(1.0) and lrs[5] == pytest.approx(0.1 + 0.9 * 0.5)
    assert lrs[10:] == pytest.approx([0.1] * 5) and min(lrs) == pytest.approx(0.1)


@pytest.mark.parametrize("wrapped", [False, True])
def test_optimizer_skips_weight_decay_on_1d_parameters_and_no_weight_decay_names(wrapped):
    """timm's factory: ``no_weight_decay()`` names (a ViT's 3-d ``pos_embed``, ``cls_token``) and every 1-d tensor
    (biases, norm weights) get weight decay 0, the rest the configured decay, also through the Trainer wrapper."""
    import timm

    from hf_dr.models.students import PixelValuesClassifier

    vit = timm.create_model("test_vit", num_classes=10)
    model = PixelValuesClassifier(vit) if wrapped else vit
    exempt = model.no_weight_decay()
    assert {"pos_embed", "cls_token"} <= {name.removeprefix("model.") for name in exempt}
    for name in ("sgd", "adamw"):
        optimizer = build_optimizer(model, TrainConfig(optimizer=name, lr=0.01, weight_decay=0.05))
        decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
        named = dict(model.named_parameters())
        assert set(decay) == {id(p) for p in named.values()}
        for key, parameter in named.items():
            expected = 0.0 if parameter.ndim <= 1 or key in exempt else 0.05
            assert decay[id(parameter)] == expected, (name, key)
        assert optimizer.defaults["lr"] == 0.01
    sgd = build_optimizer(model, TrainConfig())
    assert type(sgd) is torch.optim.SGD and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    assert type(build_optimizer(model, TrainConfig(optimizer="adamw"))) is torch.optim.AdamW
    assert not build_optimizer(model, TrainConfig(momentum=0.0)).defaults["nesterov"]  # plain SGD
