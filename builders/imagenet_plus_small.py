"""ImageNet+-Small: the ImageNet+ recipe with N = 100 augmentations and k = 5 probabilities per augmentation (the
paper's smaller variant, about 4 x fewer records of about 60% the size). Same source, keys (by the image file's name:
the split holds byte-identical files, see :mod:`hf_dr.builders.imagenet_plus`), teacher (and substitutions), policy,
seed and layout as :mod:`hf_dr.builders.imagenet_plus`.
"""

import dataclasses

from .imagenet_plus import BUILDER as IMAGENET_PLUS

BUILDER = dataclasses.replace(
    IMAGENET_PLUS,
    name="imagenet_plus_small",
    pretty_name="ImageNet+-Small",
    description="ImageNet-1k train (1.28M), 4 x IG-ResNeXt-101, rrc+ra_re, N=100, k=5",
    num_samples=100,
    topk=5,
)
