"""The source dataset of a reinforcement run: loading it, checking its columns, and reading its keys and sizes.

Keys come from a key column, the image file's name (``key_from="path"``) or, by default, a hash of each image's
encoded bytes (see :mod:`hf_dr.data.keys`); never from row positions. Image sizes are read from file headers, image
digests (:func:`check_image_digests`) from the encoded bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from hf_dr.data.bundled import bundled_name, load_bundled
from hf_dr.data.keys import (
    content_key,
    digest_positions,
    image_bytes,
    image_digest,
    missing_path,
    path_key,
    refuse_changed_image,
    resolve_key_source,
)
from hf_dr.data.scan_cache import cached_scan
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.errors import DataMismatchError, InvalidConfigError, MissingColumnError, SourceNotFoundError

EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # rotated by 90 degrees: datasets' exif_transpose swaps width and height


def load_source(
    path: str, split: str = "train", name: str | None = None, revision: str | None = None,
    data_root: str | None = None,
) -> datasets.Dataset:
    """Loads one split from a Hub id, a local folder (imagefolder, Parquet, ``save_to_disk``), a Parquet file or a
    bundled dataset's name (``fashion-mnist``, ``digits``, ``shapes``: :mod:`hf_dr.data.bundled`; a local folder of
    that name wins; ``data_root`` is Fashion-MNIST's folder of idx files).

    A missing path that looks local (starts with ``/``, ``.`` or ``~``, or has more separators than ``org/name``) is
    refused as such; anything else that is not on disk is looked up on the Hub, and :class:`SourceNotFoundError`
    says that both were tried.

    Example (a bundled dataset, and a local image folder of two classes):
        >>> import os, tempfile
        >>> from PIL import Image
        >>> load_source("digits", split="test").num_rows
        500
        >>> folder = tempfile.mkdtemp()
        >>> for label in ("cat", "dog"):
        ...     os.makedirs(os.path.join(folder, "train", label))
        ...     Image.new("RGB", (8, 8)).save(os.path.join(folder, "train", label, "0.png"))
        >>> ds = load_source(folder, split="train")
        >>> ds.num_rows, ds.features["label"].names
        (2, ['cat', 'dog'])
    """
    check_split(split)
    path = os.path.expanduser(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "state.json")):
        return datasets.load_from_disk(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_dict.json")):
        return datasets.load_from_disk(path)[split]
    if os.path.isfile(path):
        builder = "parquet" if path.endswith(".parquet") else os.path.splitext(path)[1].lstrip(".")
        return datasets.load_dataset(builder, data_files={split: path}, split=split)
    if not os.path.exists(path) and bundled_name(path) is not None:
        return load_bundled(path, split, data_root)
    if os.path.isdir(path) or not looks_local(path):
        return _load_dataset(path, name, split, revision)
    raise SourceNotFoundError(
        f"the dataset {path!r} does not exist: no file or folder {os.path.abspath(path)!r}. Check the path "
        "(--dataset), or pass a Hub dataset id (org/name)."
    )


_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def check_split(split: str) -> str:
    """``split`` if it is a plain split name (letters, digits, ``_``, ``-`` and ``.``, not leading), else
    :class:`InvalidConfigError`: a split name becomes part of file names (a push's ``data/{split}-*.parquet``) and
    is recorded with the run, so a path such as ``../x`` is refused where it enters.

    Example:
        >>> check_split("validation")
        'validation'
        >>> check_split("../../outside/evil")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: split '../../outside/evil' is not a split name: ...
    """
    if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split) or ".." in split:
        raise InvalidConfigError(
            f"split {split!r} is not a split name: use letters, digits, '_', '-' and '.' (not first), without '/' or "
            "'..', e.g. --split train or --split validation."
        )
    return split


def looks_local(path: str) -> bool:
    """Whether ``path`` is written as a local path (``/``, ``.`` or ``~`` first, or more separators than
    ``org/name``) rather than a Hub id."""
    return path.startswith((".", "~", os.sep)) or path.count("/") > 1 or bool(os.altsep and os.altsep in path)


def _load_dataset(path: str, name: str | None, split: str, revision: str | None) -> datasets.Dataset:
    """``datasets.load_dataset`` of a local folder or a Hub id; for an id the Hub lacks or that cannot be reached,
    :class:`SourceNotFoundError` saying that neither a local path nor the Hub has it."""
    from huggingface_hub.errors import HFValidationError

    try:
        return datasets.load_dataset(path, name, split=split, revision=revision)
    except (FileNotFoundError, ConnectionError, HFValidationError) as err:  # DatasetNotFoundError is one
        if os.path.exists(path):
            raise
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise SourceNotFoundError(
            f"the dataset {path!r} is neither a local file or folder (no {os.path.abspath(path)!r}) nor a dataset "
            f"loadable from the Hub ({reason}). Check the spelling and path (--dataset), and for a Hub id your "
            "network and login (`hf auth login`) if the dataset is private or gated."
        ) from err


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


def scan_keys(dataset: datasets.Dataset, image_column: str, key_column: str | None = None,
              key_from: str | None = None) -> list[str]:
    """Every row's key; duplicates are refused naming both rows.

    Args:
        dataset (`datasets.Dataset`): the rows.
        image_column (`str`): the image column (read for file names and content keys).
        key_column (`str`, *optional*): the key column (its values as text).
        key_from (`str`, *optional*): the key source (:data:`hf_dr.data.keys.KEY_SOURCES`): ``"path"`` keys each row
            by the file name of its image cell's stored path (:func:`hf_dr.data.keys.path_key`), ``"content"`` by a
            hash of the image bytes; by default ``"column"`` with a key column, else ``"content"``. Pass a run's
            recorded ``columns["key_source"]`` to recompute its keys.

    Example:
        >>> ds = datasets.Dataset.from_dict({"image": [None, None], "id": ["a", "b"]})
        >>> scan_keys(ds, "image", key_column="id")
        ['a', 'b']
        >>> files = datasets.Dataset.from_dict({"image": [{"bytes": None, "path": "/data/train/n01_1.JPEG"}]},
        ...                                    features=datasets.Features({"image": datasets.Image()}))
        >>> scan_keys(files, "image", key_from="path")
        ['n01_1.JPEG']
    """
    source = resolve_key_source(key_column, key_from)
    if source == "column":
        check_columns(dataset, role="source dataset", key_column=key_column)
        keys = [str(k) for k in _cells(dataset, key_column)]
    elif source == "path":
        check_columns(dataset, role="source dataset", image_column=image_column)
        image_feature(dataset, image_column)  # the path is a field of the Image cells
        keys = _path_keys(dataset, image_column)
    else:
        check_columns(dataset, role="source dataset", image_column=image_column)
        keys = content_keys(dataset, image_column)
    _refuse_duplicates(keys, source, key_column)
    return keys


def content_keys(dataset: datasets.Dataset, image_column: str) -> list[str]:
    """Every row's :func:`hf_dr.data.keys.content_key`, hashed once per dataset version
    (:func:`hf_dr.data.scan_cache.cached_scan`: later calls read them back, checking 64 rows)."""
    images = encoded_images(dataset, image_column)

    def some(rows: Sequence[int]) -> list[str]:
        return [content_key(cell) for cell in _cells(images.select(rows), image_column)]

    return cached_scan(dataset, f"content-keys-{image_column}",
                       lambda: [content_key(cell) for cell in _cells(images, image_column)], some, pa.string(),
                       image_column=image_column)


def _path_keys(dataset: datasets.Dataset, image_column: str, batch_size: int = 4096) -> list[str]:
    """The file names of the stored paths, read from the Arrow ``path`` field only (the bytes are not copied)."""
    keys: list[str] = []
    for batch in dataset.select_columns([image_column]).with_format("arrow").iter(batch_size=batch_size):
        for path in pc.struct_field(batch.column(image_column), "path").to_pylist():
            if not path:
                raise missing_path(len(keys), image_column)
            keys.append(path_key(path))
    return keys


_DUPLICATES = {  # key source: (where the key came from, the fix)
    "column": ("column {column!r}", "Deduplicate the dataset or pass a key column with unique values (key_column= / "
                                    "--key-column)."),
    "content": ("the image bytes (identical images)", "Key the rows by file name (key_from='path' / --key-from path) "
                "when the images come from files, pass a key column with unique values (key_column= / --key-column), "
                "or deduplicate the dataset."),
    "path": ("the image file names (key_from='path')", "Pass a key column with unique values (key_column= / "
             "--key-column), e.g. the path relative to the dataset root, or rename the files."),
}


def _refuse_duplicates(keys: Sequence[str], source: str, key_column: str | None) -> None:
    first: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key in first:
            where, fix = _DUPLICATES[source]
            raise DataMismatchError(f"sample keys must be unique, but rows {first[key]} and {row} share the key "
                                    f"{key!r} from {where.format(column=key_column)}. {fix}")
        first[key] = row


def keyed(dataset: datasets.Dataset, image_column: str, key_column: str | None, key_from: str | None, name: str
          ) -> tuple[datasets.Dataset, list[str]]:
    """``dataset`` with a column of its keys (:func:`scan_keys`), and the keys: column keys are the key column
    itself; file names and content hashes are added as column ``name`` (replacing a column of that name).

    Example:
        >>> ds = datasets.Dataset.from_dict({"image": [{"bytes": None, "path": "a/1.png"}]},
        ...                                 features=datasets.Features({"image": datasets.Image()}))
        >>> keyed(ds, "image", None, "path", "key")[0].column_names
        ['image', 'key']
    """
    keys = scan_keys(dataset, image_column, key_column, key_from)
    if resolve_key_source(key_column, key_from) == "column":
        return dataset, keys
    if name in dataset.column_names:
        dataset = dataset.remove_columns([name])
    return dataset.add_column(name, keys), keys


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


def scan_digests(dataset: datasets.Dataset, image_column: str, rows: Sequence[int] | None = None) -> list[int]:
    """:func:`hf_dr.data.keys.image_digest` of every row's encoded image (or of ``rows``, in that order).

    Example:
        >>> ds = datasets.Dataset.from_dict({"image": [{"bytes": b"abc", "path": None}]},
        ...                                 features=datasets.Features({"image": datasets.Image()}))
        >>> scan_digests(ds, "image")
        [-2829645022057097895]
    """
    images = encoded_images(dataset, image_column)
    images = images if rows is None else images.select(rows)
    return [image_digest(cell) for cell in _cells(images, image_column)]


def check_image_digests(dataset: datasets.Dataset, image_column: str, keys: Sequence[str],
                        reinforced: datasets.Dataset, key_name: str, verify_images: str = "sample",
                        where: str = "the source", fix: str = "") -> int:
    """Refuses an image of ``dataset`` that is not the one reinforced under its key; returns the images compared.

    ``reinforced``'s :data:`~hf_dr.data.schema.DIGEST_COLUMN` (stored by runs keyed by a column or by path) is
    compared, key by key, with the digests of ``dataset``'s images: for the rows
    :func:`hf_dr.data.keys.digest_positions` picks (``verify_images``: ``"sample"``, 64 rows drawn at random anew by
    every call; ``"full"``; ``"off"``). The up-front check of a join: its replay then checks every row the first time a
    process reads it (:class:`hf_dr.data.digests.RowDigests`).
    Keys absent from ``dataset`` are skipped (their absence is the caller's check). A run without digests (keyed by
    content: the key is the digest) compares nothing.

    Args:
        dataset (`datasets.Dataset`): the images; ``keys`` are its rows' keys.
        reinforced (`datasets.Dataset`): the reinforcement table, with ``key_name`` and the digests.
        where, fix (`str`): what ``dataset`` is and how to fix a changed image, for the error message.

    Example:
        >>> images = datasets.Dataset.from_dict({"image": [{"bytes": b"new", "path": None}]},
        ...                                     features=datasets.Features({"image": datasets.Image()}))
        >>> table = datasets.Dataset.from_dict({"key": ["a"], DIGEST_COLUMN: [image_digest({"bytes": b"old"})]})
        >>> check_image_digests(images, "image", ["a"], table, "key", fix="Load the reinforced version.")
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: the image of sample key 'a' (row 0 of the source) is not the one that was...
    """
    positions = digest_positions(len(reinforced), verify_images)
    if DIGEST_COLUMN not in reinforced.column_names or not positions:
        return 0
    table = reinforced.select_columns([key_name, DIGEST_COLUMN]).with_format("arrow")[positions]
    rows = {key: row for row, key in enumerate(keys)}
    recorded = zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True)
    pairs = sorted((rows[key], key, digest) for key, digest in recorded if key in rows)
    found = scan_digests(dataset, image_column, [row for row, _, _ in pairs])
    for (row, key, digest), digest_found in zip(pairs, found, strict=True):
        refuse_changed_image(key, row, where, digest_found, digest, fix)
    return len(pairs)
