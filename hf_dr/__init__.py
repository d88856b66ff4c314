"""hf-dr: Dataset Reinforcement (Faghri et al., ICCV 2023) for Hugging Face datasets, timm and transformers.

A teacher is run once over many stored augmentations of every image; students replay one stored augmentation
per sample per epoch and learn from the stored soft label.

The public API, by flow (everything else lives in the subpackages named in brackets):

- reinforce [``hf_dr.augment``, ``hf_dr.generate``]: :func:`create_policy`, :func:`list_policies`,
  :class:`AugmentationPolicy`, :func:`create_teacher`, :func:`load_teacher_spec`, :class:`RecordCodec`,
  :func:`reinforce` (its settings: :class:`ReinforceSettings`), :func:`select_samples`, :func:`verify`;
- load and replay [``hf_dr.data``, ``hf_dr.hub``]: :func:`open_reinforced` (a run folder or a pushed repo, ready to
  train on), :func:`load_run_records`, :func:`load_reinforced`,
  :class:`ReinforcedTransform`, :class:`Curriculum`, :func:`create_reinforced_loader` (timm's loop),
  :func:`model_arguments` (a student's classes and channels, read from the data),
  :class:`AugmentTransform`, :class:`EvalTransform`,
  :func:`set_epoch`, :func:`sparsify`, :func:`densify`;
- publish [``hf_dr.hub``]: :func:`push_to_hub`;
- train [``hf_dr.train``]: :func:`soft_target_loss`, :class:`TrainConfig`, :func:`fit`,
  :func:`reinforced_training_args`, :func:`reinforced_trainer`, :class:`ReinforcedEpochCallback`,
  :func:`create_model`, :class:`FinetuneConfig`, :func:`finetune_teacher`;
- evaluate [``hf_dr.train``]: :func:`evaluate`, :func:`evaluate_checkpoint`, :func:`load_classifier`;
- errors [``hf_dr.errors``]: :class:`HfDrError`, the base of every error hf_dr raises.

Names are imported on first use, so ``import hf_dr`` loads neither transformers, timm nor matplotlib.

Example:
    >>> import hf_dr
    >>> hf_dr.list_policies()
    ['crop_flip', 'rrc', 'rrc+mix', 'rrc+mix+ra_re', 'rrc+ra_re']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    # reinforce
    "create_policy": "hf_dr.augment.registry", "list_policies": "hf_dr.augment.registry",
    "AugmentationPolicy": "hf_dr.augment.policy", "create_teacher": "hf_dr.models.teacher",
    "load_teacher_spec": "hf_dr.models.teacher", "RecordCodec": "hf_dr.data.codec",
    "reinforce": "hf_dr.generate.run", "ReinforceSettings": "hf_dr.generate.settings",
    "select_samples": "hf_dr.generate.selection",
    "verify": "hf_dr.generate.verify",
    # load and replay
    "open_reinforced": "hf_dr.hub.opening", "load_run_records": "hf_dr.generate.loading",
    "load_reinforcements": "hf_dr.generate.loading",  # deprecated alias of load_run_records (one release)
    "load_reinforced": "hf_dr.hub.load",
    "ReinforcedTransform": "hf_dr.data.replay", "Curriculum": "hf_dr.data.curriculum",
    "ReinforcedCollate": "hf_dr.data.collate",
    "create_reinforced_loader": "hf_dr.hub.loader", "model_arguments": "hf_dr.data.model_arguments",
    "AugmentTransform": "hf_dr.data.transforms",
    "EvalTransform": "hf_dr.data.transforms", "set_epoch": "hf_dr.data.epochs", "sparsify": "hf_dr.data.soft_labels",
    "densify": "hf_dr.data.soft_labels",
    # publish
    "push_to_hub": "hf_dr.hub.push",
    # train
    "soft_target_loss": "hf_dr.train.losses", "TrainConfig": "hf_dr.train.loop", "fit": "hf_dr.train.loop",
    "reinforced_training_args": "hf_dr.train.trainer", "reinforced_trainer": "hf_dr.train.trainer",
    "ReinforcedEpochCallback": "hf_dr.train.trainer", "create_model": "hf_dr.models.students",
    "FinetuneConfig": "hf_dr.train.finetune", "finetune_teacher": "hf_dr.train.finetune",
    # evaluate
    "evaluate": "hf_dr.train.evaluation", "evaluate_checkpoint": "hf_dr.train.evaluation",
    "load_classifier": "hf_dr.models.checkpoints",
    # errors
    "HfDrError": "hf_dr.errors",
}

__all__ = [
    "__version__", "create_policy", "list_policies", "AugmentationPolicy", "create_teacher", "load_teacher_spec",
    "RecordCodec", "reinforce", "ReinforceSettings", "select_samples", "verify", "open_reinforced",
    "load_run_records", "load_reinforced", "ReinforcedTransform", "ReinforcedCollate", "Curriculum",
    "create_reinforced_loader", "model_arguments", "AugmentTransform", "EvalTransform", "set_epoch", "sparsify",
    "densify",
    "push_to_hub", "soft_target_loss", "TrainConfig", "fit", "reinforced_training_args", "reinforced_trainer",
    "ReinforcedEpochCallback", "create_model", "FinetuneConfig", "finetune_teacher", "evaluate",
    "evaluate_checkpoint", "load_classifier", "HfDrError",
]


def __getattr__(name: str) -> Any:  # PEP 562: import on first use
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_dr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from hf_dr.augment.policy import AugmentationPolicy
    from hf_dr.augment.registry import create_policy, list_policies
    from hf_dr.data.collate import ReinforcedCollate
    from hf_dr.data.epochs import set_epoch
    from hf_dr.data.model_arguments import model_arguments
    from hf_dr.data.replay import ReinforcedTransform
    from hf_dr.data.soft_labels import densify, sparsify
    from hf_dr.data.transforms import AugmentTransform, EvalTransform
    from hf_dr.errors import HfDrError
    from hf_dr.generate.loading import load_run_records
    from hf_dr.generate.run import reinforce
    from hf_dr.generate.settings import ReinforceSettings
    from hf_dr.generate.verify import verify
    from hf_dr.hub.load import load_reinforced
    from hf_dr.hub.loader import create_reinforced_loader
    from hf_dr.hub.opening import open_reinforced
    from hf_dr.hub.push import push_to_hub
    from hf_dr.models.checkpoints import load_classifier
    from hf_dr.models.students import create_model
    from hf_dr.models.teacher import create_teacher, load_teacher_spec
    from hf_dr.train.evaluation import evaluate, evaluate_checkpoint
    from hf_dr.train.finetune import FinetuneConfig, finetune_teacher
    from hf_dr.train.loop import TrainConfig, fit
    from hf_dr.train.losses import soft_target_loss
    from hf_dr.train.trainer import ReinforcedEpochCallback, reinforced_trainer, reinforced_training_args
