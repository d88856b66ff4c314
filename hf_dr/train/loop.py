"""A plain PyTorch + Accelerate training loop for reinforced, plain and online-distillation runs.

One loop, three kinds of batches, told apart by their labels:

- dense soft ``labels [B, C]`` (from :class:`hf_dr.ReinforcedTransform`): KL to the stored teacher label
  (:func:`hf_dr.soft_target_loss`), the paper's reinforced training;
- integer ``labels [B]`` and no teacher (from :class:`hf_dr.AugmentTransform`): cross-entropy, the baseline;
- integer ``labels [B]`` and a ``teacher``: online knowledge distillation, the teacher runs on every batch.

The recipe follows the paper: SGD (Nesterov) or AdamW from :func:`timm.optim.create_optimizer_v2` (no weight decay
on biases, norms and a model's ``no_weight_decay()``), linear warmup then cosine decay, and the same hyperparameters
for plain and reinforced runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hf_dr.data.collate import TARGET_IDS
from hf_dr.data.epochs import set_epoch, transform_of
from hf_dr.errors import ConfigConflictError, InvalidConfigError
from hf_dr.models.students import check_input_channels, check_model_num_classes, forward_logits
from hf_dr.train.losses import soft_target_loss, target_is_tempered
from hf_dr.train.optim import build_optimizer, build_scheduler, optimizer_steps_per_epoch
from hf_dr.train.recipes import TRAIN_FIELDS, TrainConfig  # noqa: F401 (the config of fit, importable from here)
from hf_dr.train.resume import EpochShuffle, restore_checkpoint, save_checkpoint_state
from hf_dr.train.tracking import check_report_to, log_metrics, start_trackers

logger = logging.getLogger(__name__)

@dataclass
class TrainResult:
    """What :func:`fit` returns: steps taken, wall time (seconds), the loss record (every ``log_every`` steps: the
    step, its epoch, the mean loss since the previous record and the learning rate that step used, as the Trainer
    logs it) and, if asked, final metrics."""

    steps: int
    samples: int
    wall_time: float
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] | None = None
    ema_metrics: dict[str, float] | None = None
    ema_model: nn.Module | None = field(default=None, repr=False, compare=False)  # with TrainConfig.ema_decay

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ema_model"}


# -- data ----------------------------------------------------------------------------------------------------------
MAX_DROPPED_SHARE = 0.1  # drop_last is kept while it leaves out at most this share of the rows each epoch


def training_dataloader(dataset: Any, config: TrainConfig) -> torch.utils.data.DataLoader:
    """A DataLoader shuffled by (``config.seed``, epoch) (:class:`~hf_dr.train.resume.EpochShuffle`: the same batches
    for the same seed and epoch, also after a resume). It drops the last partial batch unless that would leave out
    more than :data:`MAX_DROPPED_SHARE` of the rows each epoch (240 rows in batches of 128 would train on 128 a
    epoch), which it then keeps, with a warning naming the fix. ``output="uint8"`` replays use their ``collate()``."""
    rows, transform = len(dataset), transform_of(dataset)
    drop_last = rows % config.batch_size <= MAX_DROPPED_SHARE * rows
    if not drop_last:
        logger.warning("batch size %d leaves %d of the %d rows out of every epoch with drop_last; keeping the last "
                       "partial batch instead (pass a batch size that divides the rows, --batch-size, for equal "
                       "batches)", config.batch_size, rows % config.batch_size, rows)
    return torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, sampler=EpochShuffle(rows, config.seed), drop_last=drop_last,
        num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
        pin_memory=torch.cuda.is_available(),  # page-locked batches: non-blocking copies to the GPU
        collate_fn=transform.collate(config.channels_last) if getattr(transform, "output", "") == "uint8" else None)


# -- loss ----------------------------------------------------------------------------------------------------------
def batch_loss(
    model: nn.Module, batch: dict[str, torch.Tensor], config: TrainConfig, teacher: nn.Module | None = None,
    tempered_target: bool = False,
) -> torch.Tensor:
    """The loss of one batch: soft-target KL, online distillation from ``teacher``, or cross-entropy (see module);
    ``tempered_target``: the soft targets already are at the config's temperature (:func:`target_is_tempered`)."""
    if TARGET_IDS in batch:  # samples of ReinforcedTransform(output="uint8") that no collate densified
        raise InvalidConfigError("a batch of top-k targets: pass the DataLoader collate_fn=transform.collate()")
    pixels, labels = batch["pixel_values"], batch["labels"]
    if config.channels_last and pixels.ndim == 4:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    logits = forward_logits(model, pixels)
    if torch.is_floating_point(labels):
        return soft_target_loss(logits, labels, temperature=config.temperature, tempered_target=tempered_target)
    if teacher is not None:
        with torch.no_grad():
            target = forward_logits(teacher, pixels).float().softmax(-1)
        return soft_target_loss(logits, target, temperature=config.temperature)
    return F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)


