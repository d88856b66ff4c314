"""AugmentTransform and EvalTransform: the shared kernels (functional.normalize, to_tensor/to_pil) bit for bit."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

import hf_dr.augment.functional as K
from hf_dr import AugmentTransform, EvalTransform, create_policy
from hf_dr.augment.seeding import generator_for
from hf_dr.errors import InvalidConfigError, MissingColumnError
from tests.data_utils import digits_dataset

PLAIN_STREAM = 1  # AugmentTransform's stream of (seed, epoch, key, stream) draws


@pytest.fixture(scope="module")
def photo_dataset(photo_images) -> datasets.Dataset:
    """The two real photos (427 x 640 RGB PNGs) with labels and keys."""
    return datasets.Dataset.from_dict(
        {"image": photo_images, "label": [0, 1], "key": ["china", "flower"]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64"),
                                    "key": datasets.Value("string")}),
    )


def test_eval_pixels_equal_functional_normalize_of_the_resized_tensor(photo_dataset, photo_images):
    ds = EvalTransform(size=224).attach(photo_dataset.with_format(None))
    for row, image in enumerate(photo_images):
        resized = TF.resize(K.to_tensor(image), [224, 224], antialias=True)
        expected = K.normalize(resized, K.IMAGENET_MEAN, K.IMAGENET_STD)
        assert torch.equal(ds[row]["pixel_values"], expected)
        assert ds[row]["labels"] == row


def test_eval_pixels_equal_the_teachers_batched_normalisation(photo_dataset, photo_images):
    """Evaluation and generation normalise with one kernel: the batched call gives the same float32 values."""
    ds = EvalTransform(size=(96, 128), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).attach(photo_dataset)
    batch = torch.stack([TF.resize(K.to_tensor(image), [96, 128], antialias=True) for image in photo_images])
    assert torch.equal(torch.stack(ds[:2]["pixel_values"]), K.normalize(batch, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))


def test_eval_of_arrays_equals_eval_of_images(photos, photo_images):
    transform = EvalTransform(size=64)
    from_images = transform({"image": photo_images, "label": [0, 1]})["pixel_values"]
    from_arrays = transform({"image": photos, "label": [0, 1]})["pixel_values"]
    assert all(torch.equal(a, b) for a, b in zip(from_images, from_arrays, strict=True))


def test_eval_keeps_grayscale_and_uses_the_rgb_average(photo_images):
    gray = photo_images[0].convert("L")
    out = EvalTransform(size=32)({"image": [gray], "label": [3]})
    resized = TF.resize(K.to_tensor(gray), [32, 32], antialias=True)
    average = ([sum(K.IMAGENET_MEAN) / 3], [sum(K.IMAGENET_STD) / 3])
    assert out["pixel_values"][0].shape == (1, 32, 32)
    assert torch.equal(out["pixel_values"][0], K.normalize(resized, *average))


def test_eval_data_config_overrides_size_and_statistics(photo_images):
    config = {"input_size": (3, 40, 48), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    out = EvalTransform(data_config=config)({"image": photo_images[:1], "label": [0]})["pixel_values"][0]
    expected = K.normalize(TF.resize(K.to_tensor(photo_images[0]), [40, 48], antialias=True), (0.5,), (0.5,))
    assert torch.equal(out, expected)


def test_augment_pixels_equal_the_policy_replay_normalised(photo_dataset, photo_images):
    policy = create_policy("rrc+ra_re")
    transform = AugmentTransform(policy, size=64, seed=7)
    transform.set_epoch(2)
    ds = transform.attach(photo_dataset.with_format(None))
    for row, (image, key) in enumerate(zip(photo_images, ["china", "flower"], strict=True)):
        params = policy.sample_params((image.height, image.width), generator_for(7, 2, key, PLAIN_STREAM))
        expected = K.normalize(policy.apply(image, params, 64), K.IMAGENET_MEAN, K.IMAGENET_STD)
        assert torch.equal(ds[row]["pixel_values"], expected)


def test_augment_of_arrays_equals_augment_of_images(photos, photo_images):
    transform = AugmentTransform("rrc+ra_re", size=48, seed=1)
    keys = ["china", "flower"]
    from_images = transform({"image": photo_images, "label": [0, 1], "key": keys})["pixel_values"]
    from_arrays = transform({"image": [np.asarray(p) for p in photos], "label": [0, 1], "key": keys})
    assert all(torch.equal(a, b) for a, b in zip(from_images, from_arrays["pixel_values"], strict=True))


def test_augment_draws_depend_on_the_epoch_not_the_batch():
    ds = digits_dataset(16).with_format(None)
    transform = AugmentTransform("rrc", size=24, seed=0)
    ds = transform.attach(ds)
    whole = torch.stack(ds[:16]["pixel_values"])
    assert torch.equal(whole, torch.stack([ds[i]["pixel_values"] for i in range(16)]))
    transform.set_epoch(1)
    assert not torch.equal(whole, torch.stack(ds[:16]["pixel_values"]))


def test_mixing_policies_are_refused_for_hard_labels():
    with pytest.raises(InvalidConfigError, match="mixes samples"):
        AugmentTransform("rrc+mix")


@pytest.mark.parametrize("make", [lambda: EvalTransform(size=24), lambda: AugmentTransform("rrc", size=24)])
def test_missing_columns_name_the_option_the_columns_and_the_fix(make):
    ds = digits_dataset(4).rename_column("label", "target")
    transform = make()
    with pytest.raises(MissingColumnError, match=r"the dataset has no column 'label' \(label_column\); its "
                                                 r"columns are \['image', 'target', 'key'\]\. .*label_column="):
        transform.attach(ds)
    with pytest.raises(MissingColumnError, match=r"the batch has no column 'label' .*input_columns"):
        transform({"image": [], "target": [], "key": []})


def test_plain_and_eval_transforms_share_the_view_option_checks():
    """One validator for every hook: a size "28" (read as 2x8), a 0 std (NaN pixels), a seed 0.5 (drawn as 0) and a
    data config whose channels contradict the image mode are refused, naming the argument."""
    from hf_dr.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="size should be a positive int .* but got '28'"):
        AugmentTransform("rrc", size="28")
    with pytest.raises(InvalidConfigError, match="std should be a non-empty sequence of positive"):
        EvalTransform(size=8, std=(0.0,))
    with pytest.raises(InvalidConfigError, match="seed should be an integer, but got 0.5"):
        AugmentTransform("rrc", size=8, seed=0.5)
    with pytest.raises(InvalidConfigError, match=r"input_size has 3 channel\(s\), but image_mode gives 'L'"):
        EvalTransform(data_config={"input_size": (3, 8, 8), "mean": (0.5,), "std": (0.5,)}, image_mode="L")
    assert EvalTransform(data_config={"input_size": (1, 8, 6), "mean": (0.5,), "std": (0.5,)}, image_mode="L").size \
        == (8, 6)
