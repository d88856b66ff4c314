"""Teacher fine-tuning (paper Sec. 2.3): M copies of one timm architecture, each fine-tuned from a pretrained
checkpoint on the target dataset with its own seed, evaluated alone and as an ensemble, and saved as a teacher spec.

The paper builds the CIFAR-100+, Flowers-102+ and Food-101+ teachers this way (4 x ResNet-152). Members differ by
seed: the new classifier head's initialisation, the data order and the augmentation draws. Each member trains on the
views :func:`hf_dr.reinforce` will show it (the policy's crop at the member's input size and interpolation, its own
normalisation), with cross-entropy and label smoothing, SGD or AdamW with warmup and cosine decay
(:func:`hf_dr.train.loop.fit`). The output folder holds::

    member-{i}.safetensors     the weights of member i (timm state dict; hf_dr metadata in the header)
    teacher_spec.json          the members as `hf-dr reinforce --teacher-spec` reads them
    finetune_metrics.json      the config, each member's training record and eval metrics, and the ensemble's

Example:
    >>> from hf_dr.train.finetune import FinetuneConfig, finetune_teacher
    >>> from hf_dr.train.finetune import finetune_train_config
    >>> config = FinetuneConfig("resnet152.tv2_in1k", num_members=4, image_size=224,
    ...                         train=finetune_train_config(epochs=10))
    >>> result = finetune_teacher(train, config, "teachers/cifar100", eval_dataset=test,
    ...                           image_column="img", label_column="fine_label")  # doctest: +SKIP
    >>> result.ensemble["top1"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import datasets
import torch

from hf_dr.augment.defaults import PLAIN_POLICY
from hf_dr.data.columns import check_columns, class_count
from hf_dr.data.schema import KEY_COLUMN
from hf_dr.errors import InvalidConfigError
from hf_dr.files import to_json_value, write_json_atomic
from hf_dr.models.members import create_member, member_data_config, member_spec
from hf_dr.train.loop import TRAIN_FIELDS, TrainConfig

logger = logging.getLogger(__name__)

SPEC_FILE = "teacher_spec.json"
METRICS_FILE = "finetune_metrics.json"


FINETUNE_TRAINING = {"epochs": 10, "batch_size": 64, "lr": 0.01, "label_smoothing": 0.1}


def finetune_train_config(**overrides: Any) -> TrainConfig:
    """The members' :class:`hf_dr.TrainConfig` by default: the paper's fine-tuning (SGD with Nesterov momentum,
    batch 64, learning rate 0.01, weight decay 5e-4, label smoothing 0.1, 5% warmup then cosine to zero, 10 epochs),
    with ``overrides``. Its ``seed`` is replaced by each member's.

    Example:
        >>> config = finetune_train_config(epochs=20)
        >>> config.epochs, config.batch_size, config.lr, config.label_smoothing
        (20, 64, 0.01, 0.1)
    """
    return TrainConfig.from_dict(overrides, defaults=TrainConfig(**FINETUNE_TRAINING))


@dataclass
class FinetuneConfig:
    """How :func:`finetune_teacher` builds and trains the members.

    Args:
        arch (`str`): timm name, with a pretrained tag for Hub weights (``"resnet152.tv2_in1k"``).
        num_members (`int`, *optional*, defaults to 4): ensemble size M.
        seeds (`tuple[int, ...]`, *optional*): one seed per member; ``0 .. M-1`` by default.
        weights (`str`, *optional*): local pretrained weights of ``arch`` (``.safetensors``, ``.pth``), not the Hub's.
        pretrained (`bool`, *optional*, defaults to True): False starts from random weights (tests, ablations).
        image_size (`int`, *optional*): training and labelling resolution; the checkpoint's input size by default.
        mean, std (`tuple[float, ...]`, *optional*): the members' input normalisation, in training and in the teacher
            spec (so the reinforcement normalises as the members learned); the checkpoint's by default (ImageNet's
            for most timm models: pass your data's for data unlike it, e.g. one-channel scans).
        policy (`str` or `dict`, *optional*, defaults to ``"rrc"``): augmentation policy without mixing (a registered
            name, a ``.json`` file or an :meth:`~hf_dr.AugmentationPolicy.config`); ``"rrc+ra_re"`` trains on views
            like the reinforcement's.
        member_tolerance (`float`, *optional*, defaults to 0.05): the members' sanity check, with an eval split: a
            member whose top-1 is further than this below the best member's is reported and left out of the teacher
            spec and the ensemble (a collapsed member would flatten every stored label); None keeps every member.
        train (`TrainConfig`, *optional*, defaults to :func:`finetune_train_config`): each member's optimisation
            (epochs, batch size, optimizer, learning rate, weight decay, warmup, label smoothing, channels-last,
            DataLoader workers); its ``seed`` is replaced by the member's.
        preload (`bool`, *optional*, defaults to False): decode the images once (small datasets that fit in memory).

    Example:
        >>> config = FinetuneConfig("test_resnet", num_members=2, train=finetune_train_config(epochs=3))
        >>> config.member_seeds(), config.train_config(1).seed, config.train_config(1).epochs
        ([0, 1], 1, 3)
        >>> FinetuneConfig.from_dict(config.to_dict()) == config
        True
    """

    arch: str
    num_members: int = 4
    seeds: tuple[int, ...] | None = None
    weights: str | None = None
    pretrained: bool = True
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    policy: str | dict[str, Any] = PLAIN_POLICY
    member_tolerance: float | None = 0.05
    train: TrainConfig = field(default_factory=finetune_train_config)
    preload: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.num_members, int) or self.num_members < 1:
            raise InvalidConfigError(f"num_members should be a positive integer, but got {self.num_members!r}.")
        if self.seeds is not None:
            self.seeds = tuple(int(s) for s in self.seeds)
            if len(self.seeds) != self.num_members or len(set(self.seeds)) != len(self.seeds):
                raise InvalidConfigError(f"seeds should be {self.num_members} distinct integers (one per member), "
                                         f"but got {list(self.seeds)}.")
        if self.weights is not None and not self.pretrained:
            raise InvalidConfigError("weights= and pretrained=False contradict each other; pass one of them.")
        if self.image_size is not None and self.image_size < 1:
            raise InvalidConfigError(f"image_size should be a positive integer, but got {self.image_size}.")
        self.mean = None if self.mean is None else tuple(float(v) for v in self.mean)
        self.std = None if self.std is None else tuple(float(v) for v in self.std)
        if self.std is not None and min(self.std) <= 0:
            raise InvalidConfigError(f"std should be positive, but got {list(self.std)}.")
        if isinstance(self.train, dict):
            self.train = finetune_train_config(**self.train)
        if not isinstance(self.train, TrainConfig):
            raise InvalidConfigError(f"train should be a TrainConfig, but got {type(self.train).__name__}.")

    def member_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else list(range(self.num_members))

    def train_config(self, seed: int) -> TrainConfig:
        """The :class:`hf_dr.TrainConfig` of the member trained with ``seed``."""
        return replace(self.train, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, the training ones under ``"train"`` (what ``finetune_metrics.json`` records)."""
        return to_json_value(asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
        """The inverse of :meth:`to_dict`. Also reads the flat layout of earlier ``finetune_metrics.json`` files
        (``epochs``, ``lr``... next to ``arch``), whose training keys override those under ``"train"``.

        Example:
            >>> FinetuneConfig.from_dict({"arch": "test_resnet", "epochs": 2, "lr": 0.1}).train.batch_size
            64
        """
        values = dict(values)
        train = values.pop("train", {})
        train = train.to_dict() if isinstance(train, TrainConfig) else dict(train)
        train.update({k: values.pop(k) for k in list(values) if k in TRAIN_FIELDS})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidConfigError(f"unknown fine-tuning settings {unknown}; valid ones are {sorted(known)} and "
                                     f"the training settings {sorted(TRAIN_FIELDS)}")
        return cls(**values, train=finetune_train_config(**train))


@dataclass
class FinetuneResult:
    """What :func:`finetune_teacher` wrote: the folder, the spec file, one record per member, the ensemble's
    eval metrics (None without an eval split) and its calibration (None without a calibration split)."""

    output_dir: str
    spec_path: str
    members: list[dict[str, Any]] = field(default_factory=list)
    ensemble: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- data ------------------------------------------------------------------------------------------------------------
def _num_classes(dataset: datasets.Dataset, label_column: str, num_classes: int | None) -> int:
    """``num_classes``, else the label column's ``ClassLabel`` count; refuses a missing or contradicting count."""
    found = class_count(dataset, label_column)
    if num_classes is None and found is None:
        raise InvalidConfigError(f"column {label_column!r} is not a ClassLabel; pass num_classes= (--num-classes)")
    if num_classes is not None and found is not None and num_classes != found:
        raise InvalidConfigError(f"num_classes={num_classes} but column {label_column!r} has {found} classes")
    return int(num_classes or found)


def _with_keys(dataset: datasets.Dataset, image_column: str, key_column: str | None) -> tuple[datasets.Dataset, str]:
    """The dataset and a key column for the per-sample augmentation seeds (a content hash when there is none)."""
    if key_column is not None:
        return dataset, key_column
    from hf_dr.data.source_keys import scan_keys

    name = KEY_COLUMN if KEY_COLUMN not in dataset.column_names else "_hf_dr_key"
    return dataset.add_column(name, scan_keys(dataset, image_column, None)), name


def _training_data(dataset: datasets.Dataset, data_config: dict[str, Any], config: FinetuneConfig, seed: int,
                   columns: dict[str, str]) -> Any:
    from hf_dr.augment.registry import as_policy
    from hf_dr.data.preloaded import PreloadedDataset
    from hf_dr.data.transforms import AugmentTransform
    from hf_dr.generate.render import default_image_mode, policy_for_view

    policy = policy_for_view(as_policy(config.policy), data_config["interpolation"])
    mode = default_image_mode([data_config["input_size"][0]])  # the member's views, as reinforce will show them
    transform = AugmentTransform(policy, size=data_config["input_size"][1:], mean=data_config["mean"],
                                 std=data_config["std"], seed=seed, image_mode=mode, **columns)
    return PreloadedDataset(dataset, transform) if config.preload else transform.attach(dataset.with_format(None))


def _eval_data(dataset: datasets.Dataset, data_config: dict[str, Any], preload: bool, image_column: str,
               label_column: str) -> Any:
    from hf_dr.data.preloaded import PreloadedDataset
    from hf_dr.data.transforms import EvalTransform
    from hf_dr.generate.render import default_image_mode

    transform = EvalTransform(data_config=data_config, image_column=image_column, label_column=label_column,
                              image_mode=default_image_mode([data_config["input_size"][0]]))
    return PreloadedDataset(dataset, transform) if preload else transform.attach(dataset.with_format(None))


# -- the run ---------------------------------------------------------------------------------------------------------
def finetune_teacher(
    train_dataset: datasets.Dataset,
    config: FinetuneConfig,
    output_dir: str,
    eval_dataset: datasets.Dataset | None = None,
    *,
    image_column: str = "image",
    label_column: str = "label",
    key_column: str | None = None,
    num_classes: int | None = None,
    progress: bool = False,
    calibration_dataset: datasets.Dataset | None = None,
) -> FinetuneResult:
    """Fine-tunes ``config.num_members`` members, evaluates each and their ensemble, and saves them as a teacher.

    Args:
        train_dataset (`datasets.Dataset`): the target dataset's training rows (an ``Image`` and a label column).
        config (`FinetuneConfig`): architecture, checkpoint, seeds and optimisation.
        output_dir (`str`): where ``member-{i}.safetensors``, ``teacher_spec.json`` and ``finetune_metrics.json`` go.
        eval_dataset (`datasets.Dataset`, *optional*): held-out rows with the same columns; top-1, NLL and ECE of
            each member and of the ensemble (averaged probabilities, as :class:`~hf_dr.models.teacher.Teacher`
            averages them).
        image_column, label_column, key_column (`str`, *optional*): column names; without a key column the
            augmentation seeds use a hash of the image bytes.
        num_classes (`int`, *optional*): the class count; read from a ``ClassLabel`` label column by default.
        progress (`bool`, *optional*, defaults to False): tqdm bars while training.
        calibration_dataset (`datasets.Dataset`, *optional*): held-out rows (not the eval split a student is judged
            on) to fit the ensemble's temperature on (:mod:`hf_dr.models.teacher_quality`); every kept member of the
            spec records it, and the ensemble's eval metrics are those of the calibrated teacher (the uncalibrated
            ones under ``"uncalibrated"``).

    Returns:
        `FinetuneResult`: pass ``result.spec_path`` to :func:`hf_dr.reinforce` (``teacher=load_teacher_spec(...)``)
        or to ``hf-dr reinforce --teacher-spec``. With an eval split the spec holds the members that pass the
        sanity check (``config.member_tolerance``); each record says whether it was ``kept``.

    Example (2 members of a randomly initialised ``test_resnet``, one epoch each on 16 bundled digits as RGB):
        >>> import tempfile
        >>> from hf_dr import load_teacher_spec
        >>> from hf_dr.data.bundled import load_bundled
        >>> digits = load_bundled("digits").select(range(16))  # grayscale scans, seen as RGB by 3-channel members
        >>> config = FinetuneConfig("test_resnet", num_members=2, pretrained=False, image_size=32,
        ...                         train=finetune_train_config(epochs=1, batch_size=8))
        >>> result = finetune_teacher(digits, config, tempfile.mkdtemp(), eval_dataset=digits)
        >>> [member.input_size for member in load_teacher_spec(result.spec_path)]
        [(3, 32, 32), (3, 32, 32)]
        >>> sorted(result.ensemble)
        [...'top1'...]
    """
    from hf_dr.models.teacher_quality import calibrate_members, screen_members
    from hf_dr.train.evaluation import classification_metrics

    for dataset in (train_dataset, eval_dataset, calibration_dataset):
        if dataset is not None:
            check_columns(dataset, image_column=image_column, label_column=label_column)
    num_classes = _num_classes(train_dataset, label_column, num_classes)
    train_dataset, key_name = _with_keys(train_dataset, image_column, key_column)
    columns = {"image_column": image_column, "label_column": label_column, "key_column": key_name}
    os.makedirs(output_dir, exist_ok=True)
    result = FinetuneResult(output_dir=output_dir, spec_path=os.path.join(output_dir, SPEC_FILE))
    member_logits, labels, calibration_logits, calibration_labels = [], None, [], None
    for index, seed in enumerate(config.member_seeds()):
        path = os.path.join(output_dir, f"member-{index}.safetensors")
        model, data_config, record = _finetune_member(train_dataset, config, seed, num_classes, columns, path,
                                                      progress)
        if eval_dataset is not None:
            logits, labels = _member_logits(model, eval_dataset, data_config, config, columns)
            record["metrics"] = classification_metrics(logits, labels)
            member_logits.append(logits)
            logger.info("member %d/%d (seed %d): top-1 %.4f", index + 1, config.num_members, seed,
                        record["metrics"]["top1"])
        if calibration_dataset is not None:
            logits, calibration_labels = _member_logits(model, calibration_dataset, data_config, config, columns)
            calibration_logits.append(logits)
        result.members.append(record)
    kept = screen_members(result.members, config.member_tolerance)
    if calibration_logits:
        result.calibration = calibrate_members(result.members, [calibration_logits[i] for i in kept],
                                               calibration_labels, kept)
    if member_logits:
        result.ensemble = _ensemble_metrics([member_logits[i] for i in kept], labels, result.calibration)
    _write_outputs(result, config, num_classes)
    return result


def _ensemble_metrics(logits: list[torch.Tensor], labels: torch.Tensor, calibration: dict[str, Any] | None
                      ) -> dict[str, Any]:
    """The kept members' ensemble on the eval rows by the teacher's rule (the mean of the probabilities, at the
    calibrated temperature), with the uncalibrated metrics beside them after a calibration."""
    from hf_dr.models.students import ensemble_logits
    from hf_dr.train.evaluation import classification_metrics

    temperature = (calibration or {}).get("temperature", 1.0)
    metrics = classification_metrics(ensemble_logits(z.float() / temperature for z in logits), labels)
    metrics["members"] = len(logits)
    if calibration:
        metrics["uncalibrated"] = classification_metrics(ensemble_logits(logits), labels)
    logger.info("ensemble of %d: top-1 %.4f, ECE %.4f", len(logits), metrics["top1"], metrics["ece"])
    return metrics


def _finetune_member(train_dataset: datasets.Dataset, config: FinetuneConfig, seed: int, num_classes: int,
                     columns: dict[str, str], path: str, progress: bool
                     ) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """Trains the member of ``seed`` on its own views and saves it to ``path``; returns it, its data config and its
    record (seed, spec, training summary)."""
    from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint
    from hf_dr.train.loop import fit

    model = create_member(config, num_classes, seed)
    data_config = member_data_config(model, config.image_size, config.mean, config.std)
    train = fit(model, _training_data(train_dataset, data_config, config, seed, columns), config.train_config(seed),
                num_classes=num_classes, progress=progress)
    save_checkpoint(model, path, {**checkpoint_model_metadata(model, config.arch, data_config), "seed": seed})
    record = {"seed": seed, "spec": member_spec(config.arch, path, num_classes, data_config),
              "train": {"steps": train.steps, "wall_time": train.wall_time,
                        "final_loss": train.history[-1]["loss"] if train.history else None}}
    return model, data_config, record


def _member_logits(model: torch.nn.Module, eval_dataset: datasets.Dataset, data_config: dict[str, Any],
                   config: FinetuneConfig, columns: dict[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The member's logits and the labels of ``eval_dataset``, at the member's resolution and normalisation."""
    from hf_dr.train.evaluation import predict

    data = _eval_data(eval_dataset, data_config, config.preload, columns["image_column"], columns["label_column"])
    return predict(model, data, batch_size=max(256, config.train.batch_size), num_workers=config.train.num_workers,
                   channels_last=config.train.channels_last)


def _write_outputs(result: FinetuneResult, config: FinetuneConfig, num_classes: int) -> None:
    """``teacher_spec.json`` and ``finetune_metrics.json``, each written atomically."""
    write_json_atomic(result.spec_path, [m["spec"] for m in result.members if m.get("kept", True)])
    metrics = {"config": config.to_dict(), "num_classes": num_classes, "members": result.members,
               "ensemble": result.ensemble, "calibration": result.calibration}
    write_json_atomic(os.path.join(result.output_dir, METRICS_FILE), metrics)
