"""Every augmentation op: params within bounds, replay equals sample+apply, no in-place mutation, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from hf_dr.augment.ops import (
    OP_NAMES,
    Mixing,
    PartnerPool,
    RandAugment,
    RandomCropFlip,
    RandomErasing,
    RandomResizedCropFlip,
)
from hf_dr.errors import InvalidConfigError, ParamsMismatchError

SIZE = (427, 640)
POOL = PartnerPool(keys=["a", "b", "c"], sizes=[(427, 640), (100, 80), (64, 64)])
OPS = [RandomResizedCropFlip(), RandomCropFlip(), RandAugment(), RandAugment(magnitude_std=3.0, prob=0.5),
       RandomErasing(), RandomErasing(prob=1.0), Mixing()]


def _sample(op, seed: int):
    generator = np.random.default_rng(seed)
    return op.sample(SIZE, generator, POOL) if isinstance(op, Mixing) else op.sample(SIZE, generator)


def _apply(op, image, params, partner):
    if isinstance(op, Mixing):
        return op.apply(image, params, partner)
    if isinstance(op, (RandomResizedCropFlip, RandomCropFlip)):
        return op.apply(image, params, (96, 112))
    return op.apply(image, params)


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_params_have_declared_fields_and_bounds(op):
    for seed in range(200):
        params = _sample(op, seed)
        op.check(params)  # field names, types, fractions in [0, 1], list lengths
        if "top" in params and params.get("height", 0) > 0:
            assert params["top"] + params["height"] <= 1.0 + 1e-4
            assert params["left"] + params["width"] <= 1.0 + 1e-4


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_same_seed_same_params(op):
    assert [_sample(op, s) for s in range(20)] == [_sample(op, s) for s in range(20)]
    assert len({repr(_sample(op, s)) for s in range(20)}) > 1


def _pixels(image) -> np.ndarray:
    return image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_apply_is_pure(op, photo_images, photo_tensors):
    """Same params, same pixels; the input (a Pillow image, or tensors for mixing) is never modified."""
    if isinstance(op, Mixing):  # mixing acts on the uint8 tensors of the augmented views
        image, partner = photo_tensors[0][:, :96, :112].clone(), photo_tensors[1][:, :96, :112].clone()
    else:
        image, partner = photo_images[0].crop((0, 0, 300, 200)), None
        if isinstance(op, (RandAugment, RandomErasing)):  # these act on the resized crop
            image = image.crop((0, 0, 112, 96))
    before = _pixels(image).copy()
    for seed in range(30):
        params = _sample(op, seed)
        first, second = _apply(op, image, params, partner), _apply(op, image, params, partner)
        assert np.array_equal(_pixels(first), _pixels(second))
        assert _pixels(first).dtype == np.uint8
        assert np.array_equal(_pixels(image), before)


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_pickling_keeps_behaviour(op, photo_tensors):
    clone = pickle.loads(pickle.dumps(op))
    assert clone.config() == op.config()
    assert _sample(clone, 3) == _sample(op, 3)


def test_rrc_area_and_ratio_follow_config():
    op = RandomResizedCropFlip(scale=(0.5, 0.6), ratio=(1.0, 1.0))
    for seed in range(100):
        p = op.sample(SIZE, np.random.default_rng(seed))
        area = p["height"] * p["width"]
        assert 0.49 <= area <= 0.61
        assert abs(p["width"] * SIZE[1] - p["height"] * SIZE[0]) <= 2  # square in pixels
    flips = [op.sample(SIZE, np.random.default_rng(s))["flip"] for s in range(400)]
    assert 0.4 < np.mean(flips) < 0.6


def test_crop_flip_is_fixed_size_random_position():
    op = RandomCropFlip(crop_fraction=0.875)
    tops = set()
    for seed in range(50):
        p = op.sample(SIZE, np.random.default_rng(seed))
        assert p["height"] == p["width"] == pytest.approx(0.875, abs=1e-4)
        tops.add(p["top"])
    assert len(tops) > 40


def test_crop_output_is_exact_pixels_of_source(photo_images, photos):
    op = RandomResizedCropFlip()
    params = {"top": 10 / 427, "left": 20 / 640, "height": 50 / 427, "width": 60 / 640, "flip": False}
    assert np.array_equal(np.asarray(op.apply(photo_images[0], params, (50, 60))), photos[0][10:60, 20:80])
    flipped = op.apply(photo_images[0], {**params, "flip": True}, (50, 60))
    assert np.array_equal(np.asarray(flipped), photos[0][10:60, 20:80][:, ::-1])


def test_randaugment_signs_and_magnitudes():
    op = RandAugment(num_ops=2, magnitude=9)
    ops_seen, negative_seen = set(), False
    for seed in range(300):
        p = op.sample((224, 224), np.random.default_rng(seed))
        for op_id, level in zip(p["ops"], p["magnitudes"], strict=True):
            name = OP_NAMES[op_id]
            ops_seen.add(name)
            assert abs(level) == (0 if name in ("Identity", "AutoContrast", "Equalize") else 9) or abs(level) == 9
            if level < 0:
                negative_seen = True
                assert name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                                "Contrast", "Sharpness")
    assert ops_seen == set(OP_NAMES) and negative_seen


def test_randaugment_magnitude_table_matches_torchvision():
    op = RandAugment()
    assert op.magnitude_of("Rotate", 30, 224, 224) == pytest.approx(30.0)
    assert op.magnitude_of("TranslateX", -30, 224, 331) == pytest.approx(-150.0)
    assert op.magnitude_of("ShearY", 9, 10, 10) == pytest.approx(0.3 * 9 / 30)


@pytest.mark.parametrize("name", OP_NAMES)
def test_each_randaugment_op_changes_or_keeps_image_as_expected(name, photo_images):
    op = RandAugment()
    image = photo_images[1].crop((200, 100, 296, 196))
    out = op.apply_op(image, name, 20)
    assert out.size == image.size and out.mode == image.mode
    assert np.array_equal(np.asarray(out), np.asarray(image)) == (name == "Identity")


def test_randaugment_prob_zero_is_identity():
    p = RandAugment(prob=0.0).sample((32, 32), np.random.default_rng(0))
    assert p == {"ops": [0, 0], "magnitudes": [0, 0]}


def test_erasing_fills_box_with_value(photo_images):
    op = RandomErasing(value=(1, 2, 3))
    image = photo_images[0].crop((0, 0, 100, 100))
    out = np.asarray(op.apply(image, {"erase": True, "top": 0.1, "left": 0.2, "height": 0.3, "width": 0.4}))
    assert (out[10:40, 20:60] == np.array([1, 2, 3], dtype=np.uint8)).all()
    assert np.array_equal(out[50:], np.asarray(image)[50:])


def test_erasing_probability():
    rate = np.mean([RandomErasing().sample((1, 1), np.random.default_rng(s))["erase"] for s in range(2000)])
    assert 0.2 < rate < 0.3


def test_mixing_modes_and_partner_from_pool(photo_tensors):
    op = Mixing()
    modes = [op.sample(SIZE, np.random.default_rng(s), POOL)["mode"] for s in range(400)]
    assert set(modes) == {1, 2} and 0.4 < np.mean(np.array(modes) == 1) < 0.6
    p = op.sample(SIZE, np.random.default_rng(1), POOL)
    assert p["partner_key"] in POOL.keys
    a, b = photo_tensors[0][:, :64, :64], photo_tensors[1][:, :64, :64]
    assert torch.equal(op.apply(a, {**p, "mode": 1, "lam": 1.0}, b), a)
    assert torch.equal(op.apply(a, {**p, "mode": 1, "lam": 0.0}, b), b)


def test_mixing_without_partner_is_refused(photo_tensors):
    op = Mixing(mixup_prob=1.0, cutmix_prob=0.0)
    with pytest.raises(ParamsMismatchError, match="PartnerPool"):
        op.sample(SIZE, np.random.default_rng(0), None)
    params = op.sample(SIZE, np.random.default_rng(0), POOL)
    with pytest.raises(ParamsMismatchError, match="partner image"):
        op.apply(photo_tensors[0], params, None)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: RandAugment(num_ops=-1), "num_ops should be a positive integer, but got -1"),
        (lambda: RandAugment(magnitude=31), "magnitude should be in"),
        (lambda: RandomResizedCropFlip(scale=(0.9, 0.1)), "scale should be an increasing pair"),
        (lambda: RandomErasing(prob=1.5), "prob should be a probability"),
        (lambda: Mixing(mixup_prob=0.7, cutmix_prob=0.7), "mixup_prob \\+ cutmix_prob"),
    ],
)
def test_bad_config_is_refused(factory, message):
    with pytest.raises(InvalidConfigError, match=message):
        factory()
    with pytest.raises(ValueError):
        factory()


def test_params_check_names_the_problem():
    op = RandomResizedCropFlip()
    with pytest.raises(ParamsMismatchError, match="need fields"):
        op.check({"top": 0.0})
    with pytest.raises(ParamsMismatchError, match="invalid values"):
        op.check({"top": 2.0, "left": 0.0, "height": 1.0, "width": 1.0, "flip": False})
