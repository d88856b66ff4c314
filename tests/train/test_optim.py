"""The schedule comes from transformers and is the Trainer's: ``fit`` and a Trainer given ``trainer_arguments`` of the
same TrainConfig step the same learning rate at every optimizer step, on real data; an epoch's last, shorter
accumulation is an optimizer step in both; timm's optimizer factory with no weight decay on 1-d tensors and
``no_weight_decay()`` names."""

from __future__ import annotations

import math

import pytest
import torch

from hf_dr.models.students import create_model
from hf_dr.train.loop import TrainConfig, fit
from hf_dr.train.optim import build_optimizer, build_scheduler, optimizer_steps_per_epoch, warmup_steps
from hf_dr.train.trainer import reinforced_trainer, trainer_arguments
from tests.training_utils import reinforced_digits, reinforced_transform

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reinforced():
    return reinforced_digits(96)


def _model():
    torch.manual_seed(0)
    return create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)


def _trainer_lrs(dataset, config: TrainConfig, output_dir: str) -> list[float]:
    """The learning rate the Trainer logs after every optimizer step, for ``config``."""
    model = _model()
    args = trainer_arguments(config, output_dir, use_cpu=True, disable_tqdm=True)
    trainer = reinforced_trainer(model, args, dataset, optimizers=(build_optimizer(model, config), None))
    trainer.train()
    return [record["learning_rate"] for record in trainer.state.log_history if "learning_rate" in record]


# 96 rows: 6 batches of 16 in 2 accumulation steps of 3; or 5 batches of 20 (the last of 16 rows: more than 10% of
# the rows, which fit keeps as the Trainer does) in 2 accumulation steps, each epoch ending on a single-batch step
@pytest.mark.parametrize(("batch_size", "accumulation", "steps"), [(16, 3, 3 * 2), (20, 2, 3 * 3)])
def test_fit_and_the_trainer_step_the_same_learning_rates(reinforced, tmp_path, batch_size, accumulation, steps):
    config = TrainConfig(epochs=3, batch_size=batch_size, gradient_accumulation_steps=accumulation, lr=0.05,
                         warmup_fraction=0.2, min_lr_ratio=0.1, log_every=1)
    fitted = fit(_model(), reinforced_transform(reinforced).attach(reinforced.with_format(None)), config)
    trainer = _trainer_lrs(reinforced_transform(reinforced).attach(reinforced.with_format(None)), config,
                           str(tmp_path))
    assert fitted.steps == steps and len(trainer) == steps
    assert [record["lr"] for record in fitted.history] == pytest.approx(trainer, rel=1e-12, abs=1e-15)
    # warmup from 0 up to the peak, then cosine towards 0.1 x the peak (reached after the last step)
    assert trainer[0] == 0.0 and max(trainer) == pytest.approx(0.05) and min(trainer[1:]) > 0.1 * 0.05


def test_an_epochs_last_short_accumulation_is_a_step_and_every_epoch_is_trained(reinforced):
    """5 batches of 20 with 3 accumulation steps: accelerate steps after batches 3 and 5, so an epoch is 2 optimizer
    steps. Counting 5 // 3 = 1 made the schedule end, and training stop, halfway through the second of 2 epochs."""
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    result = fit(_model(), dataset, TrainConfig(epochs=2, batch_size=20, gradient_accumulation_steps=3, lr=0.05,
                                                log_every=1))
    assert result.steps == 2 * 2
    assert result.samples == 2 * len(dataset)  # every row of both epochs
    assert [record["epoch"] for record in result.history] == [0, 0, 1, 1]
    # the schedule ends with the training (1 warmup step, 3 of cosine): the last step is at 2/3 of the cosine
    assert result.history[-1]["lr"] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 2 / 3)))


def test_an_epochs_last_short_step_weighs_its_batches_as_a_full_step_does(reinforced, monkeypatch):
    """5 batches with 3 accumulation steps: the epoch's second step holds 2 batches. accelerate divides every loss by
    the configured 3, so those 2 batches weighed 2/3 of a step (the Trainer divides by the step's own batch count).
    Now each batch weighs 1/3 of a full step and 1/2 of the short one, and the logged loss is the step's mean."""
    from accelerate import Accelerator

    import hf_dr.train.loop as loop

    losses, given = [], []
    original = loop.batch_loss
    monkeypatch.setattr(loop, "batch_loss", lambda *args, **kwargs: losses.append(original(*args, **kwargs))
                        or losses[-1])
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=3)
    backward = accelerator.backward
    monkeypatch.setattr(accelerator, "backward", lambda loss, **kwargs: given.append(float(loss.detach()))
                        or backward(loss, **kwargs))
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    result = fit(_model(), dataset, TrainConfig(epochs=1, batch_size=20, gradient_accumulation_steps=3, lr=0.0,
                                                log_every=1), accelerator=accelerator)
    weights = [value / float(loss) / 3 for value, loss in zip(given, losses, strict=True)]  # what accelerate applies
    assert weights == pytest.approx([1 / 3] * 3 + [1 / 2] * 2)
    assert [h["loss"] for h in result.history] == pytest.approx([sum(map(float, losses[:3])) / 3,
                                                                 sum(map(float, losses[3:])) / 2])


def test_schedule_warms_up_from_zero_then_decays_to_the_floor():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = build_scheduler(optimizer, TrainConfig(warmup_fraction=0.2, min_lr_ratio=0.05), total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])  # ceil(0.2 x 20) = 4 warmup steps
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False)) and lrs[-1] > 0.05
    assert schedule.get_last_lr()[0] == pytest.approx(0.05)
    assert type(schedule).__module__ == "torch.optim.lr_scheduler"  # transformers' LambdaLR, nothing of ours


def test_step_counts_are_the_trainers():
    from transformers import TrainingArguments

    args = TrainingArguments("out", warmup_steps=0.05, report_to="none", use_cpu=True)
    for total in (1, 19, 20, 390, 1001):
        assert warmup_steps(0.05, total) == args.get_warmup_steps(total)
    assert [optimizer_steps_per_epoch(b, 4) for b in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]


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
