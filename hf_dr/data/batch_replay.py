"""The batched replay behind :class:`~hf_dr.ReinforcedTransform`'s ``set_transform`` hook: one lookup and one decode
per batch, only the pixel work per image.

``datasets.Dataset`` defines ``__getitems__``, so a DataLoader hands the hook a whole batch of rows at once (and so
does :class:`~hf_dr.data.preloaded.PreloadedDataset`). For small images (28-32 px) the per-sample Python around the
pixels cost more than the pixels: finding the row, turning the stored record into Python objects, ``torch.tensor``
on short lists. Here a batch of B rows is read as follows:

- the B keys are hashed and searched at once (:meth:`~hf_dr.data.keys.KeyIndex.rows`), and their stored keys read
  with one Arrow ``take`` to check them;
- each row's list of records is located in the table's records column (or in the run's row groups,
  :meth:`~hf_dr.generate.row_groups.RowGroupRecords.parts`) without copying it, this epoch's record of each row is
  chosen (:meth:`~hf_dr.ReinforcedTransform.choose`, the one choice), and the B chosen records are taken at once;
- their params are decoded field by field over the batch (:func:`decoded_params`; seeded params become Python
  values column by column, :func:`python_rows`, equal to ``to_pylist``), and their labels are decoded by the codec on
  ``[B, k]`` arrays (:func:`batch_labels`); a dense ``float32`` target is built once for the batch;
- the mixing partners of the batch are read from the image dataset in one formatted batch (:func:`partner_images`).

Each image is then replayed as in the per-sample path (:meth:`~hf_dr.ReinforcedTransform.view_of`): the batches equal
those of :meth:`~hf_dr.ReinforcedTransform.sample` row by row, bit for bit, at every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

import hf_dr.augment.functional as K
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.collate import TARGET_IDS, TARGET_PROBS
from hf_dr.data.soft_labels import densify
from hf_dr.data.view_options import refuse_channels
from hf_dr.errors import DataMismatchError

if TYPE_CHECKING:
    from hf_dr.augment.policy import AugmentationPolicy
    from hf_dr.data.replay import ReinforcedTransform

__all__ = ["batch_labels", "chosen_records", "column_parts", "decoded_params", "key_rows", "partner_images",
           "python_rows", "replay_batch"]


def replay_batch(transform: ReinforcedTransform, images: Sequence[Any], keys: Sequence[Any]
                 ) -> dict[str, list[torch.Tensor]]:
    """The hook's output columns for a batch of ``images`` and their sample ``keys`` (see the module docstring):
    equal, row by row, to ``transform.sample(image, key)``.

    Args:
        transform (`ReinforcedTransform`): the replay (its policy, size, output, epoch and tables).
        images (`Sequence`): the batch's images (decoded, or undecoded ``{"bytes", "path"}`` cells).
        keys (`Sequence[str]`): their sample keys.
    """
    keys = _checked_keys(keys, transform.key_column)
    if not keys:
        return {name: [] for name in transform.output_columns}
    rows = key_rows(transform, keys)
    if transform._digests is not None:  # each row's image, the first time this process replays it
        for position in np.flatnonzero(transform._digests.unchecked(rows)).tolist():
            transform._digests.check(keys[position], images[position])
    indices, records, classes = chosen_records(transform, keys, rows)
    params = decoded_params(transform.policy, records.field("params")) if transform.codec.params == "stored" else None
    decoded = params is not None
    params = python_rows(records.field("params")) if params is None else params
    partners = None
    if transform._partners is not None:
        partners = partner_images(transform, [transform._stored_partner_key(stored) for stored in params])
    views = []
    for image, key, index, stored in zip(images, keys, indices, params, strict=True):
        view, _ = transform.view_of(image, key, index, stored, partners, decoded)
        refuse_channels(transform.channels, view.shape[0], key)
        views.append(view)
    ids, probs = batch_labels(transform.codec, records, classes)
    if transform.output == "uint8":
        return {"pixel_values": views, TARGET_IDS: list(ids), TARGET_PROBS: list(probs)}
    if isinstance(ids, torch.Tensor):  # one k: one dense batch, as ReinforcedCollate makes it
        labels = list(densify(ids, probs, transform.num_classes, transform.leftover))
    else:
        labels = [densify(i, p, transform.num_classes, transform.leftover) for i, p in zip(ids, probs, strict=True)]
    return {"pixel_values": [K.normalize(view, transform.mean, transform.std) for view in views], "labels": labels}


def _checked_keys(keys: Sequence[Any], key_column: str) -> list[str]:
    """The keys as text; a missing one raises :class:`DataMismatchError` naming its row in the batch."""
    for position, key in enumerate(keys):
        if key is None:
            raise DataMismatchError(f"row {position} of this batch has no sample key (null in column {key_column!r}): "
                                    "every row needs the key it was reinforced under. Drop such rows "
                                    f"(dataset.filter(lambda row: row[{key_column!r}] is not None)).")
    return [str(key) for key in keys]


def key_rows(transform: ReinforcedTransform, keys: Sequence[str]) -> np.ndarray:
    """The reinforcement rows of ``keys``, each checked to hold its key; a key without a row raises
    :class:`DataMismatchError` as the per-sample path does."""
    rows = transform._rows.rows(keys)
    found = transform._table.data.column(transform.key_column).take(pa.array(rows)).to_pylist()
    for key, row, stored in zip(keys, rows.tolist(), found, strict=True):
        transform._rows.check(key, row, stored)
    return rows


def chosen_records(transform: ReinforcedTransform, keys: Sequence[str], rows: np.ndarray | None = None
                   ) -> tuple[list[int], pa.StructArray, Any]:
    """This epoch's record of each key: its index among the key's records, the records themselves as one Arrow
    struct array (``params``, ``ids``, and ``probs`` or ``counts``), and the rows' class sets (an Arrow list array,
    class-set codecs only, else None). ``rows``: the keys' rows (:func:`key_rows`), found by default. A key without
    records raises as the per-sample path does."""
    rows = key_rows(transform, keys) if rows is None else rows
    table = transform._table.data
    if transform._records is not None:
        parts = transform._records.parts(rows, keys)
    else:
        parts = column_parts(table.column(transform.reinforcements_column), rows)
    starts, counts = np.zeros(len(keys), np.int64), np.zeros(len(keys), np.int64)
    for lists, local, positions in parts:
        offsets = lists.offsets.to_numpy()  # into lists.values, also for a slice
        starts[positions], counts[positions] = offsets[local], offsets[local + 1] - offsets[local]
    indices = [transform.choose(key, count) for key, count in zip(keys, counts.tolist(), strict=True)]
    chosen = starts + np.asarray(indices, dtype=np.int64)
    pieces = [lists.values.take(pa.array(chosen[positions])) for lists, _, positions in parts]
    records = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces).take(
        pa.array(np.argsort(np.concatenate([positions for _, _, positions in parts]))))
    classes = table.column(CLASSES_COLUMN).take(pa.array(rows)).combine_chunks() if transform.codec.class_set else None
    return indices, records, classes


def column_parts(column: pa.ChunkedArray, rows: np.ndarray) -> list[tuple[pa.ListArray, np.ndarray, np.ndarray]]:
    """Where ``rows`` of a list column are, one part per chunk they fall in (as
    :meth:`~hf_dr.generate.row_groups.RowGroupRecords.parts`): the chunk, the rows' positions in it and in the batch.
    """
    ends = np.cumsum([len(chunk) for chunk in column.chunks])
    chunks = np.searchsorted(ends, rows, side="right")
    parts = []
    for chunk in np.unique(chunks).tolist():
        positions = np.flatnonzero(chunks == chunk)
        parts.append((column.chunk(chunk), rows[positions] - (ends[chunk - 1] if chunk else 0), positions))
    return parts


def partner_images(transform: ReinforcedTransform, keys: Sequence[str | None]) -> dict[str, Any]:
    """The original images of a batch's mixing partners (``keys``: each record's, None where it does not mix), by
    key, read from the image dataset in one formatted batch and checked as
    :meth:`~hf_dr.ReinforcedTransform.partner_image` checks each."""
    wanted = sorted({key for key in keys if key is not None})
    if not wanted:
        return {}
    dataset, index = transform._partners
    positions = index.rows(wanted).tolist()
    rows = dataset[positions]
    for key, found in zip(wanted, rows[transform.key_column], strict=True):
        index.check(key, -1, found)
    if transform._digests is not None:  # the partners' own bytes, undecoded
        cells = dataset.data.column(transform.image_column)
        for key, position in zip(wanted, positions, strict=True):
            transform._digests.check(key, cells[position].as_py())
    return dict(zip(wanted, rows[transform.image_column], strict=True))


def decoded_params(policy: AugmentationPolicy, stored: pa.StructArray) -> list[dict[str, Any]] | None:
    """``policy.decode`` of every row of stored params, decoded field by field over the batch
    (:meth:`~hf_dr.augment.fields.Field.decode_array`); None when a field is missing or null, for the per-row decode
    to name it."""
    def rows_of(op: Any, struct: pa.StructArray) -> list[dict[str, Any]]:
        columns, children, fields = [], _children(struct), op.fields
        for name, field in fields.items():
            child = _child(children, name)
            if field.length is None:
                values = child.to_pylist() if field.dtype == "string" else child.to_numpy(zero_copy_only=False)
            elif not pa.types.is_fixed_size_list(child.type) or child.type.list_size != field.length:
                raise LookupError(name)
            else:
                values = _child_values(child).reshape(len(child), field.length)
            columns.append(field.decode_array(values))
        names = list(fields)
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]

    try:
        children = _children(stored)
        ops = {op.name: rows_of(op, _child(children, op.name)) for op in policy.base_ops}
        if policy.mixing is not None:
            mixing = _child(children, policy.mixing.name)
            mixes = rows_of(policy.mixing, mixing)
            partner = _children(_child(_children(mixing), "partner"))
            partners = {op.name: rows_of(op, _child(partner, op.name)) for op in policy.base_ops}
            for row, mix in enumerate(mixes):
                mix["partner"] = {name: rows[row] for name, rows in partners.items()}
            ops[policy.mixing.name] = mixes
    except LookupError:
        return None
    return [dict(zip(ops, values, strict=True)) for values in zip(*ops.values(), strict=True)]


def _children(struct: pa.Array) -> dict[str, pa.Array]:
    """The fields of a struct array without nulls, by name (:class:`LookupError` otherwise)."""
    if not pa.types.is_struct(struct.type) or struct.null_count:
        raise LookupError("struct")
    return dict(zip(struct.type.names, struct.flatten(), strict=True))


def _child(children: dict[str, pa.Array], name: str) -> pa.Array:
    """Field ``name`` of :func:`_children`, present and without nulls (:class:`LookupError` otherwise)."""
    child = children.get(name)
    if child is None or child.null_count:
        raise LookupError(name)
    return child


def _child_values(lists: pa.FixedSizeListArray) -> np.ndarray:
    values = lists.flatten()
    if values.null_count:
        raise LookupError("values")
    return values.to_numpy(zero_copy_only=False)


def python_rows(array: pa.Array) -> list[Any]:
    """``array.to_pylist()``, built column by column: every leaf converted at once, the rows' dicts assembled last.

    Example:
        >>> array = pa.array([{"crop": {"top": 3, "flip": True}}, {"crop": {"top": 5, "flip": False}}])
        >>> python_rows(array) == array.to_pylist()
        True
    """
    kind = array.type
    if array.null_count:
        return array.to_pylist()
    if pa.types.is_struct(kind):
        names = [field.name for field in kind]
        columns = [python_rows(child) for child in array.flatten()]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        values = python_rows(array.flatten())
        ends = np.cumsum(pc.list_value_length(array).to_numpy()).tolist()
        return [values[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return array.to_numpy(zero_copy_only=False).tolist()
    return array.to_pylist()


def batch_labels(codec: RecordCodec, records: pa.StructArray, classes: Any = None
                 ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor | list[torch.Tensor]]:
    """The class ids (``int64``) and target probabilities (``float32``) of a batch of stored ``records``, decoded
    by ``codec`` (:meth:`~hf_dr.data.codec.RecordCodec.decode_labels`): ``[B, k]`` tensors when every record stores
    k labels and needs no row's class set, else one pair of tensors per record (``classes``: the rows' sets)."""
    ids, values = records.field("ids"), records.field(codec.label_field)
    id_counts, value_counts = _lengths(ids), _lengths(values)
    flat_ids, flat_values = ids.flatten().to_numpy(), values.flatten().to_numpy()
    uniform = len(set(id_counts.tolist())) == 1 and len(set(value_counts.tolist())) == 1
    if uniform and not codec.class_set and codec.labels != "sampled":  # the codec's arithmetic, on [B, k] arrays
        decoded_ids, probs = codec.decode_labels({"ids": flat_ids.reshape(len(records), -1),
                                                  codec.label_field: flat_values.reshape(len(records), -1)})
        return _tensor(decoded_ids), _tensor(probs)
    id_ends, value_ends = np.cumsum(id_counts).tolist(), np.cumsum(value_counts).tolist()
    class_ends = None if classes is None else np.cumsum(_lengths(classes)).tolist()
    flat_classes = None if classes is None else classes.flatten().to_numpy()
    pairs = []
    for row in range(len(records)):
        stored = {"ids": flat_ids[id_ends[row] - id_counts[row]:id_ends[row]],
                  codec.label_field: flat_values[value_ends[row] - value_counts[row]:value_ends[row]]}
        row_classes = None if classes is None else flat_classes[(class_ends[row - 1] if row else 0):class_ends[row]]
        decoded_ids, probs = codec.decode_labels(stored, row_classes)
        pairs.append((_tensor(decoded_ids), _tensor(probs)))
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs]


def _lengths(lists: pa.Array) -> np.ndarray:
    """The length of each list (a null list: 0)."""
    return pc.fill_null(pc.list_value_length(lists), 0).to_numpy()


def _tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor, copied when NumPy holds it read-only (an Arrow buffer)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())
