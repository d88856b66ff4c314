"""hf-dr: Dataset Reinforcement (Faghri et al., ICCV 2023) for Hugging Face datasets, timm and transformers.

A teacher is run once over many stored augmentations of every image; students replay one stored augmentation
per sample per epoch and learn from the stored soft label.
"""

from .errors import (
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
from .losses import soft_target_loss
from .ops import PartnerPool
from .policy import AugmentationPolicy
from .registry import create_policy, list_policies, policy_from_config, register_policy
from .schema import record_features, reinforcement_features
from .soft_labels import densify, sparsify
from .transform import ReinforcedTransform

__version__ = "0.1.0"

__all__ = [
    "AugmentationPolicy", "ClassCountMismatchError", "ConfigConflictError", "CorruptShardError",
    "DataMismatchError", "HfDrError", "IncompleteRunError", "InvalidConfigError", "MissingColumnError",
    "MissingSoftLabelsError", "ParamsMismatchError", "PartnerPool", "ReinforcedTransform", "TeacherError",
    "UnknownPolicyError", "create_policy", "densify", "list_policies", "policy_from_config", "record_features",
    "register_policy", "reinforcement_features", "soft_target_loss", "sparsify",
]
