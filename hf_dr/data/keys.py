"""Stable sample keys: from a key column, or a content hash of the image bytes. Never the row position.

:class:`KeyIndex` finds the row of a key: the one lookup behind reinforcements by key, mixing partners by key
(generation and replay) and source images by key.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from typing import Any

from PIL import Image

from hf_dr.errors import DataMismatchError


def image_bytes(image: Any) -> bytes:
    """The stored bytes of an image cell (``{"bytes", "path"}`` dict, Pillow image or path)."""
    if isinstance(image, dict):
        if image.get("bytes") is not None:
            return image["bytes"]
        with open(image["path"], "rb") as f:
            return f.read()
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    with open(image, "rb") as f:
        return f.read()


def content_key(image: Any) -> str:
    """A key for an image from a hash of its encoded bytes (32 hex characters of BLAKE2b).

    Example:
        >>> from PIL import Image
        >>> content_key(Image.new("RGB", (2, 2))) == content_key(Image.new("RGB", (2, 2)))
        True
    """
    return hashlib.blake2b(image_bytes(image), digest_size=16).hexdigest()


class KeyIndex:
    """The row of every sample key of a table, with an error naming a missing key and the fix.

    Args:
        keys (`Iterable[str]`): every row's key, in row order.
        where (`str`, *optional*, defaults to ``"the dataset"``): what the table is, for the error message.
        fix (`str`, *optional*): how to fix a missing key, for the error message.

    Example:
        >>> index = KeyIndex(["a", "b"], where="the image dataset", fix="pass images=<full dataset>.")
        >>> index.row("b"), "c" in index, len(index)
        (1, False, 2)
        >>> index.row("c")
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: sample key 'c' is not in the image dataset; pass images=<full dataset>.
    """

    def __init__(self, keys: Iterable[str], where: str = "the dataset", fix: str = "") -> None:
        self.rows = {key: row for row, key in enumerate(keys)}
        self.where, self.fix = where, fix

    def row(self, key: str) -> int:
        """The row of ``key``, or :class:`DataMismatchError` naming the key, the table and the fix."""
        try:
            return self.rows[key]
        except KeyError:
            fix = f"; {self.fix}" if self.fix else ""
            raise DataMismatchError(f"sample key {key!r} is not in {self.where}{fix}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)
