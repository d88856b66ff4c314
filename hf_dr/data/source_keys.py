"""The keys, image sizes and image digests of a source dataset, read as a run reads them.

Keys come from a key column, the image file's name (``key_from="path"``) or, by default, a hash of each image's
encoded bytes (see :mod:`hf_dr.data.keys`); never from row positions. Image sizes are read from file headers, image
digests (:func:`check_image_digests`) from the encoded bytes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from hf_dr.data.columns import cells, check_columns, encoded_images, image_feature
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
from hf_dr.errors import DataMismatchError

EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # rotated by 90 degrees: datasets' exif_transpose swaps width and height


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
        keys = [str(k) for k in cells(dataset, key_column)]
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
        return [content_key(cell) for cell in cells(images.select(rows), image_column)]

    return cached_scan(dataset, f"content-keys-{image_column}",
                       lambda: [content_key(cell) for cell in cells(images, image_column)], some, pa.string(),
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
    return [header_size(cell) for cell in cells(encoded_images(dataset, image_column), image_column)]


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
    return [image_digest(cell) for cell in cells(images, image_column)]


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
