"""The image kernels every path shares: one normalisation (per sample and batched), one tensor conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

import hf_dr.augment.functional as K
from hf_dr.augment.ops.erasing import IMAGENET_MEAN_UINT8
from hf_dr.errors import InvalidConfigError


@pytest.fixture(scope="module")
def photo_batch(photo_tensors) -> torch.Tensor:
    """The two real photos resized to 224 x 224: ``uint8 [2, 3, 224, 224]``."""
    return torch.stack([TF.resize(t, [224, 224], antialias=True) for t in photo_tensors])


def _reference(image: torch.Tensor, mean, std) -> torch.Tensor:
    """The textbook formula, in float64 (the shared kernel must agree within float32 rounding)."""
    shape = (-1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float64).view(shape)
    std_t = torch.tensor(std, dtype=torch.float64).view(shape)
    return (image.double() / 255.0 - mean_t) / std_t


def test_imagenet_statistics_are_timms():
    timm_data = pytest.importorskip("timm.data")
    assert K.IMAGENET_MEAN == tuple(timm_data.IMAGENET_DEFAULT_MEAN)
    assert K.IMAGENET_STD == tuple(timm_data.IMAGENET_DEFAULT_STD)
    # the erasing fill is the same mean as uint8 (zero after normalisation)
    assert IMAGENET_MEAN_UINT8 == tuple(round(255 * m) for m in timm_data.IMAGENET_DEFAULT_MEAN)


def test_replay_and_transforms_use_the_one_definition():
    from hf_dr.data import replay, transforms

    assert replay.IMAGENET_MEAN is K.IMAGENET_MEAN and replay.IMAGENET_STD is K.IMAGENET_STD
    assert transforms.EvalTransform().mean == K.IMAGENET_MEAN and transforms.EvalTransform().std == K.IMAGENET_STD


def test_batched_normalisation_equals_per_sample_bit_for_bit(photo_batch):
    batched = K.normalize(photo_batch, K.IMAGENET_MEAN, K.IMAGENET_STD)
    assert batched.dtype == torch.float32 and batched.shape == photo_batch.shape
    per_sample = torch.stack([K.normalize(image, K.IMAGENET_MEAN, K.IMAGENET_STD) for image in photo_batch])
    assert torch.equal(batched, per_sample)
    assert torch.equal(K.Normalizer(K.IMAGENET_MEAN, K.IMAGENET_STD)(photo_batch), batched)


def test_normalisation_matches_the_formula(photo_batch):
    out = K.normalize(photo_batch[0], K.IMAGENET_MEAN, K.IMAGENET_STD)
    torch.testing.assert_close(out.double(), _reference(photo_batch[0], K.IMAGENET_MEAN, K.IMAGENET_STD),
                               rtol=1e-6, atol=1e-6)
    assert not photo_batch.is_floating_point()  # the input is never modified


def test_lists_and_tuples_give_the_same_values(photo_batch):
    assert torch.equal(K.normalize(photo_batch, list(K.IMAGENET_MEAN), list(K.IMAGENET_STD)),
                       K.normalize(photo_batch, K.IMAGENET_MEAN, K.IMAGENET_STD))


def test_grayscale_with_rgb_statistics_uses_their_average(photo_images):
    gray = K.to_tensor(photo_images[0].convert("L").resize((64, 48)))
    assert gray.shape == (1, 48, 64)
    average = (sum(K.IMAGENET_MEAN) / 3,), (sum(K.IMAGENET_STD) / 3,)
    assert torch.equal(K.normalize(gray, K.IMAGENET_MEAN, K.IMAGENET_STD), K.normalize(gray, *average))
    batch = gray[None].expand(3, -1, -1, -1)
    assert torch.equal(K.normalize(batch, K.IMAGENET_MEAN, K.IMAGENET_STD)[2], K.normalize(gray, *average))


def test_one_value_serves_every_channel(photo_batch):
    assert torch.equal(K.normalize(photo_batch, (0.5,), (0.25,)),
                       K.normalize(photo_batch, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))


def test_a_bad_count_is_one_error_everywhere(photo_batch, photo_images):
    with pytest.raises(InvalidConfigError, match="1 or 3 per-channel values, got 2"):
        K.normalize(photo_batch, (0.5, 0.5), (0.2, 0.2))
    with pytest.raises(InvalidConfigError, match="1 or 3 per-channel values, got 2"):
        K.erase(photo_images[0], 0.1, 0.1, 0.5, 0.5, (10, 20))


def test_non_uint8_or_wrong_rank_is_refused(photo_batch):
    with pytest.raises(InvalidConfigError, match="uint8"):
        K.normalize(photo_batch.float(), K.IMAGENET_MEAN, K.IMAGENET_STD)
    with pytest.raises(InvalidConfigError, match=r"\[C, H, W\]"):
        K.normalize(photo_batch[0, 0], K.IMAGENET_MEAN, K.IMAGENET_STD)


def test_constants_made_under_inference_mode_serve_outside_it(photo_batch):
    stats = (0.31, 0.32, 0.33), (0.21, 0.22, 0.23)  # fresh statistics: the constants are made here
    with torch.inference_mode():
        inside = K.normalize(photo_batch, *stats)
    outside = K.normalize(photo_batch, *stats)
    assert not outside.is_inference() and torch.equal(inside, outside)


@pytest.mark.parametrize("layout", ["rgb", "gray2d", "gray3d"])
def test_to_tensor_of_arrays_equals_pillows_conversion(photos, layout):
    array = {"rgb": photos[0], "gray2d": photos[0][:, :, 1].copy(), "gray3d": photos[0][:, :, 1:2].copy()}[layout]
    expected = TF.pil_to_tensor(Image.fromarray(array if array.ndim == 2 else array.squeeze(-1) if
                                                array.shape[2] == 1 else array))
    out = K.to_tensor(array)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    out.zero_()
    assert array.any()  # a copy: the array is not shared


def test_to_tensor_of_images_keeps_gray_and_makes_other_modes_rgb(photo_images):
    rgba = photo_images[0].convert("RGBA")
    assert torch.equal(K.to_tensor(rgba), TF.pil_to_tensor(photo_images[0]))
    assert K.to_tensor(photo_images[0].convert("L")).shape[0] == 1
    assert K.to_tensor(photo_images[0].convert("P")).shape[0] == 3
    rgba_array = np.asarray(rgba)
    assert torch.equal(K.to_tensor(rgba_array), TF.pil_to_tensor(photo_images[0]))
    tensor = K.to_tensor(photo_images[0])
    assert K.to_tensor(tensor) is tensor
