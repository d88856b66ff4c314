"""transformers.Trainer on reinforced data without subclassing: the recipe learns (timm, TimmWrapper and a
transformers classifier as students), accumulation keeps the loss scale, and bad arguments fail loudly and early."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import Trainer, TrainingArguments

from hf_dr import soft_target_loss
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.transforms import AugmentTransform, EvalTransform
from hf_dr.errors import ClassCountMismatchError, MissingSoftLabelsError, TrainerArgumentsError
from hf_dr.models.networks import MLPNet
from hf_dr.models.students import PixelValuesClassifier, create_model, forward_logits
from hf_dr.train.trainer import (
    ReinforcedEpochCallback,
    check_trainer_args,
    reinforced_trainer,
    reinforced_training_args,
    trainer_epoch,
)
from tests.training_utils import SIZE, reinforced_digits, reinforced_transform

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reinforced():
    return reinforced_digits(96)


def _args(tmp_path, **kwargs) -> TrainingArguments:
    values = dict(per_device_train_batch_size=16, num_train_epochs=10, learning_rate=0.05, use_cpu=True,
                  save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0, warmup_steps=0.05,
                  lr_scheduler_type="cosine")
    values.update(kwargs)
    return reinforced_training_args(str(tmp_path), **values)


def _soft_loss(model, dataset) -> float:
    model.eval()
    with torch.no_grad():
        losses = [float(soft_target_loss(forward_logits(model, b["pixel_values"]), b["labels"]))
                  for b in torch.utils.data.DataLoader(dataset, batch_size=48)]
    model.train()
    return sum(losses) / len(losses)


def _timm_wrapper(num_labels: int = 10):
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    return TimmWrapperForImageClassification(TimmWrapperConfig(architecture="hf_dr_cnn_tiny", num_labels=num_labels,
                                                               model_args={"in_chans": 3}))


def test_the_documented_recipe_needs_no_subclassing(reinforced, tmp_path):
    transform = reinforced_transform(reinforced)
    dataset = transform.attach(reinforced.with_format(None))
    torch.manual_seed(0)
    model = _timm_wrapper()
    before = _soft_loss(model, dataset)
    trainer = Trainer(model, _args(tmp_path), train_dataset=dataset, compute_loss_func=soft_target_loss,
                      callbacks=[ReinforcedEpochCallback()])
    trainer.train()
    assert _soft_loss(model, dataset) < 0.8 * before
    assert transform.epoch == 9  # the callback advanced the replayed records every epoch


@pytest.mark.parametrize("student", ["timm", "transformers"])
def test_reinforced_trainer_trains_and_evaluates_timm_and_transformers_students(reinforced, tmp_path, student):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    evaluation = EvalTransform(size=SIZE).attach(reinforced.with_format(None))
    torch.manual_seed(0)
    if student == "timm":
        model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    else:
        from transformers import ResNetConfig, ResNetForImageClassification

        model = ResNetForImageClassification(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                                                          depths=[1, 1], num_labels=10))
    trainer = reinforced_trainer(model, _args(tmp_path), dataset, eval_dataset=evaluation)
    before = _soft_loss(trainer.model, dataset)
    trainer.train()
    assert _soft_loss(trainer.model, dataset) < 0.8 * before
    metrics = trainer.evaluate()
    assert {"eval_top1", "eval_nll", "eval_ece", "eval_loss"} <= set(metrics)
    if student == "timm":
        assert isinstance(trainer.model, PixelValuesClassifier)


def test_gradient_accumulation_gives_the_loss_scale_of_a_larger_batch(reinforced, tmp_path):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    torch.manual_seed(0)
    start = MLPNet(hidden=(32,), input_size=SIZE * SIZE, in_chans=3)  # no BatchNorm: the split cannot matter
    runs = {}
    for name, batch, accumulation in (("large", 32, 1), ("accumulated", 16, 2)):
        model = copy.deepcopy(start)
        args = _args(tmp_path / name, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                     max_steps=1, optim="sgd", learning_rate=0.5, warmup_steps=0, lr_scheduler_type="constant")
        trainer = reinforced_trainer(model, args, dataset)
        trainer.train()
        runs[name] = (trainer.state.log_history[0]["loss"], model)
    (loss_large, large), (loss_acc, accumulated) = runs["large"], runs["accumulated"]
    assert loss_acc == pytest.approx(loss_large, rel=1e-4)
    # the same update as one step on the larger batch (a loss summed over micro-batches would double it)
    for p_large, p_acc, p_start in zip(large.parameters(), accumulated.parameters(), start.parameters(), strict=True):
        assert torch.allclose(p_acc - p_start, p_large - p_start, atol=1e-6, rtol=1e-3)
    assert not torch.equal(next(large.parameters()), next(start.parameters()))


def test_arguments_that_would_drop_the_transform_columns_are_refused(reinforced, tmp_path):
    with pytest.raises(TrainerArgumentsError, match="remove_unused_columns"):
        reinforced_training_args(str(tmp_path), remove_unused_columns=True)
    defaults = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(TrainerArgumentsError, match="remove_unused_columns=True"):
        check_trainer_args(defaults)
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    with pytest.raises(TrainerArgumentsError):
        reinforced_trainer(create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3), defaults, dataset)
    with pytest.raises(TrainerArgumentsError, match="label_smoothing_factor"):
        reinforced_training_args(str(tmp_path), label_smoothing_factor=0.1)
    with pytest.raises(TrainerArgumentsError, match="label_names"):
        check_trainer_args(TrainingArguments(str(tmp_path), report_to="none", remove_unused_columns=False,
                                             label_names=["label"]))
    # what the check prevents: the plain Trainer strips the columns and the first batch fails
    trainer = Trainer(_timm_wrapper(), defaults, train_dataset=dataset, compute_loss_func=soft_target_loss)
    with pytest.raises((KeyError, ValueError, IndexError)):
        trainer.train()


def test_datasets_without_soft_labels_and_students_of_another_class_count_are_refused(reinforced, tmp_path):
    model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
    plain = AugmentTransform("rrc", size=SIZE).attach(reinforced.with_format(None))
    with pytest.raises(MissingSoftLabelsError, match="ReinforcedTransform"):
        reinforced_trainer(model, _args(tmp_path), plain)
    with pytest.raises(MissingSoftLabelsError):
        reinforced_trainer(model, _args(tmp_path), reinforced.with_format(None))
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    with pytest.raises(ClassCountMismatchError, match="7 classes"):
        reinforced_trainer(create_model("hf_dr_cnn_tiny", num_classes=7, in_chans=3), _args(tmp_path), dataset)
    with pytest.raises(ClassCountMismatchError):
        reinforced_trainer(_timm_wrapper(num_labels=7), _args(tmp_path), dataset)
    preloaded = PreloadedDataset(reinforced, reinforced_transform(reinforced))
    with pytest.raises(ClassCountMismatchError):
        reinforced_trainer(create_model("hf_dr_cnn_tiny", num_classes=7, in_chans=3), _args(tmp_path), preloaded)
    # the raw recipe with hard labels fails in the loss, with the same error
    trainer = Trainer(_timm_wrapper(), _args(tmp_path), train_dataset=plain, compute_loss_func=soft_target_loss)
    with pytest.raises(MissingSoftLabelsError):
        trainer.train()


class _RecordedChoices:
    """Wraps a transform's ``choose``: records the (key, record index) of every sample the Trainer reads, in order."""

    def __init__(self, transform) -> None:
        self.choose, self.calls = transform.choose, []
        transform.choose = self

    def __call__(self, key, *args, **kwargs):
        index = self.choose(key, *args, **kwargs)
        self.calls.append((key, index))
        return index


