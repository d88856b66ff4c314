"""Seeded params: drawn again at replay from (seed, key, index) and the image sizes, bit-exact with the stored ones on
real photos for every policy, and refused, naming the record, whenever the draws differ from the checksum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_dr
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeded import CHECK_FIELD, PARTNER_FIELD, params_checksum, recompute_params, seeded_record
from hf_dr.augment.seeding import generator_for
from hf_dr.errors import ParamsMismatchError, RecomputedParamsError

KEYS = ["photo-0", "photo-1"]


def _pool(photo_tensors) -> PartnerPool:
    return PartnerPool(KEYS, [tuple(t.shape[-2:]) for t in photo_tensors])


@pytest.mark.parametrize("name", hf_dr.list_policies())
def test_seeded_replay_is_bit_exact_with_stored_replay_on_real_photos(name, photo_tensors):
    policy = hf_dr.create_policy(name)
    pool = _pool(photo_tensors)
    for row, image in enumerate(photo_tensors):
        size = tuple(image.shape[-2:])
        for index in range(12):
            params = policy.sample_params(size, generator_for(7, KEYS[row], index), pool if policy.needs_partner
                                          else None)
            encoded = policy.encode(params)
            stored = seeded_record(policy, encoded)
            partner_key = policy.partner_key(params)
            partner_size = pool.sizes[KEYS.index(partner_key)] if partner_key else None
            again = recompute_params(policy, stored, 7, KEYS[row], index, size, len(pool), partner_size)
            assert again == policy.decode(encoded)
            partner = photo_tensors[KEYS.index(partner_key)] if partner_key else None
            assert torch.equal(policy.apply(image, again, 48, partner),
                               policy.apply(image, policy.decode(encoded), 48, partner))


def test_a_seeded_record_stores_only_a_checksum_and_the_partner():
    assert set(seeded_record(hf_dr.create_policy("rrc+ra_re"), {"crop": {}})) == {CHECK_FIELD}
    mixing = hf_dr.create_policy("rrc+mix")
    params = mixing.sample_params((32, 32), generator_for(0, "a", 0), PartnerPool(["b"], [(32, 32)]))
    stored = seeded_record(mixing, mixing.encode(params))
    assert stored[PARTNER_FIELD] == params["mixing"]["partner_key"]
    assert 0 <= stored[CHECK_FIELD] < 2**32


@pytest.mark.parametrize("change", ["checksum", "seed", "index", "size", "numpy draw"])
def test_draws_that_differ_from_the_checksum_are_refused_naming_the_record(change, monkeypatch):
    policy = hf_dr.create_policy("rrc+ra_re")
    params = policy.sample_params((60, 80), generator_for(3, "img-9", 5))
    stored = seeded_record(policy, policy.encode(params))
    seed, index, size = 3, 5, (60, 80)
    if change == "checksum":
        stored = {CHECK_FIELD: stored[CHECK_FIELD] ^ 1}
    elif change == "seed":
        seed = 4
    elif change == "index":
        index = 6
    elif change == "size":
        size = (61, 80)
    else:  # a NumPy release whose default generator draws differently from the same seed
        def other_numpy(*entropy):
            return np.random.Generator(np.random.PCG64DXSM(generator_for(*entropy).bit_generator.seed_seq))

        monkeypatch.setattr("hf_dr.augment.seeded.generator_for", other_numpy)
    with pytest.raises(RecomputedParamsError, match=rf"record {index} of key 'img-9'.*versions") as info:
        recompute_params(policy, stored, seed, "img-9", index, size)
    assert isinstance(info.value, ParamsMismatchError) and isinstance(info.value, ValueError)


def test_a_mixing_record_without_a_pool_size_is_refused():
    policy = hf_dr.create_policy("rrc+mix")
    with pytest.raises(RecomputedParamsError, match="pool size"):
        recompute_params(policy, {CHECK_FIELD: 0, PARTNER_FIELD: ""}, 0, "a", 0, (32, 32))


def test_the_checksum_covers_every_field():
    policy = hf_dr.create_policy("rrc+mix+ra_re")
    pool = PartnerPool(["b", "c"], [(40, 30), (32, 32)])
    encoded = policy.encode(policy.sample_params((32, 32), generator_for(0, "a", 1), pool))
    reference = params_checksum(encoded)
    for op, values in encoded.items():
        for name, value in values.items():
            if isinstance(value, (int, bool)) and not isinstance(value, bool):
                changed = {**encoded, op: {**values, name: value + 1}}
                assert params_checksum(changed) != reference, (op, name)
