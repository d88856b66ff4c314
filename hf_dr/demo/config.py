"""The demo's settings: :class:`DemoConfig`, holding the teachers' and the students' :class:`hf_dr.TrainConfig`.

``demo_config.json`` records a run's settings with the two training configs nested under ``"teacher"`` and
``"student"``. :meth:`DemoConfig.from_dict` also reads the flat layout of earlier records (``teacher_epochs``,
``teacher_lr``, ``epochs``, ``lr``... beside the other settings) and the flags of ``hf-dr demo``, which use the same
names: ``teacher_<field>`` sets a field of the teachers' config, ``<field>`` or ``student_<field>`` one of the
students'.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from hf_dr.data.fashion_mnist import DEFAULT_ROOT
from hf_dr.errors import InvalidConfigError
from hf_dr.files import to_json_value
from hf_dr.train.loop import TRAIN_FIELDS, TrainConfig

ARMS = ("plain", "reinforced", "online_kd")
ROLES = ("teacher", "student")

# Each member: 4 epochs (at least min_teacher_steps steps) over the training split, on views of the policy, with
# cross-entropy, SGD (Nesterov) at 0.1, cosine.
TEACHER_TRAINING = {"epochs": 4, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "channels_last": True,
                    "log_every": 10_000}
# Every arm: 60 epochs over the subset (at least min_student_steps steps), SGD (Nesterov) at 0.05 with 20% warmup
# and cosine, distillation at T = 1. Measured on digits (3 seeds): SGD at 0.1 with 5% warmup spread plain students
# +-2.2 points (one near collapse); at 0.05 with 20% warmup +-0.3.
STUDENT_TRAINING = {"epochs": 60, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4,
                    "warmup_fraction": 0.2, "temperature": 1.0, "channels_last": True, "log_every": 10_000}
DEFAULT_SUBSET_SIZE = 2500
MIN_STEPS_PER_EPOCH = 4
MIN_NUM_SAMPLES = 20
QUICK = {"subset_size": 512, "test_size": 1000, "num_teachers": 2, "teacher_train_size": 4096, "num_samples": 3,
         "seeds": [0, 1], "kd_seeds": [0], "teacher": {"epochs": 1, "lr": 0.02}, "student": {"epochs": 2},
         "min_teacher_steps": 0, "min_student_steps": 0}


def teacher_train_config(**overrides: Any) -> TrainConfig:
    """The teachers' :class:`hf_dr.TrainConfig` by default (:data:`TEACHER_TRAINING`), with ``overrides``."""
    return TrainConfig.from_dict(overrides, defaults=TrainConfig(**TEACHER_TRAINING))


def student_train_config(**overrides: Any) -> TrainConfig:
    """The students' :class:`hf_dr.TrainConfig` by default (:data:`STUDENT_TRAINING`), with ``overrides``."""
    return TrainConfig.from_dict(overrides, defaults=TrainConfig(**STUDENT_TRAINING))