def test_a_trainer_resumed_mid_epoch_replays_that_epochs_records(reinforced, tmp_path):
    """A Trainer resumed from a checkpoint taken at epoch 1.5 (the callback used to round it to 2) reads, step by
    step, the same samples with the same stored records as the uninterrupted run: epoch 1's records for the rest of
    epoch 1, then epoch 2's."""
    runs = {}
    for name in ("uninterrupted", "resumed"):
        transform = reinforced_transform(reinforced)
        dataset = transform.attach(reinforced.with_format(None))
        recorded = _RecordedChoices(transform)
        torch.manual_seed(0)
        args = _args(tmp_path / "run", num_train_epochs=3, save_strategy="steps", save_steps=9, logging_steps=50)
        trainer = Trainer(_timm_wrapper(), args, train_dataset=dataset, compute_loss_func=soft_target_loss,
                          callbacks=[ReinforcedEpochCallback()])
        checkpoint = str(tmp_path / "run" / "checkpoint-9") if name == "resumed" else None
        trainer.train(resume_from_checkpoint=checkpoint)
        runs[name] = recorded.calls
        assert transform.epoch == 2 and trainer.state.global_step == 18
    steps_per_epoch, batch = len(reinforced) // 16, 16
    assert steps_per_epoch == 6  # the checkpoint at step 9 is half-way through epoch 1
    assert len(runs["uninterrupted"]) == 3 * len(reinforced)
    assert runs["resumed"] == runs["uninterrupted"][9 * batch:]


