"""The plain PyTorch + Accelerate loop: it learns from soft labels, accumulation keeps the loss scale, each epoch
replays new records, bad inputs are refused (checkpoints: tests/models/test_checkpoints.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from hf_dr import soft_target_loss
from hf_dr.data.epochs import set_epoch
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.transforms import AugmentTransform, EvalTransform
from hf_dr.errors import ClassCountMismatchError, ConfigConflictError, InvalidConfigError, MissingSoftLabelsError
from hf_dr.models.networks import MLPNet
from hf_dr.models.students import ProbabilityEnsemble, create_model
from hf_dr.train.loop import TrainConfig, batch_loss, fit, training_dataloader
from tests.training_utils import SIZE, reinforced_digits, reinforced_transform

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reinforced():
    return reinforced_digits(96)


def _mean_soft_loss(model, dataset, epoch: int = 0) -> float:
    set_epoch(dataset, epoch)
    model.eval()
    with torch.no_grad():
        losses = [float(soft_target_loss(model(b["pixel_values"]), b["labels"]))
                  for b in torch.utils.data.DataLoader(dataset, batch_size=32)]
    model.train()
    return sum(losses) / len(losses)


def test_fit_on_reinforced_data_reduces_the_soft_target_loss(reinforced):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    torch.manual_seed(0)
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    before = _mean_soft_loss(model, dataset)
    result = fit(model, dataset, TrainConfig(epochs=12, batch_size=16, lr=0.05, log_every=6))
    after = _mean_soft_loss(model, dataset)
    assert result.steps == 12 * (96 // 16) and result.samples == 96 * 12
    assert after < 0.75 * before, (before, after)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.history[-1]["lr"] < 1e-3 * 0.05  # the last step's: cosine to zero (the schedule: test_optim.py)


def test_gradient_accumulation_gives_the_loss_scale_of_the_larger_batch(reinforced):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    torch.manual_seed(0)
    start = MLPNet(hidden=(32,), input_size=SIZE * SIZE, in_chans=3)  # no BatchNorm: the batch split cannot matter
    results, models = {}, {}
    for name, batch, accumulation in (("large", 32, 1), ("accumulated", 16, 2)):
        model = copy.deepcopy(start)
        config = TrainConfig(max_steps=1, batch_size=batch, gradient_accumulation_steps=accumulation, lr=0.5,
                             momentum=0.0, weight_decay=0.0, warmup_fraction=0.0, log_every=1, seed=3)
        results[name], models[name] = fit(model, dataset, config), model
    assert results["accumulated"].history[0]["loss"] == pytest.approx(results["large"].history[0]["loss"], rel=1e-4)
    for (name, p_large), p_accumulated in zip(models["large"].named_parameters(), models["accumulated"].parameters(),
                                              strict=True):
        assert torch.allclose(p_large, p_accumulated, atol=1e-5), name
    assert not torch.equal(next(models["large"].parameters()), next(start.parameters()))


def test_each_epoch_replays_other_records_and_the_loader_is_seeded(reinforced):
    transform = reinforced_transform(reinforced)
    dataset = transform.attach(reinforced.with_format(None))
    keys = reinforced["key"][:20]
    set_epoch(dataset, 0)
    first = [transform.choose(k) for k in keys]
    set_epoch(dataset, 1)
    assert [transform.choose(k) for k in keys] != first and transform.epoch == 1
    config = TrainConfig(batch_size=8, seed=5)
    order = [b["labels"] for b in training_dataloader(dataset, config)]
    again = [b["labels"] for b in training_dataloader(dataset, config)]
    assert all(torch.equal(a, b) for a, b in zip(order, again, strict=True))


def test_plain_and_online_distillation_batches_use_their_own_losses(reinforced):
    plain = AugmentTransform("rrc", size=SIZE).attach(reinforced.with_format(None))
    batch = next(iter(torch.utils.data.DataLoader(plain, batch_size=8)))
    assert batch["labels"].dtype == torch.int64 and batch["pixel_values"].shape == (8, 3, SIZE, SIZE)
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    config = TrainConfig(temperature=1.0)
    ce = batch_loss(model, batch, config)
    assert float(ce) == pytest.approx(float(torch.nn.functional.cross_entropy(model(batch["pixel_values"]),
                                                                              batch["labels"])), rel=1e-5)
    teacher = ProbabilityEnsemble([copy.deepcopy(model)]).eval()
    model.eval()  # the same BatchNorm statistics as the teacher copy: the distillation loss is zero
    assert float(batch_loss(model, batch, config, teacher=teacher)) == pytest.approx(0.0, abs=1e-5)
    model.train()
    torch.manual_seed(1)
    result = fit(create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3), plain,
                 TrainConfig(epochs=1, batch_size=16), teacher=ProbabilityEnsemble([model]))
    assert result.steps == 6


def test_preloaded_dataset_yields_exactly_the_attached_transform_batches(reinforced):
    transform = reinforced_transform(reinforced, seed=4)
    fast = PreloadedDataset(reinforced, transform)
    attached = transform.attach(reinforced.with_format(None))
    for epoch in (0, 2):
        fast.set_epoch(epoch)
        for index in (0, 7, 95):
            a, b = fast[index], attached[index]
            assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    evaluation = EvalTransform(size=SIZE)
    assert torch.equal(PreloadedDataset(reinforced, evaluation)[3]["pixel_values"],
                       evaluation.attach(reinforced.with_format(None))[3]["pixel_values"])


def test_bad_inputs_are_refused(reinforced):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    with pytest.raises(ClassCountMismatchError, match="predicts 7 classes"):
        fit(create_model("hf_dr_cnn_tiny", num_classes=7, in_chans=3), dataset, TrainConfig(epochs=1))
    with pytest.raises(MissingSoftLabelsError, match="dense soft labels"):
        soft_target_loss(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InvalidConfigError, match="optimizer"):
        TrainConfig(optimizer="lamb")
    # a dataset smaller than one batch trains on all its rows each epoch (it was refused; see the drop_last test)
    result = fit(create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3), dataset, TrainConfig(batch_size=128,
                                                                                                   epochs=1))
    assert result.steps == 1 and result.samples == len(dataset)


def test_train_config_round_trips_and_refuses_unknown_keys():
    config = TrainConfig(epochs=3, optimizer="adamw", clip_grad_norm=1.0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({"lr": 0.5}, defaults=config) == TrainConfig(epochs=3, optimizer="adamw",
                                                                              clip_grad_norm=1.0, lr=0.5)
    with pytest.raises(InvalidConfigError, match="unknown training settings"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_a_small_dataset_keeps_its_last_partial_batch(caplog):
    """Issue #14: 240 rows in batches of 128 trained on 128 rows an epoch (drop_last), silently."""
    from hf_dr.train.loop import training_dataloader

    rows = torch.utils.data.TensorDataset(torch.arange(240))
    with caplog.at_level("WARNING", logger="hf_dr.train.loop"):
        seen = torch.cat([batch[0] for batch in training_dataloader(rows, TrainConfig(batch_size=128))])
    assert sorted(seen.tolist()) == list(range(240)) and "--batch-size" in caplog.text
    assert len(training_dataloader(torch.utils.data.TensorDataset(torch.arange(1300)), TrainConfig(batch_size=128))) \
        == 10  # 20 rows left out of 1300: drop_last stays


