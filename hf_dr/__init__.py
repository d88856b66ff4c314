"""hf-dr: Dataset Reinforcement (Faghri et al., ICCV 2023) for Hugging Face datasets, timm and transformers.

A teacher is run once over many stored augmentations of every image; students replay one stored augmentation
per sample per epoch and learn from the stored soft label.
"""

from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.registry import create_policy, list_policies, policy_from_config, register_policy
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.schema import record_features, reinforcement_features
from hf_dr.data.soft_labels import densify, sparsify
from hf_dr.errors import (
    ClassCountMismatchError,
    ConfigConflictError,
    CorruptShardError,
    DataMismatchError,
    HfDrError,
    IncompleteRunError,
    InvalidConfigError,
    MissingColumnError,
    MissingSoftLabelsError,
    ParamsMismatchError,
    TeacherError,
    UnknownPolicyError,
)
from hf_dr.train.losses import soft_target_loss

__version__ = "0.1.0"

__all__ = [
    "AugmentationPolicy", "ClassCountMismatchError", "ConfigConflictError", "CorruptShardError",
    "DataMismatchError", "HfDrError", "IncompleteRunError", "InvalidConfigError", "MissingColumnError",
    "MissingSoftLabelsError", "ParamsMismatchError", "PartnerPool", "ReinforcedTransform", "TeacherError",
    "UnknownPolicyError", "create_policy", "densify", "list_policies", "policy_from_config", "record_features",
    "register_policy", "reinforcement_features", "soft_target_loss", "sparsify",
]

# Hub: push reinforced datasets with their cards, load them back (issue #4).
from hf_dr.data.streaming import ReinforcedIterableDataset  # noqa: E402
from hf_dr.hub.load import load_reinforced  # noqa: E402
from hf_dr.hub.push import HubNotFoundError, push_to_hub  # noqa: E402

__all__ += ["HubNotFoundError", "ReinforcedIterableDataset", "load_reinforced", "push_to_hub"]

# Generation: teachers, `reinforce`, and the output folder of a run (issue #3).
from hf_dr.generate.run import reinforce  # noqa: E402
from hf_dr.generate.run_config import ReinforceConfig  # noqa: E402
from hf_dr.generate.storage import load_reinforcements, verify_run  # noqa: E402
from hf_dr.generate.teacher import MemberSpec, Teacher, WeightsNotFoundError, create_teacher, load_teacher_spec  # noqa: E402

__all__ += ["MemberSpec", "ReinforceConfig", "Teacher", "WeightsNotFoundError", "create_teacher",
            "load_reinforcements", "load_teacher_spec", "reinforce", "verify_run"]

# Training on reinforced data, evaluation and the demo (issue #5). Imported on first use: they pull in transformers'
# Trainer, accelerate and matplotlib, which `import hf_dr` should not pay for.
_LAZY_EXPORTS = {
    "AugmentTransform": "augment", "EvalTransform": "augment", "PreloadedDataset": "preloaded",
    "TrainConfig": "training", "TrainResult": "training", "fit": "training", "save_checkpoint": "training",
    "load_checkpoint": "training", "load_classifier": "training", "cosine_with_warmup": "training",
    "evaluate": "evaluation", "evaluate_checkpoint": "evaluation", "expected_calibration_error": "evaluation",
    "negative_log_likelihood": "evaluation", "top1_accuracy": "evaluation", "classification_metrics": "evaluation",
    "reinforced_training_args": "trainer_utils", "reinforced_trainer": "trainer_utils",
    "check_trainer_args": "trainer_utils", "ReinforcedEpochCallback": "trainer_utils",
    "ReinforcedLoss": "trainer_utils",
    "TrainerArgumentsError": "trainer_utils", "PixelValuesClassifier": "models", "ProbabilityEnsemble": "models",
    "create_model": "models", "forward_logits": "models", "load_fashion_mnist": "fashion_mnist",
    "DemoConfig": "demo", "run_demo": "demo",
}
__all__ += sorted(_LAZY_EXPORTS)


def __getattr__(name: str):  # noqa: ANN202 (PEP 562 lazy exports)
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Recipes of the paper's reinforced datasets (the `builders` package) and teacher fine-tuning (issue #6).
from hf_dr.generate.recipe import Builder, MissingTeacherError, UnknownBuilderError  # noqa: E402

__all__ += ["Builder", "MissingTeacherError", "UnknownBuilderError"]
_LAZY_EXPORTS.update({"FinetuneConfig": "finetune", "FinetuneResult": "finetune", "finetune_teacher": "finetune"})
__all__ += ["FinetuneConfig", "FinetuneResult", "finetune_teacher"]
