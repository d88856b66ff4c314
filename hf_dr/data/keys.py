"""Stable sample keys: from a key column, or a content hash of the image bytes. Never the row position."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from PIL import Image


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
