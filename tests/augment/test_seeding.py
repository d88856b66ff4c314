"""Seeded generators and the per-epoch choice: deterministic, independent across entropy tuples, uniform in range."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hf_dr.augment.seeding import choose_index, generator_for, key_to_int

# same-arity tuples, as every call site uses (NumPy's SeedSequence drops trailing zero words, so (0, "k", 0) and
# (0, "k") seed alike: only tuples of one fixed shape are promised to differ)
TUPLES = [(0, "img_7", 3), (0, "img_7", 4), (1, "img_7", 3), (0, "img_8", 3), (3, "img_7", 0), ("img_7", 0, 3),
          (0, 7, 3), (0, "img_7", 0)]


def _draws(*entropy: int | str, count: int = 64) -> np.ndarray:
    return generator_for(*entropy).random(count)


def test_key_to_int_is_a_stable_64_bit_hash_of_the_text():
    """blake2b-64 of the key's text, little-endian: the same for a key and its text form, different across keys."""
    expected = int.from_bytes(hashlib.blake2b(b"n01440764_10026", digest_size=8).digest(), "little")
    assert key_to_int("n01440764_10026") == expected
    assert key_to_int(17) == key_to_int("17")
    values = {key_to_int(f"k{i}") for i in range(1000)}
    assert len(values) == 1000 and all(0 <= v < 2**64 for v in values)


def test_generator_for_is_deterministic():
    """The same tuple gives the same stream, across fresh generators and all draw methods."""
    for entropy in TUPLES:
        a, b = generator_for(*entropy), generator_for(*entropy)
        assert np.array_equal(a.random(100), b.random(100))
        assert np.array_equal(a.integers(0, 1000, 50), b.integers(0, 1000, 50))
        assert a.uniform(0.08, 1.0) == b.uniform(0.08, 1.0)


def test_generator_for_differs_for_every_tuple():
    """Changing any element or the order of the tuple gives another stream."""
    streams = [_draws(*entropy) for entropy in TUPLES]
    for (i, a), (j, b) in [(p, q) for p in enumerate(streams) for q in enumerate(streams) if p[0] < q[0]]:
        assert not np.array_equal(a, b), (TUPLES[i], TUPLES[j])


def test_streams_of_neighbouring_tuples_are_uncorrelated():
    """Streams for consecutive indices or keys look independent: correlations near 0 (|r| < 5 / sqrt(n))."""
    n = 4000
    first = _draws(0, "img_7", 0, count=n)
    for entropy in [(0, "img_7", 1), (1, "img_7", 0), (0, "img_8", 0)]:
        r = np.corrcoef(first, _draws(*entropy, count=n))[0, 1]
        assert abs(r) < 5 / np.sqrt(n), (entropy, r)
    # the first draws across many indices: uniform in [0, 1), no shared pattern
    heads = np.array([generator_for(0, "img_7", i).random() for i in range(n)])
    assert abs(heads.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)


def test_generator_for_takes_numpy_ints_like_python_ints():
    """Integers from NumPy (e.g. dataset indices) seed like the same Python int."""
    assert np.array_equal(_draws(np.int64(5), "k"), _draws(5, "k"))


@pytest.mark.parametrize("count", [1, 2, 3, 10, 400])
def test_choose_index_is_in_range_and_deterministic(count):
    """Always in [0, count), the same for the same entropy."""
    for i in range(300):
        index = choose_index(count, 0, i, f"key-{i}")
        assert 0 <= index < count
        assert index == choose_index(count, 0, i, f"key-{i}")


def test_choose_index_is_roughly_uniform():
    """Over many keys the choice among 8 is uniform: chi-square with 7 degrees of freedom below 30 (p < 1e-4)."""
    count, n = 8, 8000
    histogram = np.bincount([choose_index(count, 0, 1, f"digit-{i:05d}") for i in range(n)], minlength=count)
    expected = n / count
    chi2 = float(((histogram - expected) ** 2 / expected).sum())
    assert chi2 < 30.0, histogram


def test_choose_index_changes_with_seed_epoch_and_key():
    """Each of seed, epoch and key moves the choice: over 500 keys, about 1/count of choices agree, not all."""
    count, keys = 4, [f"k{i}" for i in range(500)]
    base = [choose_index(count, 0, 0, k) for k in keys]
    for other in ([choose_index(count, 1, 0, k) for k in keys], [choose_index(count, 0, 1, k) for k in keys],
                  [choose_index(count, 0, 0, k + "x") for k in keys]):
        agreement = np.mean(np.array(base) == np.array(other))
        assert 0.15 < agreement < 0.35, agreement  # 1/4 expected for independent choices
