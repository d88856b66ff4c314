"""The declared schema of reinforced datasets: a key and N records of (params, top-k ids, top-k probs), coded as the
run's :class:`~hf_dr.data.codec.RecordCodec` says (its class-set codecs add a row-level ``classes`` column); the
shards of a run keyed by a column or by path also hold each image's digest (:data:`DIGEST_COLUMN`)."""

from __future__ import annotations

from typing import Any

import datasets

from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec, class_id_dtype
from hf_dr.data.run_columns import KEY_COLUMN, REINFORCEMENTS_COLUMN

__all__ = ["CLASSES_COLUMN", "DIGEST_COLUMN", "KEY_COLUMN", "REINFORCEMENTS_COLUMN", "class_id_dtype",
           "digest_feature", "record_features", "reinforcement_features"]

DIGEST_COLUMN = "image_digest"  # hf_dr.data.keys.image_digest of the row's encoded image, 8 bytes


def digest_feature() -> datasets.Value:
    """The feature of :data:`DIGEST_COLUMN`: an 8-byte BLAKE2b of the image bytes as a signed 64-bit integer
    (:func:`hf_dr.data.keys.bytes_digest`). Runs keyed by content store none: their key is a (16-byte) digest already.

    Example:
        >>> digest_feature()
        Value('int64')
    """
    return datasets.Value("int64")


def record_features(policy: AugmentationPolicy, topk: int, num_classes: int, codec: RecordCodec | None = None,
                    num_samples: int | None = None) -> dict[str, Any]:
    """Features of one reinforcement record: ``params``, ``ids`` (top-k, highest first) and ``probs`` (float16) by
    default; as ``codec`` codes them otherwise (:meth:`RecordCodec.record_features`)."""
    return (codec or RecordCodec()).record_features(policy, topk, num_classes, num_samples)


def reinforcement_features(
    policy: AugmentationPolicy, topk: int, num_classes: int, key_column: str = KEY_COLUMN,
    codec: RecordCodec | None = None, num_samples: int | None = None,
) -> datasets.Features:
    """Features of a metadata-only reinforcement table: one row per sample, its key, the row-level columns of
    ``codec`` (the class set of the class-set codecs) and its N records.

    Example:
        >>> from hf_dr import create_policy
        >>> features = reinforcement_features(create_policy("rrc"), topk=5, num_classes=10)
        >>> sorted(features)
        ['key', 'reinforcements']
    """
    codec = codec or RecordCodec()
    return datasets.Features({
        key_column: datasets.Value("string"),
        **codec.row_features(num_classes),
        REINFORCEMENTS_COLUMN: datasets.List(record_features(policy, topk, num_classes, codec, num_samples)),
    })