@pytest.mark.parametrize(("global_step", "epoch", "batches", "accumulation", "expected"), [
    (9, 1.5, 6, 1, 1),  # resumed half-way through epoch 1
    (12, 1.9999999, 6, 1, 2),  # float error just below the start of epoch 2
    (8, 2.0, 7, 2, 2),  # 7 batches, accumulated by 2: 4 optimizer steps an epoch, the last one of 1 batch
    (7, 1.75, 7, 2, 1),
    (0, 2.9999999, None, 1, 3),  # no DataLoader length: the integer part of the float epoch, robustly
    (0, 2.5, None, 1, 2),
])
def test_trainer_epoch_is_the_index_of_the_epoch_in_progress(global_step, epoch, batches, accumulation, expected):
    from types import SimpleNamespace

    loader = None if batches is None else [None] * batches
    state = SimpleNamespace(global_step=global_step, epoch=epoch)
    assert trainer_epoch(SimpleNamespace(gradient_accumulation_steps=accumulation), state, loader) == expected


def test_a_trainer_on_a_split_stream_replays_each_epochs_records(reinforced, tmp_path):
    """The Trainer sets the epoch on the DataLoader's dataset, here the split_dataset_by_node of a reinforced stream:
    each epoch's samples replay that epoch's stored records."""
    from datasets.distributed import split_dataset_by_node

    from hf_dr import ReinforcedTransform
    from hf_dr.augment.seeding import choose_index
    from hf_dr.data.streaming import empty_reinforcements, stream_replay
    from tests.training_utils import NUM_SAMPLES, POLICY

    rows = reinforced.select(range(16)).with_format(None)
    transform = ReinforcedTransform(empty_reinforcements(rows.features, "key", "reinforcements"), policy=POLICY,
                                    size=SIZE, num_classes=10, seed=5)
    stream = stream_replay(rows.to_iterable_dataset(num_shards=2), transform, "image", "key", "reinforcements")
    split = split_dataset_by_node(stream, rank=1, world_size=2)  # one shard of 8 rows: 2 steps of 4 an epoch
    recorded = _RecordedChoices(transform)
    torch.manual_seed(0)
    args = _args(tmp_path, per_device_train_batch_size=4, max_steps=6, num_train_epochs=1)
    Trainer(_timm_wrapper(), args, train_dataset=split, compute_loss_func=soft_target_loss,
            callbacks=[ReinforcedEpochCallback()]).train()
    assert len(recorded.calls) == 3 * 8
    for epoch in range(3):
        calls = recorded.calls[8 * epoch:8 * (epoch + 1)]
        assert [index for _, index in calls] == [choose_index(NUM_SAMPLES, 5, epoch, key) for key, _ in calls]
    assert dict(recorded.calls[:8]) != dict(recorded.calls[8:16])  # the epochs replay other records


def test_trainer_arguments_are_the_train_config_or_a_refusal():
    """Issue 20: the Trainer script's recipe is TrainConfig itself (it had re-declared 11 fields and drifted); what
    the Trainer cannot honour is refused, not dropped."""
    from hf_dr import TrainConfig
    from hf_dr.errors import TrainerArgumentsError
    from hf_dr.train.trainer import trainer_arguments

    args = trainer_arguments(TrainConfig(max_steps=7, save_every=3, clip_grad_norm=2.0, mixed_precision="bf16",
                                         log_every=5, num_workers=2, seed=4), "out", use_cpu=True)
    assert (args.max_steps, args.save_steps, args.max_grad_norm, args.bf16, args.logging_steps,
            args.dataloader_num_workers, args.seed) == (7, 3, 2.0, True, 5, 2, 4)
    assert args.remove_unused_columns is False and args.label_names == ["labels"]
    for refused in ({"ema_decay": 0.99}, {"label_smoothing": 0.1}):
        with pytest.raises(TrainerArgumentsError, match=f"{next(iter(refused))}=.*cannot be honoured"):
            trainer_arguments(TrainConfig(**refused), "out", use_cpu=True)


def test_the_trainer_collates_the_uint8_output_as_the_float_one(reinforced, tmp_path):
    """Issue 23's fast output (uint8 views, top-k targets) through reinforced_trainer: it sets the transform's collate,
    and the same seed gives the same losses as the float32 output."""
    from hf_dr import ReinforcedTransform
    from tests.training_utils import POLICY

    losses = {}
    for output in ("float32", "uint8"):
        dataset = ReinforcedTransform(reinforced, policy=POLICY, size=SIZE, output=output).attach(
            reinforced.with_format(None))
        torch.manual_seed(0)
        model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)
        trainer = reinforced_trainer(model, _args(tmp_path / output, max_steps=3), dataset)
        trainer.train()
        losses[output] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses["uint8"]) == 3 and losses["uint8"] == pytest.approx(losses["float32"], rel=1e-5)