@dataclass
class DemoConfig:
    """Every setting of the demo (written to ``demo_config.json`` next to its outputs).

    Args:
        output_dir (`str`, *optional*, defaults to ``"runs/demo"``): where everything is written.
        dataset (`str`, *optional*, defaults to ``"fashion-mnist"``): any image-classification dataset: a bundled one
            (``fashion-mnist``, ``digits``, ``shapes``; :mod:`hf_dr.data.bundled`), a Hub id, a local folder
            (imagefolder, Parquet, ``save_to_disk``) or a Parquet file.
        train_split, test_split (`str`, *optional*, defaults to ``"train"`` and ``"test"``): its splits; without a
            test split, ``test_size`` (20% by default) training rows are held out (:mod:`hf_dr.demo.data`).
        image_column, label_column (`str`, *optional*, defaults to ``"image"`` and ``"label"``): its columns (the
            label a ``ClassLabel``).
        key_column (`str`, *optional*): a column of unique sample keys; a hash of the image bytes when not set.
        image_size (`int`, *optional*, defaults to 28): the resolution of every teacher and student.
        data_root (`str`, *optional*): folder of the Fashion-MNIST idx files (Debian's by default).
        subset_size (`int`, *optional*): images of the reinforced (and student) training set: by default 2500, at
            most a fifth of the training rows.
        test_size (`int`, *optional*): test images to evaluate on (the whole test split when not set).
        teacher_arch (`str`, *optional*, defaults to ``"hf_dr_cnn_fc"``): timm name of each teacher.
        num_teachers (`int`, *optional*, defaults to 4): ensemble members (different seeds).
        teacher_train_size (`int`, *optional*): images the teachers learn from (the whole training split when not
            set).
        teacher (`TrainConfig`, *optional*, defaults to :func:`teacher_train_config`): the teachers' training by
            :func:`hf_dr.train.finetune.finetune_teacher` (on views of ``policy``, cross-entropy): 4 epochs, SGD at
            0.1, cosine. Its ``seed`` is replaced by each member's.
        min_teacher_steps (`int`, *optional*, defaults to 1000): the teachers train for at least this many steps
            (more epochs on a small training split: 4 epochs of 1,297 digits are 40 steps).
        member_tolerance (`float`, *optional*, defaults to 0.05): a member whose test top-1 is further than this
            (and 3 standard errors) below the best member's is reported and left out of the ensemble.
        calibrate_teacher (`bool`, *optional*, defaults to True): fit the ensemble's temperature on held-out
            training rows (:mod:`hf_dr.models.teacher_quality`), so the stored probabilities are calibrated.
        calibration_size (`int`, *optional*): those rows (20% of the training split, at most 2,000, by default).
        policy (`str`, *optional*, defaults to ``"rrc"``): augmentation policy of reinforcement and plain training.
        crop_scale (`tuple[float, float]`, *optional*, defaults to ``(0.6, 1.0)``): random-resized-crop area range.
        num_samples (`int`, *optional*): N, stored augmentations per image; by default as many as the students'
            epochs (at least 20), so each stored view is replayed about once (:meth:`num_samples_for`).
        topk (`int`, *optional*, defaults to 5): k, stored teacher probabilities per augmentation.
        student_arch (`str`, *optional*, defaults to ``"hf_dr_cnn_fc"``): timm name of the student (the teachers'
            architecture: what the student gains is the knowledge of the teachers' images, not a bigger network).
        student (`TrainConfig`, *optional*, defaults to :func:`student_train_config`): the students' training, the
            same for every arm: 60 epochs, batch 128, SGD at 0.05 with 20% warmup and cosine, distillation
            temperature 1 (the paper's) for the reinforced and online-KD arms. Its ``seed`` is replaced by each
            run's; its batch and epochs adapt to a small subset (:meth:`student_config`).
        min_student_steps (`int`, *optional*, defaults to 1000): every student trains for at least this many steps
            (more epochs on a small subset; the same for every arm, so the arms stay at equal iterations).
        codecs (`list[str]`, *optional*): record codecs to reinforce with, each by its short name
            (:meth:`hf_dr.data.codec.RecordCodec.parse`, e.g. ``"seeded/q8-topk-set"``, ``"seeded/sampled:10"``;
            ``sampled`` draws at the students' temperature); the first one's students are the ``reinforced`` arm,
            the others ``reinforced[NAME]`` arms, all on the same teachers and subset. Only the default codec when
            empty.
        seeds (`list[int]`, *optional*, defaults to ``[0, 1, 2]``): student seeds of the plain and reinforced arms.
        kd_seeds (`list[int]`, *optional*, defaults to ``[0, 1, 2]``): student seeds of the online-KD arm.
        num_threads (`int`, *optional*, defaults to 2): ``torch.set_num_threads``.
        seed (`int`, *optional*, defaults to 0): seed of the subset, the teachers and the reinforcement.

    Example:
        >>> config = DemoConfig.from_dict({"epochs": 30, "teacher_lr": 0.05})  # flat names, as the CLI flags
        >>> config.student.epochs, config.teacher.lr, config.student_config(seed=2).seed
        (30, 0.05, 2)
        >>> DemoConfig.from_dict(config.to_dict()) == config
        True
    """

    output_dir: str = "runs/demo"
    dataset: str = "fashion-mnist"
    train_split: str = "train"
    test_split: str = "test"
    image_column: str = "image"
    label_column: str = "label"
    key_column: str | None = None
    image_size: int = 28
    data_root: str = str(DEFAULT_ROOT)
    subset_size: int | None = None
    test_size: int | None = None
    teacher_arch: str = "hf_dr_cnn_fc"
    num_teachers: int = 4
    teacher_train_size: int | None = None
    teacher: TrainConfig = field(default_factory=teacher_train_config)
    min_teacher_steps: int = 1000
    member_tolerance: float = 0.05
    calibrate_teacher: bool = True
    calibration_size: int | None = None
    policy: str = "rrc"
    crop_scale: tuple[float, float] = (0.6, 1.0)
    num_samples: int | None = None
    topk: int = 5
    student_arch: str = "hf_dr_cnn_fc"
    student: TrainConfig = field(default_factory=student_train_config)
    min_student_steps: int = 1000
    codecs: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    kd_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    num_threads: int = 2
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """A setting for CI that runs every stage in about a minute (its numbers show nothing); ``overrides`` as in
        :meth:`from_dict`."""
        return cls.from_dict(overrides, defaults=cls.from_dict(QUICK))

    def __post_init__(self) -> None:
        if isinstance(self.teacher, dict):
            self.teacher = teacher_train_config(**self.teacher)
        if isinstance(self.student, dict):
            self.student = student_train_config(**self.student)
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        self.seeds, self.kd_seeds = [int(s) for s in self.seeds], [int(s) for s in self.kd_seeds]
        self.codecs = [str(c) for c in self.codecs]
        if self.subset_size is not None and self.subset_size < 1:
            raise InvalidConfigError(f"subset_size should be positive, but got {self.subset_size} instead.")
        if not self.seeds:
            raise InvalidConfigError("seeds should hold at least one seed")
        if self.num_teachers < 1:
            raise InvalidConfigError(f"num_teachers should be positive, but got {self.num_teachers} instead.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, the two training configs nested under ``"teacher"`` and ``"student"``."""
        return to_json_value(asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], defaults: DemoConfig | None = None) -> DemoConfig:
        """The config ``values`` describe, on top of ``defaults`` (``DemoConfig()`` when not given).

        ``values`` may nest training settings (``{"student": {"epochs": 30}}``, or a :class:`hf_dr.TrainConfig`) or
        give them flat (``{"epochs": 30, "teacher_lr": 0.05}``: the layout of earlier ``demo_config.json`` files and
        the names of the ``hf-dr demo`` flags); flat ones win. Unknown settings are refused.
        """
        base = defaults if defaults is not None else cls()
        values = dict(values)
        training = {role: _training_values(values.pop(role, {})) for role in ROLES}
        for key in list(values):
            role, name = _training_alias(key)
            if role is not None:
                training[role][name] = values.pop(key)
        own = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - own)
        if unknown:
            valid = sorted(own | {f"teacher_{name}" for name in TRAIN_FIELDS} | TRAIN_FIELDS)
            raise InvalidConfigError(f"unknown demo settings {unknown}; valid ones are {valid}")
        return replace(base, **values, teacher=TrainConfig.from_dict(training["teacher"], defaults=base.teacher),
                       student=TrainConfig.from_dict(training["student"], defaults=base.student))

    def subset_size_for(self, train_rows: int) -> int:
        """The reinforced subset's size for a training split of ``train_rows``: :attr:`subset_size` (at most every
        row), else 2500 or a fifth of the rows, whichever is smaller."""
        if self.subset_size is not None:
            return min(self.subset_size, train_rows)
        return max(1, min(DEFAULT_SUBSET_SIZE, train_rows // 5))

    def student_batch_size(self, subset_rows: int) -> int:
        """The students' batch size on ``subset_rows`` images: :attr:`student`'s, halved until an epoch has at least
        :data:`MIN_STEPS_PER_EPOCH` steps (down to 16), so a small dataset still takes steps and drops few images."""
        batch = self.student.batch_size
        while batch > 16 and subset_rows // batch < MIN_STEPS_PER_EPOCH:
            batch //= 2
        return batch

    def num_samples_for(self, subset_rows: int) -> int:
        """N for a subset of ``subset_rows``: :attr:`num_samples`, else the students' epochs (at least 20). Measured
        on digits (259 images, 125 epochs, 3 seeds): N=20 gave +0.87 points over plain, N=125 +1.67.

        Example:
            >>> DemoConfig().num_samples_for(2500), DemoConfig().num_samples_for(233)
            (60, 143)
        """
        if self.num_samples is not None:
            return self.num_samples
        return max(MIN_NUM_SAMPLES, self.student_config(0, subset_rows).epochs)

    def teacher_seed(self, member: int) -> int:
        """The seed of teacher ``member``'s initialisation, data order and flips."""
        return 1000 + 17 * member + self.seed

    def teacher_config(self, member: int | None = None, train_rows: int | None = None) -> TrainConfig:
        """The training of teacher ``member`` (its seed) on ``train_rows`` images: :attr:`teacher`, with enough epochs
        for :attr:`min_teacher_steps` steps.

        Example:
            >>> DemoConfig().teacher_config(train_rows=1297).epochs  # 10 steps an epoch
            100
        """
        changes: dict[str, Any] = {} if member is None else {"seed": self.teacher_seed(member)}
        if train_rows is not None:
            changes["epochs"] = _epochs_for(self.teacher.epochs, self.min_teacher_steps,
                                            train_rows // self.teacher.batch_size)
        return replace(self.teacher, **changes)

    def student_config(self, seed: int, subset_rows: int | None = None, epochs: int | None = None) -> TrainConfig:
        """The one set of student hyperparameters every arm uses (:attr:`student`), with the run's ``seed``, the
        batch size for ``subset_rows`` images (:meth:`student_batch_size`) and enough epochs for
        :attr:`min_student_steps` steps, or ``epochs`` when given.

        Example:
            >>> config = DemoConfig()
            >>> [(c.batch_size, c.epochs) for c in (config.student_config(0, 2500), config.student_config(0, 233))]
            [(128, 60), (32, 143)]
        """
        changes: dict[str, Any] = {"seed": seed}
        batch = self.student.batch_size
        if subset_rows is not None:
            batch = changes["batch_size"] = self.student_batch_size(subset_rows)
        if epochs is not None:
            changes["epochs"] = epochs
        elif subset_rows is not None:
            changes["epochs"] = _epochs_for(self.student.epochs, self.min_student_steps, subset_rows // batch)
        return replace(self.student, **changes)


def _epochs_for(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """``epochs``, raised until they take ``min_steps`` steps of ``steps_per_epoch``."""
    return max(epochs, -(-min_steps // max(1, steps_per_epoch)))


def _training_values(value: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    return value.to_dict() if isinstance(value, TrainConfig) else dict(value)


_OWN_FIELDS = frozenset(f.name for f in fields(DemoConfig))


def _training_alias(key: str) -> tuple[str | None, str]:
    """Which training config a flat key sets: ``teacher_lr`` the teachers', ``lr`` or ``student_lr`` the
    students'; ``(None, key)`` for the demo's own settings and unknown keys."""
    if key in _OWN_FIELDS:
        return None, key
    for role in ROLES:
        name = key.removeprefix(f"{role}_")
        if name != key and name in TRAIN_FIELDS:
            return role, name
    return ("student", key) if key in TRAIN_FIELDS else (None, key)
