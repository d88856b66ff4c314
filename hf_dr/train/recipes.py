"""The training recipe: :class:`TrainConfig`, the hyperparameters of :func:`hf_dr.fit` (and, mapped by
:func:`hf_dr.train.trainer.trainer_arguments`, of the transformers Trainer), and the paper's student recipes as named
configs (:data:`RECIPES`, :func:`get_recipe`; ``scripts/train.py --recipe NAME``).

The named recipes are the ImageNet+ rows of Table 20 of the paper (Faghri et al., ICCV 2023, Appendix G; "we use
the same hyperparameters on ImageNet and ImageNet+", KL loss at temperature 1, no label smoothing, cosine schedule
to zero) and the "+" rows of Table 23 (fine-tuning an ImageNet+ checkpoint on CIFAR-100+). Warmups are given in
epochs in the paper: a recipe keeps its warmup epochs when ``epochs`` is overridden.

Learning rates in the paper are for its total batch (per-device batch x devices x accumulation). When the total batch
of a run differs and no ``lr`` is given, :func:`get_recipe` rescales the learning rate the way timm's ``train.py``
does (``--lr-base``): linearly with the batch for SGD, with its square root for AdamW; an explicit ``lr`` is used as
given.

Imports: ``accelerate`` (when checking ``report_to``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from hf_dr.errors import InvalidConfigError
from hf_dr.train.tracking import check_report_to

logger = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`fit` (saved as JSON next to a run's outputs).

    Args:
        epochs (`int`, *optional*, defaults to 10): passes over the training set.
        max_steps (`int`, *optional*): optimizer steps; overrides ``epochs`` when set.
        batch_size (`int`, *optional*, defaults to 128): samples per forward pass.
        gradient_accumulation_steps (`int`, *optional*, defaults to 1): forward passes per optimizer step.
        optimizer (`str`, *optional*, defaults to ``"sgd"``): ``"sgd"`` (momentum, Nesterov) or ``"adamw"``.
        lr (`float`, *optional*, defaults to 0.1): peak learning rate.
        momentum (`float`, *optional*, defaults to 0.9): SGD momentum.
        weight_decay (`float`, *optional*, defaults to 5e-4): weight decay (not applied to norms and biases).
        warmup_fraction (`float`, *optional*, defaults to 0.05): linear warmup, as a fraction of the steps.
        min_lr_ratio (`float`, *optional*, defaults to 0.0): final learning rate over the peak.
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature (the paper uses 1).
        label_smoothing (`float`, *optional*, defaults to 0.0): for hard-label (cross-entropy) runs only.
        clip_grad_norm (`float`, *optional*): clip the gradient norm.
        num_workers (`int`, *optional*, defaults to 0): DataLoader workers.
        seed (`int`, *optional*, defaults to 0): seed of the initialisation and the shuffling.
        channels_last (`bool`, *optional*, defaults to `False`): channels-last inputs and weights (faster CNNs on
            CPU).
        mixed_precision (`str`, *optional*, defaults to ``"no"``): ``"bf16"`` or ``"fp16"`` autocast through
            accelerate (``"fp16"`` needs a GPU); ``"no"`` trains in float32.
        ema_decay (`float`, *optional*): keep an exponential moving average of the weights (timm's ``ModelEmaV3``,
            updated every optimizer step); :func:`fit` evaluates it too and returns it.
        save_every (`int`, *optional*): optimizer steps between checkpoints of :func:`fit` (with its ``output_dir``),
            from which a killed run resumes exactly (:mod:`hf_dr.train.resume`).
        log_every (`int`, *optional*, defaults to 50): optimizer steps between loss records.
        report_to (`list[str]`, *optional*, defaults to ``["none"]``): accelerate trackers that receive the loss, the
            learning rate and the final metrics (``"tensorboard"``, ``"wandb"``, ..., ``"all"`` installed ones,
            ``"none"``; from Python also ``accelerate.tracking.GeneralTracker`` instances); as in transformers 5's
            ``TrainingArguments``, none by default. A tracker that is not installed is refused before training
            (hf_dr.train.tracking).

    Example:
        >>> config = TrainConfig(epochs=5, optimizer="adamw", lr=1e-3)
        >>> TrainConfig.from_dict(config.to_dict()) == config
        True
        >>> TrainConfig(optimizer="lamb")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: optimizer should be one of ('sgd', 'adamw'), but got 'lamb' instead.
    """

    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 128
    gradient_accumulation_steps: int = 1
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.0
    temperature: float = 1.0
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    num_workers: int = 0
    seed: int = 0
    channels_last: bool = False
    mixed_precision: str = "no"
    ema_decay: float | None = None
    save_every: int | None = None
    log_every: int = 50
    report_to: list[str] = field(default_factory=lambda: ["none"])

    def __post_init__(self) -> None:
        self.report_to = list(self.report_to) if isinstance(self.report_to, (list, tuple)) else [self.report_to]
        check_report_to(self.report_to, installed=False)  # the names; fit checks that they are installed
        if self.optimizer not in OPTIMIZERS:
            raise InvalidConfigError(f"optimizer should be one of {OPTIMIZERS}, but got {self.optimizer!r} instead.")
        for name in ("epochs", "batch_size", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise InvalidConfigError(f"{name} should be a positive integer, but got {getattr(self, name)}.")
        if self.save_every is not None and self.save_every < 1:
            raise InvalidConfigError(f"save_every should be a positive integer, but got {self.save_every} instead.")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidConfigError(f"max_steps should be a positive integer, but got {self.max_steps} instead.")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise InvalidConfigError(f"warmup_fraction should be in [0, 1), but got {self.warmup_fraction}.")
        if self.temperature <= 0:
            raise InvalidConfigError(f"temperature should be positive, but got {self.temperature} instead.")
        if self.mixed_precision not in PRECISIONS:
            raise InvalidConfigError(f"mixed_precision should be one of {PRECISIONS}, but got "
                                     f"{self.mixed_precision!r} instead.")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise InvalidConfigError(f"ema_decay should be in (0, 1), but got {self.ema_decay} instead.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (a tracker instance of ``report_to`` by its name)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["report_to"] = [getattr(tracker, "name", tracker) for tracker in self.report_to]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], defaults: TrainConfig | None = None) -> TrainConfig:
        """The inverse of :meth:`to_dict`: ``values`` replace the fields of ``defaults`` (``TrainConfig()`` when not
        given). Unknown keys are refused, naming the valid ones.

        Example:
            >>> TrainConfig.from_dict(TrainConfig(epochs=3).to_dict()) == TrainConfig(epochs=3)
            True
            >>> TrainConfig.from_dict({"lr": 0.5}, defaults=TrainConfig(epochs=3)).epochs
            3
        """
        unknown = sorted(set(values) - TRAIN_FIELDS)
        if unknown:
            raise InvalidConfigError(f"unknown training settings {unknown}; valid ones are {sorted(TRAIN_FIELDS)}")
        return replace(defaults if defaults is not None else cls(), **values)


TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class Recipe:
    """One of the paper's training recipes.

    Args:
        student (`str`): the timm architecture the paper trained with it (``--arch``).
        source (`str`): where in the paper the numbers come from.
        batch_size (`int`): the paper's total batch (all devices, accumulation included).
        warmup_epochs (`float`): the linear warmup, in epochs.
        settings (`dict`): the other :class:`TrainConfig` fields it sets (optimizer, lr, weight decay, epochs, ...).
        notes (`str`, *optional*): what the run needs besides (initial weights, input size).
    """

    student: str
    source: str
    batch_size: int
    warmup_epochs: float
    settings: dict[str, Any]
    notes: str = ""


_SGD = {"optimizer": "sgd", "momentum": 0.9}
_ADAMW = {"optimizer": "adamw"}  # betas (0.9, 0.999): timm's defaults
_FINETUNE = "start from an ImageNet+ checkpoint (--init-from); inputs resized to 224 (CIFAR-100 padded by 16)"
RECIPES: dict[str, Recipe] = {
    # Table 20, "ResNet / ImageNet+": SGD+Mom=0.9, batch 1024, lr 0.4, warmup 5, weight decay 1e-4; 300 epochs
    # (Tables 4 and 5 report 150, 300 and 1000; 300: 80.6% top-1 for ResNet-50)
    "resnet50-imagenet-plus": Recipe("resnet50", "Table 20 (ResNet, ImageNet+); epochs: Table 4", 1024, 5,
                                     {**_SGD, "lr": 0.4, "weight_decay": 1e-4, "epochs": 300}),
    # Table 20, "MobileNetV3 / ImageNet+": SGD+Mom=0.9, batch 1024, lr 0.4, warmup 3, weight decay 4e-5; 300 epochs
    "mobilenetv3-imagenet-plus": Recipe("mobilenetv3_large_100", "Table 20 (MobileNetV3, ImageNet+); epochs: Table 4",
                                        1024, 3, {**_SGD, "lr": 0.4, "weight_decay": 4e-5, "epochs": 300}),
    # Table 20, "ViT / ImageNet+": AdamW (0.9, 0.999), batch 1024, lr 0.001, warmup 5, weight decay 0.05; 300 epochs
    # (Table 5: ViT-Tiny/Small/Base at 300)
    "vit-imagenet-plus": Recipe("vit_small_patch16_224", "Table 20 (ViT, ImageNet+); epochs: Table 5", 1024, 5,
                                {**_ADAMW, "lr": 0.001, "weight_decay": 0.05, "epochs": 300}),
    # Table 20, "SwinTransformer / ImageNet+": as ViT; 300 epochs (Table 4)
    "swin-imagenet-plus": Recipe("swin_tiny_patch4_window7_224", "Table 20 (SwinTransformer, ImageNet+); epochs: "
                                 "Table 4", 1024, 5, {**_ADAMW, "lr": 0.001, "weight_decay": 0.05, "epochs": 300}),
    # Table 23, ResNet-50 "+" row (pretrained on ImageNet+, fine-tuned on CIFAR-100+): SGD+Mom=0.9, batch 256,
    # lr 0.002, no warmup, weight decay 5e-4; 1000 epochs, the longest of App. D's 100/400/1000 ("models trained
    # on reinforced datasets benefit from longer training")
    "resnet50-cifar100-plus": Recipe("resnet50", "Table 23 (ResNet-50, +); epochs: Appendix D", 256, 0,
                                     {**_SGD, "lr": 0.002, "weight_decay": 5e-4, "epochs": 1000}, _FINETUNE),
    # Table 23, MobileNetV3-Large "+" row: as ResNet-50
    "mobilenetv3-cifar100-plus": Recipe("mobilenetv3_large_100", "Table 23 (MobileNetV3-Large, +); epochs: "
                                        "Appendix D", 256, 0, {**_SGD, "lr": 0.002, "weight_decay": 5e-4,
                                                                "epochs": 1000}, _FINETUNE),
    # Table 23, SwinTransformer-Tiny "+" row: AdamW (0.9, 0.999), batch 256, lr 1e-5, warmup 5, weight decay 0.05
    "swin-cifar100-plus": Recipe("swin_tiny_patch4_window7_224", "Table 23 (SwinTransformer-Tiny, +); epochs: "
                                 "Appendix D", 256, 5, {**_ADAMW, "lr": 1e-5, "weight_decay": 0.05, "epochs": 1000},
                                 _FINETUNE),
}


def scaled_lr(lr: float, optimizer: str, total_batch: int, reference_batch: int) -> float:
    """``lr`` (tuned for ``reference_batch``) for ``total_batch``: linear in the batch for SGD, square root for
    AdamW, as timm's ``train.py`` scales ``--lr-base``.

    Example:
        >>> scaled_lr(0.4, "sgd", 256, 1024), scaled_lr(0.001, "adamw", 256, 1024)
        (0.1, 0.0005)
    """
    ratio = total_batch / reference_batch
    return lr * (ratio if optimizer == "sgd" else math.sqrt(ratio))


def get_recipe(name: str, num_processes: int = 1, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of the recipe ``name`` (:data:`RECIPES`), with ``overrides`` (TrainConfig fields)
    replacing its values.

    Unless ``batch_size`` (per process) is overridden, the recipe's total batch is split over ``num_processes`` and
    ``gradient_accumulation_steps``; when the run's total batch differs from the recipe's and no ``lr`` is given,
    the learning rate follows it (:func:`scaled_lr`) and the change is logged. Its warmup stays ``warmup_epochs``
    of the (possibly overridden) epochs unless ``warmup_fraction`` is given.

    Raises:
        InvalidConfigError: an unknown recipe (the known ones are named), an unknown override, or a total batch
            that ``num_processes`` does not divide.

    Example:
        >>> config = get_recipe("resnet50-imagenet-plus")
        >>> config.optimizer, config.lr, config.batch_size, config.weight_decay, config.epochs
        ('sgd', 0.4, 1024, 0.0001, 300)
        >>> round(config.warmup_fraction * config.epochs, 6)  # Table 20: 5 warmup epochs
        5.0
        >>> get_recipe("resnet50-imagenet-plus", batch_size=128, gradient_accumulation_steps=2).lr  # total 256
        0.1
        >>> get_recipe("resnet50-imagenet-plus", gradient_accumulation_steps=8).batch_size  # 128 x 8: lr 0.4
        128
        >>> get_recipe("resnet50-imagenet-plus", batch_size=128, lr=0.3).lr
        0.3
        >>> get_recipe("resnet50-imagenet-plus", num_processes=8).batch_size  # 8 x 128 = the paper's 1024
        128
    """
    if name not in RECIPES:
        raise InvalidConfigError(f"unknown recipe {name!r}; known recipes are {sorted(RECIPES)}")
    recipe = RECIPES[name]
    values = {**recipe.settings, **overrides}
    accumulation = values.get("gradient_accumulation_steps", 1)
    if "batch_size" not in overrides:
        if recipe.batch_size % (num_processes * accumulation):
            raise InvalidConfigError(f"recipe {name!r}: its total batch {recipe.batch_size} does not split over "
                                     f"{num_processes} processes x {accumulation} accumulation steps; pass "
                                     "--batch-size (per process)")
        values["batch_size"] = recipe.batch_size // (num_processes * accumulation)
    total = values["batch_size"] * accumulation * num_processes
    if total != recipe.batch_size and "lr" not in overrides:
        values["lr"] = scaled_lr(recipe.settings["lr"], values["optimizer"], total, recipe.batch_size)
        logger.info("recipe %s: lr %g is for a total batch of %d; this run's total batch is %d, lr %g (%s scaling; "
                    "pass --lr to set it)", name, recipe.settings["lr"], recipe.batch_size, total, values["lr"],
                    "linear" if values["optimizer"] == "sgd" else "square-root")
    if "warmup_fraction" not in overrides:
        if recipe.warmup_epochs >= values["epochs"]:
            raise InvalidConfigError(f"recipe {name!r} warms up for {recipe.warmup_epochs} epochs, not fewer than "
                                     f"its {values['epochs']} epochs: pass --warmup-fraction (of the steps)")
        values["warmup_fraction"] = recipe.warmup_epochs / values["epochs"]
    return TrainConfig.from_dict(values)