@pytest.fixture
def fresh_accelerate_state():
    """accelerate fixes the precision once per process (AcceleratorState): start and leave this test with none."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_bf16_autocast_and_an_ema_of_the_weights(reinforced, fresh_accelerate_state):
    """Issue 24: mixed precision through accelerate (bf16 runs on CPU too) and timm's ModelEmaV3, evaluated beside
    the model; the EMA lags the trained weights."""
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    evaluation = EvalTransform(size=SIZE).attach(reinforced.with_format(None))
    torch.manual_seed(0)
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    dtypes = []  # of the first convolution's output while training (accelerate returns float32 logits)
    model.features[0].register_forward_hook(lambda module, args, out: dtypes.append(out.dtype) if module.training
                                            else None)
    result = fit(model, dataset, TrainConfig(epochs=2, batch_size=16, lr=0.05, mixed_precision="bf16",
                                             ema_decay=0.9), eval_dataset=evaluation)
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the forward ran under autocast
    assert result.ema_model is not None and result.ema_metrics["num_samples"] == result.metrics["num_samples"] == 96
    trained, averaged = dict(model.named_parameters()), dict(result.ema_model.named_parameters())
    assert set(trained) == set(averaged) and any(not torch.equal(trained[n], averaged[n]) for n in trained)
    assert "ema_model" not in result.to_dict()


@pytest.mark.parametrize(("options", "message"), [({"mixed_precision": "fp8"}, "mixed_precision should be one of"),
                                                  ({"ema_decay": 1.5}, r"ema_decay should be in \(0, 1\)")])
def test_precision_and_ema_settings_are_checked(options, message):
    with pytest.raises(InvalidConfigError, match=message):
        TrainConfig(**options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a GPU")
def test_fp16_without_a_gpu_is_refused(reinforced):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    with pytest.raises(InvalidConfigError, match="fp16' needs a GPU"):
        fit(create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3), dataset, TrainConfig(mixed_precision="fp16"))


class Killed(Exception):
    """Stands in for a kill in the middle of a run."""


def _run(dataset, output_dir, kill_at: int | None = None, **changes):
    """``fit`` of a fresh seeded model for 14 steps with a checkpoint every 4; raises :class:`Killed` at the optimizer
    step ``kill_at``. Returns the model, the result and the (step, key, record) of every sample trained on."""
    import hf_dr.train.loop as loop

    transform = dataset.format["format_kwargs"]["transform"]
    seen, original = [], loop._step

    def step(run, batch, config, accelerator, window):
        if kill_at is not None and len(seen) == kill_at:
            raise Killed
        seen.append(tuple(batch["labels"].argmax(-1).tolist()))
        return original(run, batch, config, accelerator, window)

    torch.manual_seed(0)
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    config = TrainConfig(**{"max_steps": 14, "batch_size": 16, "lr": 0.05, "save_every": 4, "log_every": 1,
                            "ema_decay": 0.8, **changes})
    loop._step, previous = step, loop._step
    try:
        result = fit(model, dataset, config, output_dir=str(output_dir))
    finally:
        loop._step = previous
    return model, result, seen, transform.epoch


def test_a_killed_fit_resumes_exactly_from_its_last_checkpoint(reinforced, tmp_path):
    """Issue 24 (checkpoints every K steps that resume exactly): killed at step 10 (checkpoint at 8, one epoch = 6
    steps), the rerun restores model, optimizer, schedule, EMA and the position in epoch 1, and ends with the weights,
    loss record and batches of the uninterrupted run."""
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    whole, whole_result, whole_seen, _ = _run(dataset, tmp_path / "whole")
    with pytest.raises(Killed):
        _run(dataset, tmp_path / "killed", kill_at=10)
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["step-4", "step-8"]
    resumed, result, seen, epoch = _run(dataset, tmp_path / "killed")
    assert seen == whole_seen[8:]  # the same batches (order and stored views) from step 9 on
    assert result.steps == 14 and result.samples == whole_result.samples
    assert [h["loss"] for h in result.history] == pytest.approx([h["loss"] for h in whole_result.history], rel=1e-5)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    for a, b in zip(whole_result.ema_model.parameters(), result.ema_model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigConflictError, match="lr: 0.05 -> 0.1"):
        _run(dataset, tmp_path / "killed", lr=0.1)