# -- the loop ------------------------------------------------------------------------------------------------------
def fit(
    model: nn.Module,
    train_dataset: Any,
    config: TrainConfig | None = None,
    eval_dataset: Any = None,
    teacher: nn.Module | None = None,
    num_classes: int | None = None,
    accelerator: Any = None,
    progress: bool | None = None,
    output_dir: str | None = None,
) -> TrainResult:
    """Trains ``model`` on ``train_dataset`` with Accelerate; returns steps, wall time, loss record and metrics.

    Args:
        model (`torch.nn.Module`): a timm model, a transformers image classifier, or any module returning logits.
        train_dataset (`datasets.Dataset` or `torch.utils.data.Dataset`): rows of ``pixel_values`` and ``labels``
            (soft, from :class:`hf_dr.ReinforcedTransform`, or integer, from :class:`hf_dr.AugmentTransform`).
        config (`TrainConfig`, *optional*): hyperparameters; defaults to ``TrainConfig()``.
        eval_dataset (*optional*): evaluated with :func:`hf_dr.evaluate` at the end (integer labels).
        teacher (`torch.nn.Module`, *optional*): run on every batch for online distillation (hard-label data).
        num_classes (`int`, *optional*): checked against the model's head; read from the reinforced transform.
        accelerator (`accelerate.Accelerator`, *optional*): defaults to one with the config's accumulation steps.
        output_dir (`str`, *optional*): where ``config.save_every`` writes checkpoints; a run finding one there
            resumes from the newest, exactly (same batches, views and updates), after checking it was made with
            the same settings.
        progress (`bool`, *optional*): show a tqdm bar; by default on a terminal only (tqdm's rule). The loss
            record is also logged at INFO (logger ``hf_dr.train.loop``) every ``log_every`` steps.

    Example (2 epochs on 16 bundled digits; a reinforced dataset, :class:`hf_dr.ReinforcedTransform`, the same way):
        >>> from hf_dr import AugmentTransform, TrainConfig, create_model, fit
        >>> from hf_dr.data.bundled import load_bundled
        >>> digits = load_bundled("digits").select(range(16))
        >>> train = AugmentTransform("rrc", size=28, mean=(0.5,), std=(0.5,)).attach(digits)
        >>> model = create_model("hf_dr_cnn_small", num_classes=10, in_chans=1)
        >>> fit(model, train, TrainConfig(epochs=2, batch_size=8)).steps
        4
    """
    from accelerate import Accelerator

    config = config or TrainConfig()
    _check_model(model, teacher, transform_of(train_dataset), num_classes)
    trackers = check_report_to(config.report_to, output_dir)  # before any work: installed, and where to write
    torch.manual_seed(config.seed)
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise InvalidConfigError("mixed_precision='fp16' needs a GPU; on CPU use 'bf16' or 'no'.")
    if trackers and accelerator is not None:
        raise ConfigConflictError(f"report_to={config.to_dict()['report_to']} and an accelerator of your own: give "
                                  "the trackers to it (Accelerator(log_with=..., project_dir=...)) and leave "
                                  "report_to 'none'")
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available(),
                                             mixed_precision=config.mixed_precision,
                                             gradient_accumulation_steps=config.gradient_accumulation_steps,
                                             log_with=trackers or None, project_dir=output_dir)
    started = start_trackers(accelerator, config)  # also those of an accelerator made with log_with
    try:
        return _fit(model, train_dataset, config, eval_dataset, teacher, accelerator, progress, output_dir)
    finally:
        if started:
            accelerator.end_training()


