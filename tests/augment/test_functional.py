"""The image kernels every path shares: one normalisation (per sample and batched), one tensor conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

import hf_dr.augment.functional as K
import hf_dr.errors
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


# -- image modes: one conversion for generation and replay --------------------------------------------------------
def _gray_photo(photo_images) -> np.ndarray:
    """A 64 x 64 crop of a real photo in gray, ``uint8``."""
    return np.asarray(photo_images[0].convert("L").crop((200, 150, 264, 214)))


def test_a_sixteen_bit_image_is_rescaled_not_clipped_to_white(photo_images):
    """Pillow's convert() clips 16-bit values above 255 (a 16-bit photo turns white); the rule is round(v / 257),
    by default (one channel) and in either run mode, for every byte order of I;16."""
    gray = _gray_photo(photo_images)
    sixteen = gray.astype(np.uint16) * 257 + 100  # the 8-bit photo on the 16-bit scale (100 / 257 rounds away)
    for image in (Image.fromarray(sixteen), Image.fromarray(sixteen.astype(">u2"))):
        assert image.mode in ("I;16", "I;16B")
        assert (np.asarray(image.convert("RGB")) == 255).mean() > 0.9  # what Pillow itself gives: white
        assert torch.equal(K.to_tensor(image), torch.from_numpy(gray)[None])
        assert np.array_equal(np.asarray(K.convert_mode(image, "L")), gray)
        assert np.array_equal(np.asarray(K.convert_mode(image, "RGB")), np.repeat(gray[:, :, None], 3, axis=2))
    edges = Image.fromarray(np.array([[0, 128, 129, 257, 32896, 65407, 65535]], dtype=np.uint16))
    assert np.asarray(K.convert_mode(edges, "L")).tolist() == [[0, 0, 1, 1, 128, 255, 255]]


def test_wide_integer_and_float_images_are_rescaled_by_their_range(photo_images):
    gray = _gray_photo(photo_images)
    cases = {
        "8-bit values in an I image are kept": (Image.fromarray(gray.astype(np.int32)), gray),
        "16-bit values in an I image are divided by 257": (Image.fromarray(gray.astype(np.int32) * 257), gray),
        "F values in [0, 1] are multiplied by 255": (Image.fromarray(gray.astype(np.float32) / 255), gray),
        "F values in [0, 255] are kept": (Image.fromarray(gray.astype(np.float32)), gray),
    }
    for name, (image, expected) in cases.items():
        assert image.mode in ("I", "F"), name
        assert np.array_equal(np.asarray(K.convert_mode(image, "L")), expected), name
    signed = Image.fromarray(gray.astype(np.int32) * 1000 - 100_000)  # no standard range: min..max onto 0..255
    out = np.asarray(K.convert_mode(signed, "L")).astype(int)
    stretched = np.rint((gray - gray.min()) * 255.0 / (gray.max() - gray.min()))
    assert out.min() == 0 and out.max() == 255 and np.abs(out - stretched).max() <= 1
    nan = np.full((2, 2), np.nan, dtype=np.float32)
    nan[0, 0] = 0.5
    assert np.asarray(K.convert_mode(Image.fromarray(nan), "L")).tolist() == [[128, 0], [0, 0]]


def test_transparency_is_dropped_and_other_modes_follow_pillow(photo_images):
    rgb = photo_images[0].crop((200, 150, 264, 214))
    alpha = Image.linear_gradient("L").resize(rgb.size)
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    assert np.array_equal(np.asarray(K.convert_mode(rgba, "RGB")), np.asarray(rgb))  # colours kept, alpha dropped
    gray = rgb.convert("L")
    la = gray.copy()
    la.putalpha(alpha)
    assert K.convert_mode(la, "L").tobytes() == gray.tobytes()
    palette = rgb.quantize(32)
    palette.info["transparency"] = 0
    assert K.convert_mode(palette, "RGB").tobytes() == palette.convert("RGB").tobytes()
    assert K.convert_mode(palette, "L").tobytes() == palette.convert("RGB").convert("L").tobytes()
    cmyk = rgb.convert("CMYK")
    assert K.convert_mode(cmyk, "RGB").tobytes() == cmyk.convert("RGB").tobytes()
    assert K.convert_mode(cmyk, "L").tobytes() == cmyk.convert("RGB").convert("L").tobytes()
    assert K.convert_mode(rgb.convert("1"), "L").getextrema() == (0, 255)
    assert K.convert_mode(gray, "RGB").tobytes() == gray.convert("RGB").tobytes()  # gray repeated
    assert K.convert_mode(rgb, "L").tobytes() == rgb.convert("L").tobytes()  # Pillow's luma
    assert K.convert_mode(rgb, "RGB") is rgb and K.convert_mode(gray, "L") is gray  # nothing to do: no copy


def test_every_mode_gives_the_asked_channels_for_images_arrays_and_tensors(photo_images):
    rgb = photo_images[0].crop((0, 0, 16, 12))
    inputs = [rgb, rgb.convert("L"), rgb.convert("CMYK"), rgb.convert("P"), rgb.convert("RGBA"),
              Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), np.asarray(rgb),
              K.to_tensor(rgb), K.to_tensor(rgb.convert("L"))]
    for mode, channels in (("RGB", 3), ("L", 1)):
        for image in inputs:
            assert K.to_pil(image, mode).mode == mode
            assert K.to_tensor(image, mode).shape == (channels, 12, 16)


def test_a_mode_other_than_rgb_or_l_and_an_unconvertible_image_are_refused(photo_images):
    with pytest.raises(InvalidConfigError, match=r"mode should be one of \['RGB', 'L'\], but got 'RGBA'"):
        K.convert_mode(photo_images[0], "RGBA")
    premultiplied = photo_images[0].convert("RGBA").convert("La")
    with pytest.raises(hf_dr.errors.CorruptImageError, match="cannot convert a 'La' image") as caught:
        K.to_pil(premultiplied, "L")
    assert isinstance(caught.value, OSError)
