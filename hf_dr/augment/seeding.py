"""Deterministic random generators derived from (seed, ..., sample key).

Every random draw in hf_dr comes from a :class:`numpy.random.Generator` seeded by a tuple of integers,
never from a global RNG. The same tuple gives the same draws on any machine, process count or number
of DataLoader workers.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_to_int(key: str | int) -> int:
    """Maps a sample key to a stable 64-bit integer (blake2b of its text form).

    Example:
        >>> key_to_int("n01440764_10026") == key_to_int("n01440764_10026")
        True
    """
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def generator_for(*entropy: int | str) -> np.random.Generator:
    """Returns a generator seeded by ``entropy`` (ints, and keys mapped through :func:`key_to_int`).

    Example:
        >>> int(generator_for(0, "img_7", 3).integers(100)) == int(generator_for(0, "img_7", 3).integers(100))
        True
    """
    words = [key_to_int(e) if isinstance(e, str) else int(e) for e in entropy]
    return np.random.default_rng(np.random.SeedSequence(words))


def choose_index(count: int, *entropy: int | str) -> int:
    """A uniform choice in ``[0, count)`` derived from ``entropy`` by hashing (fast enough for every sample of
    every epoch; the modulo bias is below ``count / 2**64``).

    Example:
        >>> choose_index(400, 0, 3, "img_7") == choose_index(400, 0, 3, "img_7")
        True
    """
    text = "\x1f".join(str(e) for e in entropy).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") % count
