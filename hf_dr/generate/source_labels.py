"""The label column of a run's source, checked against its teacher: class ids the teacher predicts, nothing else.

A ``ClassLabel`` column's class count must equal the teacher's (:meth:`hf_dr.models.teacher.Teacher.
check_num_classes`); every integer label, of a ``ClassLabel`` or a plain integer column, must be a class of the
teacher (``-1`` and missing values mean "no label", as in ``datasets``). Text and float labels are refused before the
teacher is loaded: their classes have no order the teacher's outputs could follow.
"""

from __future__ import annotations

import datasets

from hf_dr.data.columns import column_values
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError

NO_LABEL = -1


def check_label_type(dataset: datasets.Dataset, label_column: str | None) -> None:
    """Raises :class:`InvalidConfigError` for a text or float label column, with the cast that fixes it.

    Example:
        >>> ds = datasets.Dataset.from_dict({"label": ["cat", "dog"]})
        >>> check_label_type(ds, "label")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: the label column 'label' holds text (string)...class_encode_column('label')...
    """
    feature = dataset.features.get(label_column) if label_column else None
    if not isinstance(feature, datasets.Value):
        return
    if feature.dtype in ("string", "large_string"):
        raise InvalidConfigError(
            f"the label column {label_column!r} holds text ({feature.dtype}), not class ids: the teacher's outputs "
            f"follow class ids. Cast it to ClassLabel first: dataset = dataset.class_encode_column({label_column!r}) "
            "(check that its sorted names are the teacher's class order), or pass label_column=None."
        )
    if feature.dtype.startswith("float"):
        raise InvalidConfigError(
            f"the label column {label_column!r} holds {feature.dtype} values, not class ids; cast it to integers or "
            f"to ClassLabel first (dataset.cast_column({label_column!r}, datasets.ClassLabel(names=[...]))), or pass "
            "label_column=None."
        )


def check_label_range(dataset: datasets.Dataset, label_column: str | None, num_classes: int) -> None:
    """Raises :class:`ClassCountMismatchError` naming the first row whose integer label is not a class of a teacher
    with ``num_classes`` outputs (``-1`` and missing labels pass).

    Example:
        >>> ds = datasets.Dataset.from_dict({"label": [0, 9, 10]})
        >>> check_label_range(ds, "label", 10)
        Traceback (most recent call last):
        ...
        hf_dr.errors.ClassCountMismatchError: row 2 of the label column 'label' holds 10, but the teacher predicts...
    """
    feature = dataset.features.get(label_column) if label_column else None
    integer = isinstance(feature, datasets.ClassLabel) or (
        isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")))
    if not integer:
        return
    for row, label in enumerate(column_values(dataset, label_column)):
        if label is not None and label != NO_LABEL and not 0 <= label < num_classes:
            raise ClassCountMismatchError(
                f"row {row} of the label column {label_column!r} holds {label}, but the teacher predicts classes 0 to "
                f"{num_classes - 1}; use a teacher fine-tuned on this dataset's labels, or fix the labels (-1 for "
                "none)."
            )
