"""Small real datasets for tests, built from data that ships with scikit-learn."""

from __future__ import annotations

import datasets
import numpy as np
import torch
from PIL import Image


def digit_images(count: int, size: int = 32) -> tuple[list[Image.Image], list[int]]:
    """The first ``count`` scikit-learn digits as ``size`` x ``size`` RGB Pillow images, and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for pixels in digits.images[:count]:
        gray = Image.fromarray((pixels * 255.0 / 16.0).astype(np.uint8), mode="L")
        images.append(gray.resize((size, size), Image.Resampling.BILINEAR).convert("RGB"))
    return images, [int(t) for t in digits.target[:count]]


def digits_dataset(count: int, size: int = 32, with_keys: bool = True) -> datasets.Dataset:
    """A ``datasets.Dataset`` with ``image`` (PNG), ``label`` (ClassLabel 0-9) and, optionally, ``key``."""
    images, labels = digit_images(count, size)
    columns = {"image": images, "label": labels}
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    if with_keys:
        columns["key"] = [f"digit-{i:05d}" for i in range(count)]
        features["key"] = datasets.Value("string")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


class ProjectionTeacher:
    """A fixed, seeded linear classifier on the pixels: a cheap stand-in teacher whose output depends on every
    pixel of the view it is given, so a wrong replay changes its prediction."""

    def __init__(self, num_classes: int = 10, size: int = 24, channels: int = 3, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(channels * size * size, num_classes, generator=generator) / 8.0
        self.size = size

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.softmax(pixel_values.reshape(pixel_values.shape[0], -1) @ self.weight, -1)


def reinforce_in_memory(dataset, policy, teacher: ProjectionTeacher, num_samples: int, topk: int, seed: int = 0,
                        codec=None):
    """Reinforcement rows for ``dataset`` made with the core pieces only (the library's ``reinforce`` is tested
    elsewhere): records seeded by (seed, key, index), labelled by ``teacher`` on the normalized view and stored as
    ``codec`` (a :class:`hf_dr.data.codec.RecordCodec`, the default one if None) encodes them."""
    from hf_dr.augment import ops
    from hf_dr.augment.functional import normalize
    from hf_dr.augment.seeding import generator_for
    from hf_dr.data import schema
    from hf_dr.data.codec import RecordCodec
    from hf_dr.data.replay import IMAGENET_MEAN, IMAGENET_STD

    codec = (codec or RecordCodec()).resolved(topk)
    images = {row["key"]: row["image"] for row in dataset}
    pool = ops.PartnerPool(list(images), [(im.height, im.width) for im in images.values()])
    rows = []
    for key, image in images.items():
        params, probs = [], []
        for index in range(num_samples):
            view, drawn = policy(image, teacher.size, generator_for(seed, key, index), pool, images.__getitem__)
            params.append(drawn)
            probs.append(teacher(normalize(view, IMAGENET_MEAN, IMAGENET_STD)[None])[0])
        records, columns = codec.encode_row(policy, params, torch.stack(probs), topk, seed, key)
        rows.append({"key": key, **columns, "reinforcements": records})
    features = schema.reinforcement_features(policy, topk, teacher.weight.shape[1], codec=codec,
                                             num_samples=num_samples)
    return datasets.Dataset.from_list(rows, features=features)
