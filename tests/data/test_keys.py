"""Sample keys: the stored bytes of every kind of image cell, and content keys that depend on those bytes only."""

from __future__ import annotations

import hashlib
import io

import datasets
import numpy as np
import pytest
from PIL import Image

from hf_dr.data.keys import content_key, image_bytes
from tests.data_utils import digit_images


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory, photo_images) -> tuple[str, bytes]:
    """A real photo saved as a JPEG file: its path and bytes."""
    path = str(tmp_path_factory.mktemp("keys") / "china.jpg")
    photo_images[0].save(path, format="JPEG", quality=90)
    with open(path, "rb") as f:
        return path, f.read()


def test_image_bytes_of_every_cell_form(jpeg):
    """A {"bytes"} cell, a {"path"} cell without bytes and a plain path all give the file's exact bytes."""
    path, data = jpeg
    assert image_bytes({"bytes": data, "path": None}) == data
    assert image_bytes({"bytes": None, "path": path}) == data
    assert image_bytes(path) == data
    assert image_bytes({"bytes": data, "path": "/does/not/exist.jpg"}) == data  # bytes win over the path


def test_image_bytes_of_a_pillow_image_is_a_lossless_png(photo_images):
    """A decoded image is encoded as PNG, which decodes back to the same pixels."""
    data = image_bytes(photo_images[1])
    assert data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as back:
        assert np.array_equal(np.asarray(back), np.asarray(photo_images[1]))


def test_content_key_is_blake2b_of_the_stored_bytes(jpeg):
    """32 hex characters of BLAKE2b-128 over the bytes, the same for every form of the same file."""
    path, data = jpeg
    expected = hashlib.blake2b(data, digest_size=16).hexdigest()
    assert content_key({"bytes": data, "path": None}) == expected
    assert content_key({"bytes": None, "path": path}) == expected == content_key(path)
    assert len(expected) == 32 and int(expected, 16) >= 0


def test_content_keys_of_a_datasets_column(digits_dataset):
    """The undecoded cells of a datasets Image column key by their PNG bytes; 200 digits give 200 distinct keys
    (scikit-learn's digits hold no exact duplicate among the first 200)."""
    cells = digits_dataset.cast_column("image", datasets.Image(decode=False))["image"][:]
    keys = [content_key(cell) for cell in cells]
    assert keys == [hashlib.blake2b(cell["bytes"], digest_size=16).hexdigest() for cell in cells]
    assert len(set(keys)) == len(keys)


def test_content_key_changes_with_one_pixel_and_not_with_the_copy():
    """Equal pixels give equal keys (a copy, or the same image built twice); one changed pixel changes the key."""
    image = digit_images(1)[0][0]
    assert content_key(image) == content_key(image.copy()) == content_key(digit_images(1)[0][0])
    changed = image.copy()
    changed.putpixel((0, 0), (255, 0, 0))
    assert content_key(changed) != content_key(image)


def test_missing_file_raises():
    """A path cell pointing nowhere is an error, not a key of nothing."""
    with pytest.raises(FileNotFoundError):
        content_key({"bytes": None, "path": "/does/not/exist.png"})
