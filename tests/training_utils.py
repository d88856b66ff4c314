"""Small reinforced datasets for the training tests: real scikit-learn digits labelled by a fixed projection
teacher."""

from __future__ import annotations

import datasets

from hf_dr import ReinforcedTransform, create_policy
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

POLICY = "rrc"
SIZE = 16  # students see 16x16 replays of 32x32 digits; the teacher saw 24x24 views (resolution independence)
NUM_SAMPLES, TOPK = 4, 5


def reinforced_digits(count: int = 96, seed: int = 0) -> datasets.Dataset:
    """``count`` digits with their reinforcements, self-contained (image, label, key, reinforcements)."""
    images = digits_dataset(count)
    table = reinforce_in_memory(images, create_policy(POLICY), ProjectionTeacher(size=24), NUM_SAMPLES, TOPK, seed)
    return datasets.concatenate_datasets([images, table.remove_columns("key")], axis=1)


def reinforced_transform(dataset: datasets.Dataset, seed: int = 0) -> ReinforcedTransform:
    return ReinforcedTransform(dataset, policy=POLICY, size=SIZE, seed=seed)
