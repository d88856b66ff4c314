"""Training on reinforced data with ``transformers.Trainer``, without subclassing it.

The recipe (see :func:`reinforced_trainer`, which builds exactly this and checks its inputs)::

    args = hf_dr.reinforced_training_args("out", per_device_train_batch_size=128, num_train_epochs=10)
    trainer = Trainer(model, args, train_dataset=reinforced, compute_loss_func=hf_dr.soft_target_loss,
                      callbacks=[hf_dr.ReinforcedEpochCallback()])

What each piece is for:

- ``remove_unused_columns=False``: the Trainer otherwise drops the ``image`` and ``key`` columns the transform reads
  (they are not arguments of the model's ``forward``) and the first batch fails;
- ``label_names=["labels"]``: lets ``Trainer.evaluate`` find the labels of models whose ``forward`` has no
  ``labels`` argument (timm models wrapped by :class:`hf_dr.models.students.PixelValuesClassifier`);
- ``compute_loss_func=soft_target_loss``: the Trainer passes ``num_items_in_batch`` = samples x classes of the whole
  accumulated batch, and the loss divides by the accumulated sample count, so gradient accumulation gives the loss
  scale of the larger batch;
- :class:`ReinforcedEpochCallback`: the Trainer cannot advance a ``set_transform`` hook's epoch by itself; without
  the callback every epoch would replay the same stored augmentation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments

from hf_dr.data.epochs import set_epoch, transform_of
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.errors import InvalidConfigError, MissingSoftLabelsError, TrainerArgumentsError
from hf_dr.models.students import PixelValuesClassifier, check_input_channels, check_model_num_classes
from hf_dr.train.losses import soft_target_loss, target_is_tempered

LABEL_NAMES = ["labels"]




def reinforced_training_args(output_dir: str, **kwargs: Any) -> TrainingArguments:
    """``TrainingArguments`` for a reinforced dataset: ``remove_unused_columns=False``, ``label_names=["labels"]``.

    Other keyword arguments pass through; asking for ``remove_unused_columns=True`` raises
    :class:`TrainerArgumentsError`. ``report_to`` defaults to ``"none"``.

    Example:
        >>> args = reinforced_training_args("out", per_device_train_batch_size=64, use_cpu=True)
        >>> args.remove_unused_columns, args.label_names
        (False, ['labels'])
    """
    if kwargs.get("remove_unused_columns"):
        raise TrainerArgumentsError(
            "remove_unused_columns=True drops the image and key columns the reinforced transform reads; it must be "
            "False for a dataset with hf_dr.ReinforcedTransform set"
        )
    label_names = kwargs.pop("label_names", LABEL_NAMES)
    kwargs.pop("remove_unused_columns", None)
    kwargs.setdefault("report_to", "none")
    args = TrainingArguments(output_dir=output_dir, remove_unused_columns=False, label_names=label_names, **kwargs)
    check_trainer_args(args)
    return args


def trainer_arguments(config: Any, output_dir: str, **kwargs: Any) -> TrainingArguments:
    """:func:`reinforced_training_args` from a :class:`hf_dr.TrainConfig`: the one recipe of :func:`hf_dr.fit` and of
    the Trainer (batch, accumulation, epochs or steps, peak lr with warmup then cosine to ``min_lr_ratio``: the
    schedule :func:`hf_dr.train.optim.build_scheduler` gives ``fit``, gradient clipping, precision, workers, seed,
    logging and checkpoint steps, trackers). Settings the Trainer cannot honour (an EMA of the weights; label
    smoothing, which soft targets do not take; a tracker instance, not a name) are refused, not dropped; build the
    optimizer with :func:`hf_dr.train.optim.build_optimizer` from the same config. Other keyword arguments pass
    through.

    The two count the same optimizer steps, so step the same learning rates, when their epochs have the same
    batches: ``fit`` drops an epoch's last partial batch when it is at most 10% of the rows
    (:func:`hf_dr.train.loop.training_dataloader`), the Trainer keeps it (its ``dataloader_drop_last`` would drop
    evaluation rows too).

    Example:
        >>> from hf_dr import TrainConfig
        >>> args = trainer_arguments(TrainConfig(epochs=3, batch_size=32, min_lr_ratio=0.1), "out", use_cpu=True)
        >>> args.num_train_epochs, args.per_device_train_batch_size, args.lr_scheduler_type.value, args.max_grad_norm
        (3, 32, 'cosine_with_min_lr', 0.0)
    """
    for name, fix in (("ema_decay", "the Trainer keeps no EMA of the weights: train with hf_dr.fit "
                       "(scripts/train.py --ema-decay)"), ("label_smoothing", "soft targets take no smoothing")):
        if getattr(config, name):
            raise TrainerArgumentsError(f"{name}={getattr(config, name)} cannot be honoured by the Trainer: {fix}; "
                                        "leave it out.")
    if any(not isinstance(tracker, str) for tracker in config.report_to):
        raise TrainerArgumentsError("report_to holds a tracker instance, which TrainingArguments cannot take: name "
                                    "the trackers ('tensorboard', ...), or pass your callback to the Trainer")
    length = {"max_steps": config.max_steps} if config.max_steps else {"num_train_epochs": config.epochs}
    schedule = {"lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": config.min_lr_ratio}}
    saving = {"save_strategy": "steps", "save_steps": config.save_every} if config.save_every else {
        "save_strategy": "no"}
    options = {"per_device_train_batch_size": config.batch_size, "learning_rate": config.lr,
               "gradient_accumulation_steps": config.gradient_accumulation_steps,
               "warmup_steps": config.warmup_fraction, "max_grad_norm": config.clip_grad_norm or 0.0,
               "bf16": config.mixed_precision == "bf16", "fp16": config.mixed_precision == "fp16",
               "dataloader_num_workers": config.num_workers, "seed": config.seed, "logging_steps": config.log_every,
               "report_to": list(config.report_to),
               **length, **schedule, **saving}
    return reinforced_training_args(output_dir, **{**options, **kwargs})


def check_trainer_args(args: TrainingArguments) -> None:
    """Raises :class:`TrainerArgumentsError` for arguments that break training on a ``set_transform`` dataset.

    Example:
        >>> check_trainer_args(TrainingArguments("out", report_to="none"))
        Traceback (most recent call last):
        ...
        hf_dr.errors.TrainerArgumentsError: TrainingArguments(remove_unused_columns=True) ...
    """
    if args.remove_unused_columns:
        raise TrainerArgumentsError(
            "TrainingArguments(remove_unused_columns=True) (the default) makes the Trainer drop the image and key "
            "columns the reinforced transform reads, and the first batch fails with a KeyError; build the arguments "
            "with hf_dr.reinforced_training_args(...) or pass remove_unused_columns=False, label_names=['labels']"
        )
    if args.label_smoothing_factor:
        raise TrainerArgumentsError(
            f"label_smoothing_factor={args.label_smoothing_factor} is ignored when the loss is compute_loss_func "
            "(soft targets need no smoothing); set it to 0"
        )
    if args.label_names is not None and list(args.label_names) != LABEL_NAMES:
        raise TrainerArgumentsError(
            f"label_names={args.label_names} but the reinforced transform returns the soft labels as 'labels'; pass "
            "label_names=['labels']"
        )


def trainer_epoch(args: TrainingArguments | None, state: Any, loader: Any = None) -> int:
    """The index of the epoch a Trainer is in (or about to start): the optimizer steps taken divided by the steps of
    an epoch, as the Trainer counts the epochs it skips when it resumes, when the training DataLoader has a length;
    else the integer part of ``state.epoch`` (a fraction: a resumed ``2.5`` is epoch 2, and ``2.9999999`` from float
    error at the end of epoch 2 is epoch 3).

    Example:
        >>> from types import SimpleNamespace
        >>> trainer_epoch(None, SimpleNamespace(epoch=2.5, global_step=15))
        2
        >>> trainer_epoch(None, SimpleNamespace(epoch=2.9999999, global_step=18))
        3
    """
    accumulation = getattr(args, "gradient_accumulation_steps", 1) or 1
    try:
        batches = len(loader) if loader is not None else 0
    except TypeError:  # an iterable dataset's DataLoader has no length
        batches = 0
    if batches and state.global_step is not None:
        return int(state.global_step) // max(math.ceil(batches / accumulation), 1)
    return max(math.floor((state.epoch or 0) + 1e-6), 0)


class ReinforcedEpochCallback(TrainerCallback):
    """Advances the epoch of the training dataset's transform at the start of every Trainer epoch.

    Works for :class:`hf_dr.ReinforcedTransform` and :class:`hf_dr.AugmentTransform`; the transform is found on the
    Trainer's training DataLoader, or given explicitly. The epoch is :func:`trainer_epoch`: a Trainer resumed from a
    checkpoint taken mid-epoch replays the records of that epoch for its rest.

    Args:
        transform (*optional*): the transform to advance; found on the training dataset when not given.

    Example:
        >>> from types import SimpleNamespace
        >>> from hf_dr import AugmentTransform
        >>> transform = AugmentTransform("rrc", size=28)
        >>> ReinforcedEpochCallback(transform).on_epoch_begin(None, SimpleNamespace(epoch=2.0, global_step=0), None)
        >>> transform.epoch
        2
    """

    def __init__(self, transform: Any = None) -> None:
        self.transform = transform

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        loader = kwargs.get("train_dataloader")
        epoch = trainer_epoch(args, state, loader)
        if self.transform is not None:
            self.transform.set_epoch(epoch)
            return
        dataset = getattr(loader, "dataset", None)
        if dataset is not None:
            set_epoch(dataset, epoch)


class ReinforcedLoss:
    """``compute_loss_func`` for a Trainer that also evaluates: soft-target KL while training, and cross-entropy
    on integer labels while evaluating (``Trainer.evaluate`` on a dataset with :class:`hf_dr.EvalTransform`).

    Integer labels *while training* still raise :class:`MissingSoftLabelsError`.

    Args:
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature (the paper uses 1).
        tempered_target (`bool`, *optional*, defaults to False): the soft targets already are at ``temperature``
            (:func:`hf_dr.train.losses.target_is_tempered`).
    """

    def __init__(self, temperature: float = 1.0, tempered_target: bool = False) -> None:
        if temperature <= 0:
            raise InvalidConfigError(f"temperature should be positive, but got {temperature} instead.")
        self.temperature, self.tempered_target = temperature, tempered_target

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        if labels is not None and not torch.is_floating_point(labels) and not torch.is_grad_enabled():
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
            return F.cross_entropy(logits.float(), labels.long())
        return soft_target_loss(outputs, labels, num_items_in_batch=num_items_in_batch, temperature=self.temperature,
                                tempered_target=self.tempered_target)


def compute_classification_metrics(eval_pred: Any) -> dict[str, float]:
    """``compute_metrics`` for ``Trainer``: top-1, NLL and ECE (15 bins) of the eval logits and integer labels."""
    from hf_dr.train.evaluation import classification_metrics

    logits, labels = eval_pred.predictions, eval_pred.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    metrics = classification_metrics(torch.as_tensor(np.asarray(logits)), torch.as_tensor(np.asarray(labels)).long())
    metrics.pop("num_samples")
    return metrics


def check_soft_label_dataset(dataset: Any) -> ReinforcedTransform | None:
    """Raises :class:`MissingSoftLabelsError` unless ``dataset`` yields dense soft ``labels``; returns its hook."""
    transform = transform_of(dataset)
    if isinstance(transform, ReinforcedTransform):
        return transform
    try:
        labels = dataset[0]["labels"]
    except (KeyError, TypeError, IndexError):
        labels = None
    if not (isinstance(labels, torch.Tensor) and torch.is_floating_point(labels) and labels.ndim == 1):
        raise MissingSoftLabelsError(
            "the training dataset does not yield dense soft 'labels'; set hf_dr.ReinforcedTransform on it "
            "(transform.attach(dataset)) before training with the soft-target loss"
        )
    return None


def reinforced_trainer(
    model: torch.nn.Module,
    args: TrainingArguments,
    train_dataset: Any,
    eval_dataset: Any = None,
    temperature: float = 1.0,
    channels_last: bool = False,
    **trainer_kwargs: Any,
) -> Trainer:
    """A ``transformers.Trainer`` that trains ``model`` on reinforced data, after checking every input.

    The Trainer is the documented recipe (see the module docstring): ``compute_loss_func`` = the soft-target loss,
    :class:`ReinforcedEpochCallback`, and ``compute_metrics`` = top-1 / NLL / ECE when ``eval_dataset`` is given.
    A model that does not take ``pixel_values=`` (a timm model) is wrapped in :class:`PixelValuesClassifier`.

    Args:
        model (`torch.nn.Module`): a transformers image classifier (``TimmWrapperForImageClassification``
            included) or a timm model.
        args (`TrainingArguments`): checked with :func:`check_trainer_args`.
        train_dataset (`datasets.Dataset`): a dataset with :class:`hf_dr.ReinforcedTransform` set.
        eval_dataset (`datasets.Dataset`, *optional*): integer labels (:class:`hf_dr.EvalTransform`).
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature.
        channels_last (`bool`, *optional*, defaults to `False`): channels-last inputs when wrapping a timm model.
        trainer_kwargs: passed to ``Trainer`` (``callbacks`` are kept and extended).

    Raises:
        TrainerArgumentsError: ``remove_unused_columns=True`` or other ``label_names``.
        MissingSoftLabelsError: a training dataset without soft labels.
        ClassCountMismatchError: a model whose head has another class count than the soft labels.

    Example (a timm student, 2 epochs on 4 bundled digits reinforced by a random ``test_resnet`` teacher):
        >>> import tempfile, timm
        >>> from hf_dr import ReinforcedTransform, load_run_records
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> train = ReinforcedTransform(load_run_records(run), size=32).attach(digits)
        >>> args = reinforced_training_args(tempfile.mkdtemp(), num_train_epochs=2, per_device_train_batch_size=2,
        ...                                 use_cpu=True, report_to="none", disable_tqdm=True)
        >>> trainer = reinforced_trainer(timm.create_model("test_resnet", num_classes=10), args, train_dataset=train)
        >>> trainer.train().global_step  # 2 batches per epoch, each sample's stored view of the epoch
        {'train_runtime': ..., 'epoch': '2'}
        4
    """
    check_trainer_args(args)
    transform = check_soft_label_dataset(train_dataset)
    if not isinstance(model, (PreTrainedModel, PixelValuesClassifier)):
        model = PixelValuesClassifier(model, channels_last=channels_last)
    if transform is not None:
        check_model_num_classes(model, transform.num_classes)
        check_input_channels(model, transform.image_mode, "the training data")
        if transform.output == "uint8":  # uint8 views and top-k targets: normalised and densified per batch
            trainer_kwargs.setdefault("data_collator", transform.collate(channels_last))
    callbacks = list(trainer_kwargs.pop("callbacks", None) or [])
    if not any(isinstance(c, ReinforcedEpochCallback) for c in callbacks):
        callbacks.append(ReinforcedEpochCallback(transform))
    if eval_dataset is not None:
        trainer_kwargs.setdefault("compute_metrics", compute_classification_metrics)
    return Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                   compute_loss_func=ReinforcedLoss(temperature, target_is_tempered(transform, temperature)),
                   callbacks=callbacks, **trainer_kwargs)