def _fit(model: nn.Module, train_dataset: Any, config: TrainConfig, eval_dataset: Any, teacher: nn.Module | None,
         accelerator: Any, progress: bool | None, output_dir: str | None) -> TrainResult:
    """:func:`fit` once the accelerator (and its trackers) are set up: trains, then evaluates and logs the metrics."""
    tempered = target_is_tempered(transform_of(train_dataset), config.temperature)
    run = _prepare(model, train_dataset, config, accelerator, teacher)
    run.tempered_target = tempered
    result = _train(run, train_dataset, config, accelerator, progress, output_dir)
    model = accelerator.unwrap_model(run.model)
    result.ema_model = None if run.ema is None else run.ema.module
    if eval_dataset is not None:
        from hf_dr.train.evaluation import evaluate

        for name, evaluated in (("metrics", model), ("ema_metrics", result.ema_model)):
            if evaluated is not None:
                setattr(result, name, evaluate(evaluated, eval_dataset, batch_size=max(256, config.batch_size),
                                               channels_last=config.channels_last))
                log_metrics(accelerator, "eval" if name == "metrics" else "eval_ema", getattr(result, name),
                            result.steps)
    return result


@dataclass
class _Prepared:
    """What :func:`fit` trains with, after ``accelerator.prepare``."""

    model: nn.Module
    optimizer: Any
    loader: Any
    scheduler: torch.optim.lr_scheduler.LRScheduler
    total_steps: int
    teacher: nn.Module | None
    sampler: EpochShuffle
    ema: Any = None  # timm.utils.ModelEmaV3 of the model, with TrainConfig.ema_decay
    tempered_target: bool = False


def _check_model(model: nn.Module, teacher: nn.Module | None, transform: Any, num_classes: int | None) -> None:
    """The model's (and teacher's) classes against ``num_classes`` or the replay's, its channels against the recorded
    image mode: refused before training, not deep inside the first forward."""
    num_classes = num_classes or getattr(transform, "num_classes", None)
    for checked in (model, teacher) if num_classes is not None else ():
        if checked is not None:
            check_model_num_classes(checked, num_classes)
    check_input_channels(model, getattr(transform, "image_mode", None), "the training data")


def _prepare(model: nn.Module, train_dataset: Any, config: TrainConfig, accelerator: Any,
             teacher: nn.Module | None) -> _Prepared:
    """The optimizer, the sharded loader, the schedule over the run's optimizer steps, and the teacher in eval mode."""
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    loader = training_dataloader(train_dataset, config)
    sampler = loader.sampler  # shared by the prepared loader: set_epoch reaches it
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = optimizer_steps_per_epoch(len(loader), config.gradient_accumulation_steps)  # per process
    if steps_per_epoch < 1:
        raise InvalidConfigError(
            f"the dataset ({len(train_dataset)} rows) gives no batch of {config.batch_size} to each of "
            f"{accelerator.num_processes} processes: pass a smaller --batch-size"
        )
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    # stepped by hand once per optimizer step (not prepared: accelerate would step it once per process)
    scheduler = build_scheduler(optimizer, config, total_steps)
    if teacher is not None:
        if config.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        teacher = accelerator.prepare_model(teacher, evaluation_mode=True).eval()
    ema = None
    if config.ema_decay is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(accelerator.unwrap_model(model), decay=config.ema_decay)
    for state in (scheduler, ema):  # saved and restored with the model and optimizer by accelerate's save_state
        if state is not None:
            accelerator.register_for_checkpointing(state)
    return _Prepared(model, optimizer, loader, scheduler, total_steps, teacher, sampler, ema)


