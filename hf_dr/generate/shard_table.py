"""Assembling a shard's Arrow table (key, label, image digest, class set, N records per row) straight from NumPy
batches.

Records arrive in row-major ``(row, index)`` order, chunk by chunk, with their params already in Arrow and their
labels coded by the run's codec (:meth:`RecordCodec.encode_params`, :meth:`RecordCodec.encode_labels`);
:class:`ShardTable` checks that the chunks are contiguous and complete (every view of every row exactly once, in order)
before it builds the table, and has the codec code the ids of the class-set codecs against each row's set
(:meth:`RecordCodec.encode_class_sets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch

from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.description import RunDescription, read_description, with_description
from hf_dr.data.keys import KeyList
from hf_dr.data.schema import DIGEST_COLUMN, REINFORCEMENTS_COLUMN, digest_feature, reinforcement_features
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
    codec: RecordCodec | None = None,
    num_samples: int | None = None,
) -> datasets.Features:
    """Features of the output rows: the key, the label (when the source has one), the image digest (``digest``: runs
    not keyed by content, see :func:`hf_dr.data.schema.digest_feature`), the row-level columns of ``codec`` and the N
    records, carrying the run's ``description`` (see :mod:`hf_dr.data.description`) when given.

    Example:
        >>> from hf_dr import create_policy
        >>> list(output_features(create_policy("rrc"), 5, 10, "key", "label", datasets.ClassLabel(num_classes=10)))
        ['key', 'label', 'reinforcements']
        >>> list(output_features(create_policy("rrc"), 5, 10, "id", digest=True))
        ['id', 'image_digest', 'reinforcements']
    """
    written = (DIGEST_COLUMN, REINFORCEMENTS_COLUMN, CLASSES_COLUMN)
    taken = [name for name in (key_column, label_column) if name in written]
    if taken or key_column == label_column:
        raise InvalidConfigError(
            f"the key column {key_column!r} and label column {label_column!r} must differ from each other and from "
            f"the columns a run writes {list(written)}: rename the column first "
            "(dataset.rename_column) and pass its new name.")
    base = reinforcement_features(policy, topk, num_classes, key_column, codec, num_samples)
    features = {key_column: base[key_column]}
    if label_column is not None:
        features[label_column] = label_feature
    if digest:
        features[DIGEST_COLUMN] = digest_feature()
    features.update({name: feature for name, feature in base.items() if name != key_column})
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
        digests (`Callable`, *optional*): the image digests of source rows ``(start, stop)``, for features with a
            digest column; read once, when the table is built.
        codec (`RecordCodec`, *optional*): the run's codec; by default the one the ``features`` describe (the
            default codec when they carry no description). Features that contradict it are refused.
    """

    def __init__(self, shard: Shard, features: datasets.Features, keys: Sequence[str], labels: Sequence[Any] | None,
                 num_samples: int, digests: Callable[[int, int], Sequence[int]] | None = None,
                 codec: RecordCodec | None = None) -> None:
        self.shard, self.features, self.keys, self.labels, self.digests = shard, features, keys, labels, digests
        self.num_samples = num_samples
        if codec is None:
            description = read_description(features)
            codec = description.record_codec if description is not None else RecordCodec()
        if (CLASSES_COLUMN in features) != codec.class_set:
            raise InvalidConfigError(
                f"the features {'hold' if CLASSES_COLUMN in features else 'lack'} a {CLASSES_COLUMN!r} column, where "
                f"the codec {codec.name!r} writes {'one' if codec.class_set else 'none'}: pass ShardTable the codec "
                "the features were made with (output_features(codec=...)).")
        self.codec = codec
        self.received = 0
        self.params: list[pa.Array] = []
        self.ids: list[np.ndarray] = []  # flat, with each record's length
        self.values: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []

    def add(self, start: int, stop: int, params: pa.Array, ids: Any, values: Any) -> None:
        """Appends the records of the shard's views ``[start, stop)``: params (Arrow) and labels
        (:meth:`RecordCodec.encode_labels`: ``[B, k]`` arrays or lists of per-record arrays)."""
        if start != self.received or not len(params) == len(ids) == len(values) == stop - start:
            raise CorruptShardError(f"{self.shard.path}: views [{start}, {stop}) arrived after {self.received}")
        if isinstance(ids, torch.Tensor):  # a teacher's top-k, as sparsify gives it (the default codec's)
            ids, values = ids.cpu().numpy(), values.cpu().numpy()
        if isinstance(ids, np.ndarray):  # [B, k]: the top-k codecs
            flat_ids, flat_values = ids.astype(np.int64).reshape(-1), np.asarray(values).reshape(-1)
            lengths = np.full(len(ids), ids.shape[1], dtype=np.int64)
        else:
            lengths = np.asarray([len(i) for i in ids], dtype=np.int64)
            flat_ids = np.concatenate([np.asarray(i, dtype=np.int64) for i in ids])
            flat_values = np.concatenate([np.asarray(v) for v in values])
        probabilities = self.codec.labels == "fp16-topk"
        if (flat_values.dtype.kind == "f") != probabilities:  # a cast would store 0.6 as code 0
            raise InvalidConfigError(
                f"{self.shard.path}: views [{start}, {stop}) bring {flat_values.dtype} labels, where the codec "
                f"{self.codec.name!r} stores {'probabilities' if probabilities else 'uint8 codes or counts'}: code "
                "the teacher's probabilities with the run's codec (RecordCodec.encode_labels) and add what it gives.")
        self.received = stop
        self.params.append(params)
        self.ids.append(flat_ids)
        self.values.append(flat_values)
        self.lengths.append(lengths)

    def build(self) -> pa.Table:
        """The shard's table; :class:`CorruptShardError` unless every view arrived."""
        expected = self.shard.num_rows * self.num_samples
        if self.received != expected:
            raise CorruptShardError(f"{self.shard.path}: got {self.received} views, expected {expected}")
        schema = self.features.arrow_schema
        list_type = schema.field(REINFORCEMENTS_COLUMN).type
        record_type = list_type.value_type
        ids, lengths = np.concatenate(self.ids), np.concatenate(self.lengths)
        label_offsets = np.concatenate([[0], np.cumsum(lengths)])
        sets, ids = self.codec.encode_class_sets(ids, label_offsets[:: self.num_samples])
        values = np.concatenate(self.values)
        records = pa.StructArray.from_arrays(
            [pa.concat_arrays(self.params).cast(record_type.field("params").type),
             _lists(ids, label_offsets, record_type.field("ids").type),
             _lists(values, label_offsets, record_type[2].type)],
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
            elif name == CLASSES_COLUMN:
                columns[name] = pa.array(sets, type=schema.field(name).type)
            elif name != REINFORCEMENTS_COLUMN:  # the label
                columns[name] = pa.array(self.labels[rows], type=schema.field(name).type)
        columns[REINFORCEMENTS_COLUMN] = pa.ListArray.from_arrays(offsets, records, type=list_type)
        return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _lists(values: np.ndarray, offsets: np.ndarray, list_type: pa.DataType) -> pa.Array:
    """Flat ``values`` as the records' lists: fixed-size (top-k codecs) or by ``offsets`` (``sampled``)."""
    flat = pa.array(values.reshape(-1).astype(list_type.value_type.to_pandas_dtype()), type=list_type.value_type)
    if pa.types.is_fixed_size_list(list_type):
        return pa.FixedSizeListArray.from_arrays(flat, list_type.list_size)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat, type=list_type)
