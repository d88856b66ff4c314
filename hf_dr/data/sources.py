"""The source dataset of a reinforcement run: loading it, checking its columns, and reading its keys and sizes.

Keys come from a key column or, without one, from a hash of each image's encoded bytes
(:func:`hf_dr.data.keys.content_key`); never from row positions. Image sizes are read from file headers.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import datasets
from PIL import Image

from hf_dr.data.keys import content_key, image_bytes
from hf_dr.errors import DataMismatchError, InvalidConfigError, MissingColumnError

EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # rotated by 90 degrees: datasets' exif_transpose swaps width and height


def load_source(
    path: str, split: str = "train", name: str | None = None, revision: str | None = None
) -> datasets.Dataset:
    """Loads one split from a Hub id, a local folder (imagefolder, Parquet, ``save_to_disk``) or a Parquet file.

    Example:
        >>> ds = load_source("path/to/imagefolder", split="train")  # doctest: +SKIP
    """
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "state.json")):
        return datasets.load_from_disk(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_dict.json")):
        return datasets.load_from_disk(path)[split]
    if os.path.isfile(path):
        builder = "parquet" if path.endswith(".parquet") else os.path.splitext(path)[1].lstrip(".")
        return datasets.load_dataset(builder, data_files={split: path}, split=split)
    return datasets.load_dataset(path, name, split=split, revision=revision)


def source_info(dataset: datasets.Dataset, path: str | None = None, split: str | None = None,
                revision: str | None = None) -> dict[str, Any]:
    """Where the rows came from: id or path, split, revision and the ``datasets`` fingerprint."""
    return {"id": path, "split": split, "revision": revision, "fingerprint": dataset._fingerprint}


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


def _cells(dataset: datasets.Dataset, column: str, batch_size: int = 1024) -> Iterator[Any]:
    for batch in dataset.select_columns([column]).with_format("arrow").iter(batch_size=batch_size):
        yield from batch.column(column).to_pylist()


def column_values(dataset: datasets.Dataset, column: str) -> list[Any]:
    """Every row's value of ``column`` as stored (e.g. ``ClassLabel`` ids), read in Arrow batches."""
    return list(_cells(dataset, column))


def scan_keys(dataset: datasets.Dataset, image_column: str, key_column: str | None = None) -> list[str]:
    """Every row's key (the key column as text, else a content hash of the image bytes); duplicates are refused.

    Example:
        >>> ds = datasets.Dataset.from_dict({"image": [None, None], "id": ["a", "b"]})
        >>> scan_keys(ds, "image", key_column="id")
        ['a', 'b']
    """
    if key_column is not None:
        keys = [str(k) for k in _cells(dataset, key_column)]
    else:
        keys = [content_key(cell) for cell in _cells(encoded_images(dataset, image_column), image_column)]
    _refuse_duplicates(keys, key_column)
    return keys


def _refuse_duplicates(keys: Sequence[str], key_column: str | None) -> None:
    first: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key in first:
            source = f"column {key_column!r}" if key_column else "the image bytes (identical images)"
            raise DataMismatchError(
                f"sample keys must be unique, but rows {first[key]} and {row} share the key {key!r} from {source}. "
                "Deduplicate the dataset or pass a key column with unique values (key_column= / --key-column)."
            )
        first[key] = row


def keys_sha256(keys: Sequence[str]) -> str:
    """SHA-256 of the keys in row order: identifies the rows a run covers."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode("utf-8") + b"\n")
    return digest.hexdigest()


def header_size(cell: Any) -> tuple[int, int]:
    """``(height, width)`` of an encoded image cell as ``datasets`` will decode it (EXIF rotation included)."""
    with Image.open(io.BytesIO(image_bytes(cell))) as image:
        width, height = image.size
        if image.getexif().get(EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
            width, height = height, width
    return height, width


def scan_sizes(dataset: datasets.Dataset, image_column: str) -> list[tuple[int, int]]:
    """Every row's image ``(height, width)``, read from the file headers (no full decode)."""
    return [header_size(cell) for cell in _cells(encoded_images(dataset, image_column), image_column)]