def _train(run: _Prepared, train_dataset: Any, config: TrainConfig, accelerator: Any, progress: bool | None,
           output_dir: str | None = None) -> TrainResult:
    """Epochs of :func:`_step` until ``run.total_steps`` optimizer steps; the loss is recorded every ``log_every``,
    a checkpoint written every ``save_every`` (into ``output_dir``, whose newest checkpoint it resumes from)."""
    from tqdm.auto import tqdm

    result = TrainResult(steps=0, samples=0, wall_time=0.0)
    epoch, skip = _resume(result, accelerator, config, output_dir)
    bar = tqdm(total=run.total_steps, initial=result.steps, disable=None if progress is None else not progress,
               desc="train", leave=False)
    start, running, logged = time.perf_counter(), 0.0, []
    run.model.train()
    while result.steps < run.total_steps:
        set_epoch(train_dataset, epoch)
        batches, loader, skip = skip, accelerator.skip_first_batches(run.loader, skip) if skip else run.loader, 0
        # this epoch's shuffle: the loader counts its own passes; a skipping multi-process loader misses the sampler
        getattr(loader, "set_epoch", run.sampler.set_epoch)(epoch)
        run.sampler.set_epoch(epoch)
        for batch in loader:
            lr = run.scheduler.get_last_lr()[0]  # this step's (recorded as the Trainer records it)
            window = _window(batches, len(run.loader), config.gradient_accumulation_steps)
            running += _step(run, batch, config, accelerator, window) / window  # the step's mean loss
            result.samples += batch["pixel_values"].shape[0]
            batches += 1
            if not accelerator.sync_gradients:
                continue
            result.steps += 1
            if run.ema is not None:
                run.ema.update(accelerator.unwrap_model(run.model), step=result.steps)
            bar.update(1)
            logged.append(running)
            running = 0.0
            if result.steps % config.log_every == 0 or result.steps == run.total_steps:
                result.history.append({"step": result.steps, "epoch": epoch, "loss": sum(logged) / len(logged),
                                       "lr": lr})
                logger.info("step %d/%d (epoch %d): loss %.4f, lr %.3g", result.steps, run.total_steps, epoch,
                            result.history[-1]["loss"], result.history[-1]["lr"])
                log_metrics(accelerator, "train", {k: result.history[-1][k] for k in ("loss", "lr", "epoch")},
                            result.steps)
                logged = []
            if result.steps >= run.total_steps:
                break
            if output_dir and config.save_every and result.steps % config.save_every == 0:
                save_checkpoint_state(accelerator, output_dir, {
                    "step": result.steps, "epoch": epoch, "batches": batches, "samples": result.samples,
                    "history": result.history, "config": _resumable(config)})
        epoch += 1
    bar.close()
    result.wall_time = time.perf_counter() - start
    return result


def _resumable(config: TrainConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the checkpoint (not those of logging, saving or loading)."""
    return {k: v for k, v in config.to_dict().items()
            if k not in ("log_every", "save_every", "num_workers", "report_to")}


def _resume(result: TrainResult, accelerator: Any, config: TrainConfig, output_dir: str | None) -> tuple[int, int]:
    """Restores the newest checkpoint under ``output_dir`` into the prepared objects and ``result``; returns the epoch
    and the batches of it already trained (0, 0 without one)."""
    state = restore_checkpoint(accelerator, output_dir, _resumable(config)) if output_dir else None
    if state is None:
        return 0, 0
    result.steps, result.samples, result.history = state["step"], state["samples"], state["history"]
    return state["epoch"], state["batches"]


def _window(batch: int, batches: int, accumulation: int) -> int:
    """The forward passes in the optimizer step of batch ``batch`` (of ``batches`` in an epoch): ``accumulation``,
    or fewer in an epoch's last, shorter step (accelerate steps there too).

    Example:
        >>> [_window(b, 10, 4) for b in range(10)]
        [4, 4, 4, 4, 4, 4, 4, 4, 2, 2]
    """
    return min(accumulation, batches - (batch // accumulation) * accumulation)


def _step(run: _Prepared, batch: dict[str, torch.Tensor], config: TrainConfig, accelerator: Any,
          window: int) -> float:
    """One forward and backward pass; the optimizer and the schedule step when the accumulation is complete.
    The loss is divided by the step's ``window`` of passes (accelerate divides by the configured accumulation, which
    would under-weight an epoch's last, shorter step), as the Trainer does. Returns the batch's loss."""
    with accelerator.accumulate(run.model):
        loss = batch_loss(run.model, batch, config, run.teacher, run.tempered_target)
        accelerator.backward(loss * (config.gradient_accumulation_steps / window))
        if accelerator.sync_gradients and config.clip_grad_norm:
            accelerator.clip_grad_norm_(run.model.parameters(), config.clip_grad_norm)
        run.optimizer.step()
        if accelerator.sync_gradients:
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
