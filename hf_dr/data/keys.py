"""Stable sample keys: from a key column, the image file's name, or a content hash of the image bytes. Never the row
position. And image digests: what a run stores to catch an image that changed under its key.

Key sources (:data:`KEY_SOURCES`, recorded as ``columns["key_source"]`` of a run):

- ``"column"``: a key column's values, as text (``key_column=`` / ``--key-column``).
- ``"content"``: :func:`content_key`, a hash of the encoded image bytes (the default). Byte-identical images share it,
  so a split holding exact duplicates (ImageNet's train split does) is refused.
- ``"path"``: :func:`path_key`, the file name of the path ``datasets`` stores in the undecoded image cell
  ``{"bytes", "path"}`` (``key_from="path"`` / ``--key-from path``). It is the last component of the stored path: for
  the Hub's Parquet ImageNet the stored path is already the original file name (``n01440764_10026.JPEG``); a local
  imagefolder stores the full path, and ``push_to_hub`` keeps only that file name, so keys survive the upload.

:class:`KeyIndex` finds the row of a key: the one lookup behind reinforcements by key, mixing partners by key
(generation and replay) and source images by key.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from hf_dr.data.run_columns import KEY_SOURCES, resolve_key_source  # noqa: F401  (their home: the run's columns)
from hf_dr.errors import CorruptImageError, DataMismatchError, InvalidConfigError

if TYPE_CHECKING:
    import datasets

ROWS_CHECKED = 8  # rows of an image dataset whose keys refuse_other_keys reads at attach
VERIFY_IMAGES = ("sample", "full", "off")  # how many stored image digests a join compares
DIGEST_SAMPLE_SIZE = 64  # rows a "sample" check reads up front, drawn at random anew by every call


def image_bytes(image: Any) -> bytes:
    """The stored bytes of an image cell (``{"bytes", "path"}`` dict, Pillow image or path).

    Example:
        >>> image_bytes({"bytes": None, "path": None})
        Traceback (most recent call last):
        ...
        hf_dr.errors.CorruptImageError: an image cell holds neither bytes nor a path (an empty row); ...
    """
    if image is None or (isinstance(image, dict) and image.get("bytes") is None and not image.get("path")):
        raise CorruptImageError(
            "an image cell holds neither bytes nor a path (an empty row); drop such rows "
            "(dataset.filter(lambda row: row['image'] is not None)) or pass on_bad_image='skip' to reinforce"
        )
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


def path_key(path: str) -> str:
    """The key of an image stored at ``path``: its file name (the part after the last ``/`` or ``\\``; a chained
    ``zip://inner::outer`` URL gives the inner file's name).

    Example:
        >>> path_key("/data/imagenet/train/n01440764/n01440764_10026.JPEG"), path_key("n01440764_10026.JPEG")
        ('n01440764_10026.JPEG', 'n01440764_10026.JPEG')
    """
    return path.split("::", 1)[0].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def missing_path(row: int, image_column: str) -> DataMismatchError:
    """The error for a row keyed by path whose image cell stores no path."""
    return DataMismatchError(
        f"row {row} of the dataset has no file path in its image cell ({image_column!r}: images made in memory carry "
        "none), so it cannot be keyed by path: pass a key column (key_column= / --key-column), or key by content (the "
        "default; byte-identical images are then refused)."
    )


def bytes_digest(data: bytes) -> int:
    """The 8-byte BLAKE2b of ``data`` as a signed 64-bit integer (:func:`digest_hex` writes it as 16 hex digits):
    what a run stores per row to detect a changed image. Signed, because ``datasets`` cannot build a ``uint64``
    column from Python integers of 2**63 and above (``Dataset.from_list`` overflows).

    Example:
        >>> bytes_digest(b"abc"), digest_hex(bytes_digest(b"abc"))
        (-2829645022057097895, 'd8bb14d833d59559')
    """
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def digest_hex(digest: int) -> str:
    """A digest of :func:`bytes_digest` as the 16 hex digits of its 8 bytes."""
    return f"{digest & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def image_digest(image: Any) -> int:
    """:func:`bytes_digest` of an image cell's stored bytes (see :func:`image_bytes`)."""
    return bytes_digest(image_bytes(image))


def check_verify_images(verify_images: str) -> str:
    """``verify_images`` if it is one of :data:`VERIFY_IMAGES`, else :class:`InvalidConfigError`."""
    if verify_images not in VERIFY_IMAGES:
        raise InvalidConfigError(
            f"verify_images should be one of {list(VERIFY_IMAGES)}, but got {verify_images!r} instead.")
    return verify_images


def digest_positions(count: int, verify_images: str = "sample", rng: np.random.Generator | None = None) -> list[int]:
    """The rows of a ``count``-row reinforcement table whose image digests a join compares up front: every row
    (``"full"``), none (``"off"``), or :data:`DIGEST_SAMPLE_SIZE` rows drawn at random (``"sample"``), anew by every
    call (``rng`` seeded from ``os.urandom`` by default), so no row is left out every time. A ``"sample"`` join does
    not stop there: the replay checks every row the first time a process reads it
    (:class:`hf_dr.data.digests.RowDigests`).

    Example:
        >>> digest_positions(5), len(set(digest_positions(1000))), digest_positions(1000, "full")[-1]
        ([0, 1, 2, 3, 4], 64, 999)
    """
    if check_verify_images(verify_images) == "off":
        return []
    if verify_images == "full" or count <= DIGEST_SAMPLE_SIZE:
        return list(range(count))
    rng = rng if rng is not None else np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    return sorted(rng.choice(count, DIGEST_SAMPLE_SIZE, replace=False).tolist())


def refuse_changed_image(key: str, row: int, where: str, found: int, recorded: int, fix: str) -> None:
    """Raises :class:`DataMismatchError` when ``found`` is not the ``recorded`` digest of ``key``'s image.

    Example:
        >>> refuse_changed_image("a.png", 3, "the source", 1, 2, "Load the version that was reinforced.")
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: the image of sample key 'a.png' (row 3 of the source) is not the one that...
    """
    if found != recorded:
        raise DataMismatchError(
            f"the image of sample key {key!r} (row {row} of {where}) is not the one that was reinforced (BLAKE2b-64 "
            f"{digest_hex(found)}, recorded {digest_hex(recorded)}): its soft labels belong to another image. {fix}"
        )


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def key_hashes(keys: Iterable[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The 64-bit hash of every key (FNV-1a over its UTF-8 bytes, then SplitMix64's finaliser), vectorised over an
    Arrow string array: ~0.2 s for ImageNet's 1.28M keys, with no Python string made.

    Example:
        >>> key_hashes(["a", "b"]).dtype, bool(key_hashes(["a"])[0] == key_hashes(pa.array(["b", "a"]))[1])
        (dtype('uint64'), True)
    """
    array = KeyList(keys).array.cast(pa.large_string())
    if array.null_count:
        first = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataMismatchError(f"{array.null_count} sample key(s) are missing (null), the first at row {first}: "
                                "every row needs a key. Drop such rows (dataset.filter(lambda row: row[key_column] "
                                "is not None)) or fill them in.")
    count = len(array)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset:array.offset + count + 1]
    data = np.frombuffer(array.buffers()[2], np.uint8) if array.buffers()[2] is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    hashes = np.full(count, _FNV_OFFSET, np.uint64)
    rows, position = np.flatnonzero(lengths > 0), 0
    while rows.size:  # byte `position` of every key that long, all keys at once
        hashes[rows] = (hashes[rows] ^ data[starts[rows] + position]) * _FNV_PRIME
        position += 1
        rows = rows[lengths[rows] > position]
    hashes ^= hashes >> np.uint64(30)
    hashes *= _MIX[0]
    hashes ^= hashes >> np.uint64(27)
    hashes *= _MIX[1]
    return hashes ^ (hashes >> np.uint64(31))


_MASK = 2**64 - 1
_FNV_INTS, _MIX_INTS = (int(_FNV_OFFSET), int(_FNV_PRIME)), (int(_MIX[0]), int(_MIX[1]))  # no NumPy per byte


def key_hash(key: str) -> int:
    """:func:`key_hashes` of one key, in plain Python (2-10 us per key, not an array's setup).

    Example:
        >>> key_hash("n01440764_10026.JPEG") == int(key_hashes(["n01440764_10026.JPEG"])[0])
        True
    """
    value, prime = _FNV_INTS
    for byte in key.encode("utf-8"):
        value = ((value ^ byte) * prime) & _MASK
    value ^= value >> 30
    value = (value * _MIX_INTS[0]) & _MASK
    value ^= value >> 27
    value = (value * _MIX_INTS[1]) & _MASK
    return value ^ (value >> 31)


class KeyList(Sequence[str]):
    """Every row's key, held as one Arrow string array: ImageNet's 1.28M keys take two buffers (~30 MB) instead of
    ~100 MB of Python strings, and a DataLoader worker started by spawn unpickles the buffers, not 1.28M objects.

    Example:
        >>> keys = KeyList(["a", "b", "c"])
        >>> keys[1], list(keys[1:]), len(keys), keys == ["a", "b", "c"]
        ('b', ['b', 'c'], 3, True)
    """

    def __init__(self, keys: Iterable[str] | pa.Array | pa.ChunkedArray) -> None:
        if isinstance(keys, KeyList):
            keys = keys.array
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks() if keys.num_chunks else pa.array([], pa.string())
        self.array = keys if isinstance(keys, pa.Array) else pa.array(list(keys), pa.string())

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return KeyList(self.array.slice(start, max(stop - start, 0)))
            return KeyList(self.array.take(pa.array(range(start, stop, step), pa.int64())))
        return self.array[index].as_py()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 65536):
            yield from self.array.slice(start, 65536).to_pylist()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


class KeyIndex:
    """The row of every sample key of a table, with an error naming a missing key and the fix.

    Compact at any scale: the keys' 64-bit hashes (:func:`key_hashes`), sorted, and their rows, 12 bytes per key
    (15 MB for ImageNet's 1.28M), held in tensors, so DataLoader workers share one copy under fork and spawn alike
    (multiprocessing's pickler moves them to shared memory and sends handles, not the arrays). A lookup is a binary
    search (``np.searchsorted``). Keys sharing a hash (a duplicate key, or a 64-bit collision: about 1 in 10^7 for
    1.28M keys) are kept exactly, in a dict; a duplicate key gives its last row. A key that is absent but shares a
    hash with a present one is refused: the found row's key is compared, by the index or by a caller that keeps the
    table (:meth:`check`).

    Args:
        keys (`Iterable[str]` or `pyarrow.Array`): every row's key, in row order (an Arrow string column is hashed
            without making Python strings).
        where (`str`, *optional*, defaults to ``"the dataset"``): what the table is, for the error message.
        fix (`str`, *optional*): how to fix a missing key, for the error message.
        keep_keys (`bool`, *optional*, defaults to True): keep the keys (as one Arrow array) so that :meth:`row`
            checks the key of the row it found; False for a caller that reads the key from its own table (the
            replay: its memory-mapped table is not copied into the index).

    Example:
        >>> index = KeyIndex(["a", "b"], where="the image dataset", fix="pass images=<full dataset>.")
        >>> index.row("b"), "c" in index, len(index)
        (1, False, 2)
        >>> index.row("c")
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: sample key 'c' is not in the image dataset; pass images=<full dataset>.
    """

    def __init__(self, keys: Iterable[str] | pa.Array | pa.ChunkedArray, where: str = "the dataset",
                 fix: str = "", keep_keys: bool = True) -> None:
        keys = KeyList(keys).array
        self._keys = KeyList(keys) if keep_keys else None  # to check a found row's key (a hash shared by chance)
        hashes = key_hashes(keys)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        shared = np.flatnonzero(hashes[1:] == hashes[:-1])
        rows = np.unique(np.concatenate([order[shared], order[shared + 1]]))
        self._exact = {keys[int(row)].as_py(): int(row) for row in rows}  # in row order: a duplicate's last row wins
        self._shared_hashes = set(hashes[shared].tolist())
        row_type = torch.int32 if len(order) < 2**31 else torch.int64
        # tensors: multiprocessing's pickler (what DataLoader workers receive) moves them to shared memory on demand
        self._hashes = torch.from_numpy(hashes.view(np.int64))
        self._rows = torch.from_numpy(order).to(row_type)
        self.where, self.fix = where, fix

    def find(self, key: str) -> int | None:
        """The row of ``key``, or None when no key has its hash."""
        key = str(key)
        value = key_hash(key)
        if value in self._shared_hashes:
            return self._exact.get(key)
        hashes = self._hashes.numpy().view(np.uint64)  # a view of the (shared) tensor, no copy
        position = int(hashes.searchsorted(np.uint64(value)))
        return int(self._rows[position]) if position < len(hashes) and int(hashes[position]) == value else None

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """:meth:`row` of every key of a batch, hashed and searched at once (``int64``); the first missing key raises
        as :meth:`row` does."""
        keys = [str(key) for key in keys]
        known = self._hashes.numpy().view(np.uint64)
        if not keys or not len(known):
            return np.asarray([self.row(key) for key in keys], dtype=np.int64)  # none, or the missing-key error
        hashes = key_hashes(keys)
        positions = np.minimum(known.searchsorted(hashes), len(known) - 1)
        rows = self._rows.numpy()[positions].astype(np.int64)
        odd = known[positions] != hashes
        if self._shared_hashes:
            odd |= np.isin(hashes, np.fromiter(self._shared_hashes, np.uint64, len(self._shared_hashes)))
        if self._keys is not None:
            found = self._keys.array.take(pa.array(rows)).to_pylist()
            odd |= np.asarray(found, dtype=object) != np.asarray(keys, dtype=object)
        for position in np.flatnonzero(odd).tolist():  # a shared hash or a missing key: the one-key lookup
            rows[position] = self.row(keys[position])
        return rows

    def row(self, key: str) -> int:
        """The row of ``key``, or :class:`DataMismatchError` naming the key, the table and the fix. An index that
        keeps its keys checks the row's key; one made with ``keep_keys=False`` leaves that to :meth:`check`."""
        row = self._checked(str(key))
        if row is None:
            raise self.missing(str(key))
        return row

    def _checked(self, key: str) -> int | None:
        """:meth:`find`, and None as well when a kept key at the found row is another (a hash shared by chance)."""
        row = self.find(key)
        return None if row is None or (self._keys is not None and self._keys[row] != key) else row

    def check(self, key: str, row: int, found: Any) -> None:
        """Raises the missing-key error when the table's key at ``row`` (``found``) is not ``key``: an absent key
        that shares a 64-bit hash with a present one."""
        if str(found) != str(key):
            raise self.missing(key)

    def missing(self, key: str) -> DataMismatchError:
        """The error for a key the table lacks."""
        fix = f"; {self.fix}" if self.fix else ""
        return DataMismatchError(f"sample key {key!r} is not in {self.where}{fix}")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._checked(key) is not None

    def __len__(self) -> int:
        return len(self._rows)


def refuse_other_keys(dataset: datasets.Dataset, key_column: str, keys: KeyIndex, description: Any) -> None:
    """Refuses images whose ``key_column`` holds no key of a run that keyed its rows by image content or file name
    (``description.columns.key_source``): the hook looks rows up by that column, so a dataset's own ids there
    (``digits-0000``) would fail at the first sample with a message about versions. Checks the first
    :data:`ROWS_CHECKED` rows: refused when none of their keys is the run's.

    Args:
        dataset (`datasets.Dataset`): the images a replay hook is being attached to.
        key_column (`str`): the column the hook reads keys from.
        keys (`KeyIndex`): the run's keys.
        description (`RunDescription`, *optional*): the run's description (nothing to check without one).
    """
    source = getattr(getattr(description, "columns", None), "key_source", None)
    if source not in ("content", "path") or len(dataset) == 0 or len(keys) == 0:
        return
    found = [k for k in dataset.select_columns([key_column]).with_format(None)[:ROWS_CHECKED][key_column] if k]
    if not found or any(str(key) in keys for key in found):  # null keys and skipped rows: refused row by row
        return
    first = str(found[0])
    what = "content (a hash of its bytes)" if source == "content" else "file name"
    raise DataMismatchError(
        f"the run keyed its rows by image {what}, but column {key_column!r} of the images holds {first!r} and "
        f"{len(found) - 1} more of its first rows, none a key of the run: the hook looks each row up by that column. "
        f"Add the run's keys to the images: images, _ = hf_dr.data.source_keys.keyed(images, <image column>, None, "
        f"{source!r}, {key_column!r}); hf_dr.load_reinforced and the training scripts do this.")
