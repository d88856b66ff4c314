"""Replayable augmentation ops: each draws its parameters up front and applies them purely."""

from hf_dr.augment.ops.base import AugmentationOp
from hf_dr.augment.ops.crop import RandomCropFlip, RandomResizedCropFlip
from hf_dr.augment.ops.erasing import RandomErasing
from hf_dr.augment.ops.mixing import Mixing, PartnerPool
from hf_dr.augment.ops.randaugment import OP_NAMES, RandAugment

__all__ = [
    "AugmentationOp", "Mixing", "OP_NAMES", "PartnerPool", "RandAugment", "RandomCropFlip", "RandomErasing",
    "RandomResizedCropFlip",
]
