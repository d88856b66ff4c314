"""A replay bound to the images it replays: every reinforced row's image is compared with the digest the run stored
(:data:`~hf_dr.data.schema.DIGEST_COLUMN`, :func:`hf_dr.data.keys.bytes_digest` of the encoded bytes) the first time
a process replays that row, so no row is ever trained on unchecked.

The ``set_transform`` hook receives decoded Pillow images, and the digest is over the encoded bytes: the bytes are
read again, undecoded, from the Arrow table of the dataset the hook is attached to (looked up by key, a memory-mapped
read of bytes ``datasets`` has just decoded) and hashed: one BLAKE2b per row and process, small next to the decode.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from hf_dr.data.description import RunDescription
from hf_dr.data.keys import KeyIndex, bytes_digest, content_key, image_bytes, refuse_changed_image
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.errors import DataMismatchError, InvalidConfigError

__all__ = ["RowDigests", "changed_image_fix"]

_UNBOUND = ("the hook received decoded images and knows no dataset holding their encoded bytes: set it with "
            "transform.attach(dataset), or pass images=dataset when making it")


class RowDigests:
    """The image digests a run stored, each checked the first time this process replays its row.

    A per-process bitmap over the reinforcement rows remembers the rows checked (DataLoader workers started by fork
    inherit the rows their parent checked). The encoded image is the undecoded cell the hook was given, or else the
    cell stored under the key in the bound image dataset (:meth:`bind`).

    Args:
        table (`datasets.Dataset`): the reinforcement table (no indices mapping), with the key column and
            :data:`~hf_dr.data.schema.DIGEST_COLUMN` (and the images, in the self-contained layout).
        key_column (`str`): its key column.
        rows (`KeyIndex`): its rows by key.
        fix (`str`): how to fix a changed image, for the error message.
        by_content (`bool`, *optional*, defaults to False): the run keys its rows by content
            (:func:`hf_dr.data.keys.content_key`, a 16-byte BLAKE2b of the bytes): the key is the digest compared,
            and the table needs no digest column.

    Example:
        >>> import datasets
        >>> from hf_dr.data.keys import image_digest
        >>> images = datasets.Dataset.from_dict({"key": ["a"], "image": [{"bytes": b"new", "path": None}]})
        >>> table = datasets.Dataset.from_dict({"key": ["a"], DIGEST_COLUMN: [image_digest({"bytes": b"old"})]})
        >>> digests = RowDigests(table, "key", KeyIndex(table["key"]), fix="Load the reinforced version.")
        >>> digests.bind(images, "image", "key")
        >>> digests.check("a")
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: the image of sample key 'a' (row 0 of the image dataset) is not the one that...
    """

    def __init__(self, table: datasets.Dataset, key_column: str, rows: KeyIndex, fix: str,
                 by_content: bool = False) -> None:
        self._table, self._key_column, self._rows, self.fix = table, key_column, rows, fix
        self._by_content = by_content
        self._checked = np.zeros(len(table), dtype=bool)
        self._images: datasets.Dataset | None = None
        self._image_rows: KeyIndex | None = None  # None with images bound: the reinforcement table holds them
        self._image_column = self._image_key = ""

    @classmethod
    def of(cls, table: datasets.Dataset, key_column: str, rows: KeyIndex, description: RunDescription | None,
           verify_images: str) -> RowDigests | None:
        """The check of ``table``'s rows, or None with ``verify_images="off"`` or a run that stores no digests (runs
        keyed by content store none: their key, compared instead, is the digest)."""
        by_content = DIGEST_COLUMN not in table.column_names and description is not None \
            and description.columns.by_content
        if verify_images == "off" or not (by_content or DIGEST_COLUMN in table.column_names):
            return None
        return cls(table, key_column, rows, changed_image_fix(description), by_content)

    def bind(self, images: datasets.Dataset, image_column: str, key_column: str) -> None:
        """Reads the encoded images from ``images`` from now on (its rows found by key in ``key_column``); a dataset
        without those columns unbinds. Binding another dataset forgets the rows checked."""
        if self._images is not None and _same_rows(images, self._images):
            return
        self._checked[:] = False
        if image_column not in images.column_names or key_column not in images.column_names:
            self._images = self._image_rows = None
            return
        if _same_rows(images, self._table):
            self._image_rows = None  # the self-contained layout: image row = reinforcement row
        else:
            keys = images.select_columns([key_column]).with_format("arrow")[:].column(key_column)
            self._image_rows = KeyIndex(keys, where="the image dataset", keep_keys=False, fix=(
                "the transform reads the images' bytes from the dataset it is attached to: attach it to the dataset "
                "it replays (transform.attach(dataset))"))
        self._images, self._image_column, self._image_key = images, image_column, key_column

    def check(self, key: str, cell: Any = None) -> None:
        """Refuses ``key``'s image (``cell`` when it is an undecoded ``{"bytes", "path"}`` cell, else the bound
        dataset's) unless it is the one reinforced, once per row and process: :class:`DataMismatchError` naming the
        key, the row and the fix. Keys without a reinforcement row are left to the replay's own error."""
        row = self._rows.find(key)
        if row is None or self._checked[row] or self._table.data.column(self._key_column)[row].as_py() != key:
            return
        image_row, data = self._encoded(key, row, cell)
        if not self._by_content:
            recorded = self._table.data.column(DIGEST_COLUMN)[row].as_py()
            refuse_changed_image(key, image_row, "the image dataset", bytes_digest(data), recorded, self.fix)
        elif content_key({"bytes": data, "path": None}) != key:
            raise DataMismatchError(
                f"the image of sample key {key!r} (row {image_row} of the image dataset) is not the one that was "
                f"reinforced: the run keyed its rows by content (a BLAKE2b of the image bytes), and this image's is "
                f"{content_key({'bytes': data, 'path': None})!r}: its soft labels belong to another image. {self.fix}")
        self._checked[row] = True

    def unchecked(self, rows: np.ndarray) -> np.ndarray:
        """Which of the reinforcement ``rows`` (a batch's, found by key) this process has not checked yet: a mask of
        those :meth:`check` still reads (a batch skips the others at no cost per row)."""
        return ~self._checked[rows]

    def _encoded(self, key: str, row: int, cell: Any) -> tuple[int, bytes]:
        """The image dataset's row of ``key`` and the encoded bytes of its image."""
        undecoded = isinstance(cell, dict) and ("bytes" in cell or "path" in cell)
        if self._images is None:
            if undecoded:
                return row, image_bytes(cell)
            raise InvalidConfigError(f"cannot check that the image of sample key {key!r} is the one reinforced: "
                                     f"{_UNBOUND} (or pass verify_images='off' to accept changed images).")
        image_row = row if self._image_rows is None else self._image_rows.row(key)
        stored = image_row if self._images._indices is None else self._images._indices.column(0)[image_row].as_py()
        data = self._images.data
        if self._image_rows is not None:
            self._image_rows.check(key, image_row, data.column(self._image_key)[stored].as_py())
        return image_row, image_bytes(cell if undecoded else data.column(self._image_column)[stored].as_py())


def _same_rows(one: datasets.Dataset, other: datasets.Dataset) -> bool:
    """Whether two datasets are views of the same table and rows (``with_format`` copies, e.g.)."""
    same_indices = (one._indices is None and other._indices is None) or (
        one._indices is not None and other._indices is not None and one._indices.table is other._indices.table)
    return one._data.table is other._data.table and same_indices


def changed_image_fix(description: RunDescription | None) -> str:
    """How to fix a changed image, naming the source version the run recorded (if any)."""
    source = (description.source or {}) if description is not None else {}
    version = (f" ({source.get('id')!r}, split {source.get('split')!r}, revision {source.get('revision')!r})"
               if source.get("id") else "")
    return (f"Replay the images that were reinforced{version}: the soft labels of the other image would train the "
            "student wrongly. Pass verify_images='off' only to accept changed images.")
