"""The declared schema of reinforced datasets: a key and N records of (params, top-k ids, top-k probs); the shards of
a run keyed by a column or by path also hold each image's digest (:data:`DIGEST_COLUMN`)."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from hf_dr.augment.policy import AugmentationPolicy

KEY_COLUMN = "key"
REINFORCEMENTS_COLUMN = "reinforcements"
DIGEST_COLUMN = "image_digest"  # hf_dr.data.keys.image_digest of the row's encoded image, 8 bytes


def digest_feature() -> datasets.Value:
    """The feature of :data:`DIGEST_COLUMN`: an 8-byte BLAKE2b of the image bytes as a signed 64-bit integer
    (:func:`hf_dr.data.keys.bytes_digest`). Runs keyed by content store none: their key is a (16-byte) digest already.

    Example:
        >>> digest_feature()
        Value('int64')
    """
    return datasets.Value("int64")


def class_id_dtype(num_classes: int) -> str:
    """The narrowest unsigned type holding every class id."""
    return "uint16" if num_classes <= np.iinfo(np.uint16).max + 1 else "uint32"


def record_features(policy: AugmentationPolicy, topk: int, num_classes: int) -> dict[str, Any]:
    """Features of one reinforcement record: ``params``, ``ids`` (top-k, highest first) and ``probs`` (float16)."""
    return {
        "params": policy.features(),
        "ids": datasets.List(datasets.Value(class_id_dtype(num_classes)), length=topk),
        "probs": datasets.List(datasets.Value("float16"), length=topk),
    }


def reinforcement_features(
    policy: AugmentationPolicy, topk: int, num_classes: int, key_column: str = KEY_COLUMN
) -> datasets.Features:
    """Features of a metadata-only reinforcement table: one row per sample, its key and its N records.

    Example:
        >>> from hf_dr import create_policy
        >>> features = reinforcement_features(create_policy("rrc"), topk=5, num_classes=10)
        >>> sorted(features)
        ['key', 'reinforcements']
    """
    return datasets.Features({
        key_column: datasets.Value("string"),
        REINFORCEMENTS_COLUMN: datasets.List(record_features(policy, topk, num_classes)),
    })


def encode_record(policy: AugmentationPolicy, params: dict[str, Any], ids: Any, probs: Any) -> dict[str, Any]:
    """One stored record from params and the teacher's top-k (arrays or lists)."""
    return {
        "params": policy.encode(params),
        "ids": [int(i) for i in ids],
        "probs": np.asarray(probs, dtype=np.float16).tolist(),
    }
