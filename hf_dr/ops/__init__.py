"""Replayable augmentation ops: each draws its parameters up front and applies them purely."""

from .base import AugmentationOp
from .crop import RandomCropFlip, RandomResizedCropFlip
from .erasing import RandomErasing
from .mixing import Mixing, PartnerPool
from .randaugment import OP_NAMES, RandAugment

__all__ = [
    "AugmentationOp", "Mixing", "OP_NAMES", "PartnerPool", "RandAugment", "RandomCropFlip", "RandomErasing",
    "RandomResizedCropFlip",
]
