"""Assembling a shard's Arrow table (key, label, image digest, N records per row) straight from NumPy batches.

Records arrive in row-major ``(row, index)`` order, chunk by chunk, with their params already in Arrow;
:class:`ShardTable` checks that the chunks are contiguous and complete (every view of every row exactly once, in
order) before it builds the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch

from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.data.description import RunDescription, with_description
from hf_dr.data.keys import KeyList
from hf_dr.data.schema import (
    DIGEST_COLUMN,
    REINFORCEMENTS_COLUMN,
    class_id_dtype,
    digest_feature,
    reinforcement_features,
)
from hf_dr.errors import CorruptShardError, InvalidConfigError
from hf_dr.generate.plan import Shard


def output_features(
    policy: AugmentationPolicy,
    topk: int,
    num_classes: int,
    key_column: str,
    label_column: str | None = None,
    label_feature: Any = None,
    description: RunDescription | None = None,
    digest: bool = False,
) -> datasets.Features:
    """Features of the output rows: the key, the label (when the source has one), the image digest (``digest``: runs
    not keyed by content, see :func:`hf_dr.data.schema.digest_feature`) and the N records, carrying the run's
    ``description`` (see :mod:`hf_dr.data.description`) when given.

    Example:
        >>> from hf_dr import create_policy
        >>> list(output_features(create_policy("rrc"), 5, 10, "key", "label", datasets.ClassLabel(num_classes=10)))
        ['key', 'label', 'reinforcements']
        >>> list(output_features(create_policy("rrc"), 5, 10, "id", digest=True))
        ['id', 'image_digest', 'reinforcements']
    """
    taken = [name for name in (key_column, label_column) if name in (DIGEST_COLUMN, REINFORCEMENTS_COLUMN)]
    if taken or key_column == label_column:
        raise InvalidConfigError(
            f"the key column {key_column!r} and label column {label_column!r} must differ from each other and from "
            f"the columns a run writes ({DIGEST_COLUMN!r}, {REINFORCEMENTS_COLUMN!r}): rename the column first "
            "(dataset.rename_column) and pass its new name.")
    base = reinforcement_features(policy, topk, num_classes, key_column=key_column)
    features = {key_column: base[key_column]}
    if label_column is not None:
        features[label_column] = label_feature
    if digest:
        features[DIGEST_COLUMN] = digest_feature()
    features[REINFORCEMENTS_COLUMN] = base[REINFORCEMENTS_COLUMN]
    features = datasets.Features(features)
    return features if description is None else with_description(features, description)


class ShardTable:
    """Collects one shard's records and builds its table.

    Args:
        shard (`Shard`): the rows.
        features (`datasets.Features`): from :func:`output_features`.
        keys (`Sequence[str]`): every source row's key.
        labels (`Sequence`, *optional*): every source row's label.
        num_samples (`int`): records per row (N).
        num_classes (`int`): for the class id type.
        digests (`Callable`, *optional*): the image digests of source rows ``(start, stop)``, for features with a
            digest column; read once, when the table is built.
    """

    def __init__(self, shard: Shard, features: datasets.Features, keys: Sequence[str], labels: Sequence[Any] | None,
                 num_samples: int, num_classes: int,
                 digests: Callable[[int, int], Sequence[int]] | None = None) -> None:
        self.shard, self.features, self.keys, self.labels, self.digests = shard, features, keys, labels, digests
        self.num_samples, self.id_dtype = num_samples, class_id_dtype(num_classes)
        self.received = 0
        self.params: list[pa.Array] = []
        self.ids: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []

    def add(self, start: int, stop: int, params: pa.Array, ids: torch.Tensor, probs: torch.Tensor) -> None:
        """Appends the records of the shard's views ``[start, stop)``: params (Arrow), top-k ids and probabilities."""
        if start != self.received or not len(params) == len(ids) == len(probs) == stop - start:
            raise CorruptShardError(f"{self.shard.path}: views [{start}, {stop}) arrived after {self.received}")
        self.received = stop
        self.params.append(params)
        self.ids.append(ids.cpu().numpy().astype(self.id_dtype))
        self.probs.append(probs.cpu().to(torch.float16).numpy())

    def build(self) -> pa.Table:
        """The shard's table; :class:`CorruptShardError` unless every view arrived."""
        expected = self.shard.num_rows * self.num_samples
        if self.received != expected:
            raise CorruptShardError(f"{self.shard.path}: got {self.received} views, expected {expected}")
        schema = self.features.arrow_schema
        list_type = schema.field(REINFORCEMENTS_COLUMN).type
        record_type = list_type.value_type
        records = pa.StructArray.from_arrays(
            [pa.concat_arrays(self.params).cast(record_type.field("params").type),
             _fixed_lists(np.concatenate(self.ids), record_type.field("ids").type),
             _fixed_lists(np.concatenate(self.probs), record_type.field("probs").type)],
            fields=list(record_type),
        )
        offsets = pa.array(np.arange(0, expected + 1, self.num_samples, dtype=np.int32))
        rows = slice(self.shard.start, self.shard.stop)
        keys = self.keys[rows]
        columns: dict[str, Any] = {schema.names[0]: keys.array if isinstance(keys, KeyList) else
                                   pa.array(keys, type=pa.string())}
        for name in schema.names[1:]:
            if name == DIGEST_COLUMN:
                if self.digests is None:
                    raise CorruptShardError(f"{self.shard.path}: the features hold image digests and none were given")
                columns[name] = pa.array(self.digests(self.shard.start, self.shard.stop), type=schema.field(name).type)
            elif name != REINFORCEMENTS_COLUMN:  # the label
                columns[name] = pa.array(self.labels[rows], type=schema.field(name).type)
        columns[REINFORCEMENTS_COLUMN] = pa.ListArray.from_arrays(offsets, records, type=list_type)
        return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _fixed_lists(values: np.ndarray, list_type: pa.DataType) -> pa.Array:
    flat = pa.array(values.reshape(-1), type=list_type.value_type)
    return pa.FixedSizeListArray.from_arrays(flat, list_type.list_size)
