"""The columns of a dataset as a hook or a run reads them: checked up front, naming the column, the role and the
fix (:func:`check_columns`), and read without decoding (the undecoded image cells, a label's class count, one column's
values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import datasets

from hf_dr.errors import InvalidConfigError, MissingColumnError

_CLI_FLAGS = ("image_column", "label_column", "key_column")  # the options the command-line tools also take


def check_columns(
    dataset: datasets.Dataset | datasets.IterableDataset | Mapping[str, Any],
    *columns: str,
    role: str = "dataset",
    fix: str | None = None,
    **options: str | None,
) -> None:
    """Raises :class:`MissingColumnError` naming the role, the missing column(s), the available ones and the fix.

    The one column check of hf_dr: sources, reinforcement tables, ``set_transform`` hooks and their batches.

    Args:
        dataset (`datasets.Dataset`, `datasets.IterableDataset` or `dict`): a dataset, or a batch of columns.
        *columns (`str`): columns needed that no option names (e.g. a transform's ``input_columns``).
        role (`str`, *optional*, defaults to ``"dataset"``): what ``dataset`` is, e.g. ``"reinforcement dataset"``.
        fix (`str`, *optional*): how to fix it; defaults to passing the right names to the options.
        **options (`str` or None): columns needed, by the option naming them (``image_column="image"``); None
            values are skipped.

    Example:
        >>> ds = datasets.Dataset.from_dict({"img": [None]})
        >>> check_columns(ds, image_column="image")
        Traceback (most recent call last):
        ...
        hf_dr.errors.MissingColumnError: the dataset has no column 'image' (image_column); its columns are ['img']...
    """
    available = dataset.column_names if isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)) \
        else list(dataset)
    if available is None:  # a stream whose features are not known yet
        return
    needed = [(None, c) for c in columns] + [(option, c) for option, c in options.items() if c is not None]
    missing = [(option, column) for option, column in needed if column not in available]
    if not missing:
        return
    names = ", ".join(f"{column!r} ({option})" if option else repr(column) for option, column in missing)
    if fix is None:
        named = [option for option, _ in missing if option]
        hints = [f"{o}= or --{o.replace('_', '-')}" if o in _CLI_FLAGS else f"{o}=" for o in named]
        fix = f"Pass the right name ({'; '.join(hints)})." if named else "Rename the column or pass its name."
    raise MissingColumnError(
        f"the {role} has no column{'s' if len(missing) > 1 else ''} {names}; its columns are {available}. {fix}"
    )


def image_feature(dataset: datasets.Dataset, column: str) -> datasets.Image:
    """The ``datasets.Image`` feature of ``column`` (decoding on), or :class:`InvalidConfigError`."""
    feature = dataset.features[column]
    if not isinstance(feature, datasets.Image):
        raise InvalidConfigError(
            f"column {column!r} holds {feature!r}, not images; cast it first: "
            f"dataset.cast_column({column!r}, datasets.Image())"
        )
    return datasets.Image(mode=feature.mode, decode=True)


def encoded_images(dataset: datasets.Dataset, column: str) -> datasets.Dataset:
    """Only ``column``, with image decoding off: rows give ``{"bytes", "path"}`` cells."""
    return dataset.select_columns([column]).cast_column(column, datasets.Image(decode=False))


def class_count(dataset: datasets.Dataset, label_column: str | None) -> int | None:
    """The number of classes of a ``ClassLabel`` label column (None for other or no label columns)."""
    feature = dataset.features.get(label_column) if label_column else None
    return feature.num_classes if isinstance(feature, datasets.ClassLabel) else None


def cells(dataset: datasets.Dataset, column: str, batch_size: int = 1024) -> Iterator[Any]:
    for batch in dataset.select_columns([column]).with_format("arrow").iter(batch_size=batch_size):
        yield from batch.column(column).to_pylist()


def column_values(dataset: datasets.Dataset, column: str) -> list[Any]:
    """Every row's value of ``column`` as stored (e.g. ``ClassLabel`` ids), read in Arrow batches."""
    return list(cells(dataset, column))
