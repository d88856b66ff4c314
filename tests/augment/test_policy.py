"""Policies: sampling vs replay, bit-exact replay after a Parquet round trip on real photos, schema, config."""

from __future__ import annotations

import pickle

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hf_dr import create_policy, list_policies
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.registry import policy_from_config
from hf_dr.augment.seeding import generator_for
from hf_dr.errors import InvalidConfigError, ParamsMismatchError, UnknownPolicyError

KEYS = ["china", "flower"]


@pytest.fixture(scope="module")
def pool(photo_tensors):
    return PartnerPool(keys=KEYS, sizes=[tuple(t.shape[-2:]) for t in photo_tensors])


def _loader(photo_tensors):
    return dict(zip(KEYS, photo_tensors, strict=True)).__getitem__


def test_list_policies_has_the_paper_variants():
    assert list_policies() == ["crop_flip", "rrc", "rrc+mix", "rrc+mix+ra_re", "rrc+ra_re"]


def test_unknown_policy_lists_valid_names():
    with pytest.raises(UnknownPolicyError, match="valid names are .*rrc\\+ra_re") as info:
        create_policy("rrc+autoaugment")
    assert isinstance(info.value, ValueError)


def test_overrides_reach_the_op_and_bad_overrides_are_refused():
    assert create_policy("rrc+ra_re", randaugment={"magnitude": 5}).image_ops[0].magnitude == 5
    with pytest.raises(ValueError, match="do not apply"):
        create_policy("rrc", randaugment={"magnitude": 5})


@pytest.mark.parametrize("name", list_policies())
def test_call_equals_sample_then_apply(name, photo_tensors, pool):
    policy = create_policy(name)
    for seed in range(6):
        out, params = policy(photo_tensors[0], 64, generator_for(seed, "china", 0), pool, _loader(photo_tensors))
        again = policy.sample_params(tuple(photo_tensors[0].shape[-2:]), generator_for(seed, "china", 0), pool)
        assert again == params
        partner = photo_tensors[KEYS.index(params["mixing"]["partner_key"])] if "mixing" in params and \
            params["mixing"]["mode"] else None
        assert torch.equal(policy.apply(photo_tensors[0], params, 64, partner), out)


@pytest.mark.parametrize("name", list_policies())
def test_bit_exact_replay_after_parquet_round_trip(name, photos, photo_tensors, pool, tmp_path):
    """The image the teacher saw is reproduced bit for bit from params read back from Parquet."""
    policy = create_policy(name)
    seen, rows = [], []
    for index in range(12):
        key = KEYS[index % 2]
        image = photos[index % 2]  # numpy HWC at generation ...
        out, params = policy(image, (72, 56), generator_for(7, key, index), pool, _loader(photo_tensors))
        seen.append(out)
        rows.append({"key": key, "params": policy.encode(params)})
    features = datasets.Features({"key": datasets.Value("string"), "params": policy.features()})
    dataset = datasets.Dataset.from_list(rows, features=features)
    path = tmp_path / "params.parquet"
    pq.write_table(dataset.data.table, path, compression="zstd")
    reloaded = datasets.Dataset.from_parquet(str(path))
    assert reloaded.features == features
    for index, row in enumerate(reloaded):
        params = policy.decode(row["params"])
        mix = params.get("mixing")
        partner = photos[KEYS.index(mix["partner_key"])] if mix and mix["mode"] else None
        replayed = policy.apply(photo_tensors[index % 2], params, (72, 56), partner)  # ... tensor at replay
        assert torch.equal(replayed, seen[index]), f"record {index} does not replay"


def test_resolution_is_chosen_at_replay(photo_tensors):
    policy = create_policy("rrc")
    params = policy.sample_params((427, 640), np.random.default_rng(0))
    small, large = policy.apply(photo_tensors[0], params, 32), policy.apply(photo_tensors[0], params, 256)
    assert small.shape[-2:] == (32, 32) and large.shape[-2:] == (256, 256)
    downsized = torch.nn.functional.interpolate(large[None].float(), size=(32, 32), mode="area")[0]
    assert (downsized - small.float()).abs().mean() < 6  # the same crop, at another resolution


def test_grayscale_images_stay_one_channel(photo_tensors):
    gray = photo_tensors[0].float().mean(0, keepdim=True).round().to(torch.uint8)  # a 1-channel tensor
    policy = create_policy("rrc+ra_re", erasing={"prob": 1.0})
    out, _ = policy(gray, 32, np.random.default_rng(0))
    assert out.shape == (1, 32, 32)


@pytest.mark.parametrize("name", list_policies())
def test_config_round_trip_and_pickling(name, pool):
    policy = create_policy(name)
    rebuilt = policy_from_config(policy.config())
    assert rebuilt.config() == policy.config()
    assert pickle.loads(pickle.dumps(policy)).config() == policy.config()
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    assert rebuilt.sample_params((50, 60), g1, pool) == policy.sample_params((50, 60), g2, pool)


def test_params_that_do_not_match_the_policy_are_refused(photo_tensors):
    rrc, ra = create_policy("rrc"), create_policy("rrc+ra_re")
    params = ra.sample_params((427, 640), np.random.default_rng(0))
    with pytest.raises(ParamsMismatchError, match="needs params for ops \\['crop'\\]"):
        rrc.apply(photo_tensors[0], params, 32)
    with pytest.raises(ParamsMismatchError):
        ra.decode({"crop": {"top": 1}})
    with pytest.raises(ValueError):
        rrc.apply(photo_tensors[0], {"crop": {**params["crop"], "flip": "yes"}}, 32)


def test_mixing_policy_needs_partners(photo_tensors):
    policy = create_policy("rrc+mix")
    with pytest.raises(ValueError, match="partners=PartnerPool"):
        policy.sample_params((10, 10), np.random.default_rng(0))


@pytest.mark.parametrize("name", list_policies())
def test_with_interpolation_changes_only_the_crop_and_leaves_the_policy_as_it_is(name, photo_tensors):
    """The policy whose crop resizes by the given interpolation (as if built with it), the same pixels as that policy
    for the same params; the original is unchanged and returned as it is for its own interpolation."""
    policy = create_policy(name)
    before = policy.config()
    assert policy.with_interpolation(policy.crop.interpolation) is policy
    for interpolation in ("bicubic", "nearest", "lanczos"):
        changed = policy.with_interpolation(interpolation)
        reference = create_policy(name, crop={"interpolation": interpolation})
        assert changed.config() == reference.config() and changed.name == policy.name
        assert policy.config() == before
        params = policy.sample_params(tuple(photo_tensors[1].shape[-2:]), generator_for(0, "flower", 2),
                                      PartnerPool(["flower"], [tuple(photo_tensors[1].shape[-2:])]))
        partner = photo_tensors[1] if params.get("mixing", {}).get("mode") else None
        assert torch.equal(changed.apply(photo_tensors[1], params, 36, partner),
                           reference.apply(photo_tensors[1], params, 36, partner))


def test_with_interpolation_refuses_an_unknown_mode_naming_the_choices():
    with pytest.raises(InvalidConfigError, match=r"interpolation should be one of \[.*'bicubic'.*\], but got 'cubic'"):
        create_policy("rrc").with_interpolation("cubic")
