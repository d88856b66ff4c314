"""Rendering teacher views on real digits: each chunk's views are the policy applied with the params drawn from
``generator_for(seed, key, index)`` at every teacher view (size, interpolation, channels), padded to the batch size,
with the params in Arrow; ``policy_for_view`` and ``fit_channels``."""

from __future__ import annotations

import datasets
import pyarrow as pa
import pytest
import torch

from hf_dr import create_policy, list_policies
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeding import generator_for
from hf_dr.data.columns import encoded_images, image_feature
from hf_dr.data.source_keys import scan_sizes
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.plan import ChunkPlan, plan_shards
from hf_dr.generate.render import TENSOR_INTERPOLATIONS, ViewRenderer, fit_channels, policy_for_view, without_records
from hf_dr.models.teacher import ViewSpec
from tests.data_utils import digits_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_ROWS, NUM_SAMPLES, BATCH, SEED = 12, 3, 4, 7
VIEWS = [ViewSpec(3, 24, 24, "bilinear"), ViewSpec(3, 20, 28, "bicubic"), ViewSpec(1, 16, 16, "bilinear")]


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(NUM_ROWS)


@pytest.fixture(scope="module")
def images(digits) -> list:
    """The decoded images, as ``datasets`` gives them."""
    return digits["image"][:]


def _renderer(digits: datasets.Dataset, policy, chunks, views=VIEWS, partners=None) -> ViewRenderer:
    return ViewRenderer(encoded_images(digits, "image"), image_feature(digits, "image"), digits["key"][:], chunks,
                        policy, views, SEED, BATCH, partners)


def _gray(view: torch.Tensor) -> torch.Tensor:
    """An RGB view averaged to one channel, rounded."""
    return view.float().mean(0, keepdim=True).round().to(torch.uint8)


def _expected(name: str, image, params: dict, spec: ViewSpec, partner=None) -> torch.Tensor:
    """The view a member with ``spec`` reads, built from a policy made with the member's interpolation."""
    policy = create_policy(name, crop={"interpolation": spec.interpolation})
    view = policy.apply(image, params, (spec.height, spec.width), partner)
    return view if spec.channels == view.shape[0] else _gray(view)


@pytest.mark.parametrize("name", ["rrc+ra_re", "crop_flip"])
def test_views_are_the_policy_applied_with_the_seeded_params(name, digits, images):
    """Every view of every chunk, at every member's size/interpolation/channels, equals the independently replayed
    params of ``generator_for(seed, key, index)``; slots past the chunk are zero padding."""
    policy = create_policy(name)
    chunks = ChunkPlan(plan_shards(NUM_ROWS, 5), NUM_SAMPLES, BATCH)
    renderer = _renderer(digits, policy, chunks)
    keys = digits["key"][:]
    assert len(renderer) == len(chunks)
    checked = 0
    for i, chunk in enumerate(chunks):
        item = renderer[i]
        assert item["chunk"] == i
        assert [v.shape for v in item["views"]] == [(BATCH, s.channels, s.height, s.width) for s in VIEWS]
        assert all(v.dtype == torch.uint8 for v in item["views"])
        for slot, (row, index) in enumerate(chunk.views()):
            image = images[row]
            params = policy.sample_params((image.height, image.width), generator_for(SEED, keys[row], index))
            for batch, spec in zip(item["views"], VIEWS, strict=True):
                assert torch.equal(batch[slot], _expected(name, image, params, spec)), (i, slot, spec)
            checked += 1
        for batch in item["views"]:
            assert not batch[len(chunk):].any()  # padding
    assert checked == NUM_ROWS * NUM_SAMPLES


def test_padding_fills_a_short_chunk_to_the_batch_size(digits):
    """A chunk of 2 views in batches of 4: two rendered slots, two zero slots, two params."""
    chunks = ChunkPlan(plan_shards(1, 1), num_samples=2, batch_size=BATCH)
    item = _renderer(digits, create_policy("rrc"), chunks)[0]
    assert len(chunks[0]) == 2 and len(item["params"]) == 2
    for batch in item["views"]:
        assert batch.shape[0] == BATCH and batch[:2].flatten(1).any(1).all() and not batch[2:].any()


@pytest.mark.parametrize("name", list_policies())
def test_params_round_trip_through_the_arrow_struct(name, digits, images):
    """``params`` is a StructArray of the policy's declared type, one per view (not padded), that decodes to the
    params drawn for that view."""
    policy = create_policy(name)
    sizes = scan_sizes(digits, "image")
    partners = PartnerPool(digits["key"][:], sizes) if policy.needs_partner else None
    chunks = ChunkPlan(plan_shards(NUM_ROWS, 6), NUM_SAMPLES, BATCH)
    renderer = _renderer(digits, policy, chunks, views=VIEWS[:1], partners=partners)
    expected_type = datasets.Features({"params": policy.features()}).arrow_schema.field("params").type
    keys = digits["key"][:]
    for i in (0, 4, len(chunks) - 1):
        params = renderer[i]["params"]
        assert params.type == expected_type and len(params) == len(chunks[i])
        for stored, (row, index) in zip(params.to_pylist(), chunks[i].views(), strict=True):
            drawn = policy.sample_params(sizes[row], generator_for(SEED, keys[row], index), partners)
            assert policy.decode(stored) == drawn
            assert stored == policy.encode(drawn)


def test_mixing_views_use_the_partner_image(digits, images):
    """With a mixing policy each view mixes in the image of its drawn partner key (and some views do mix)."""
    name = "rrc+mix"
    policy = create_policy(name)
    keys = digits["key"][:]
    partners = PartnerPool(keys, scan_sizes(digits, "image"))
    chunks = ChunkPlan(plan_shards(8, 8), NUM_SAMPLES, BATCH)
    renderer = _renderer(digits, policy, chunks, views=VIEWS[:2], partners=partners)
    mixed = 0
    for i, chunk in enumerate(chunks):
        item = renderer[i]
        for slot, (row, index) in enumerate(chunk.views()):
            params = policy.sample_params(partners.sizes[row], generator_for(SEED, keys[row], index), partners)
            mix = params["mixing"]
            partner = images[keys.index(mix["partner_key"])] if mix["mode"] else None
            mixed += partner is not None
            for batch, spec in zip(item["views"], VIEWS[:2], strict=True):
                assert torch.equal(batch[slot], _expected(name, images[row], params, spec, partner))
    assert mixed > 0


def test_views_do_not_depend_on_which_shards_a_process_renders(digits):
    """Rendering only every other shard (another process's share) gives the same views for those rows."""
    policy = create_policy("rrc+ra_re")
    shards = plan_shards(NUM_ROWS, 4)
    whole, part = ChunkPlan(shards, NUM_SAMPLES, BATCH), ChunkPlan(shards[1::2], NUM_SAMPLES, BATCH)
    full = {(c.shard.index, c.start): _renderer(digits, policy, whole)[i] for i, c in enumerate(whole)}
    partial = _renderer(digits, policy, part)
    for i, chunk in enumerate(part):
        item, reference = partial[i], full[(chunk.shard.index, chunk.start)]
        assert all(torch.equal(a, b) for a, b in zip(item["views"], reference["views"], strict=True))
        assert item["params"].equals(reference["params"])


@pytest.mark.parametrize("name", list_policies())
def test_policy_for_view_changes_only_the_crop_interpolation(name, photo_tensors):
    """Each tensor interpolation gives the policy built with that crop interpolation; the rest is unchanged."""
    policy = create_policy(name)
    for interpolation in TENSOR_INTERPOLATIONS:
        view_policy = policy_for_view(policy, interpolation)
        reference = create_policy(name, crop={"interpolation": interpolation})
        assert view_policy.config() == reference.config()
        assert view_policy.config()["ops"][1:] == policy.config()["ops"][1:]
        if interpolation == policy.crop.interpolation:
            assert view_policy is policy
        params = policy.sample_params(tuple(photo_tensors[0].shape[-2:]), generator_for(0, "china", 0),
                                      PartnerPool(["china"], [tuple(photo_tensors[0].shape[-2:])]))
        partner = photo_tensors[0] if params.get("mixing", {}).get("mode") else None
        assert torch.equal(view_policy.apply(photo_tensors[0], params, 40, partner),
                           reference.apply(photo_tensors[0], params, 40, partner))


@pytest.mark.parametrize("interpolation", ["lanczos", "box", "hamming", "cubic"])
def test_policy_for_view_refuses_interpolations_without_a_tensor_kernel(interpolation):
    """The error names the interpolation, the ones allowed and the spec field to change."""
    with pytest.raises(InvalidConfigError, match=rf"'{interpolation}' has no tensor kernel.*'bicubic'.*interpolation"):
        policy_for_view(create_policy("rrc"), interpolation)


def test_fit_channels(photo_tensors):
    """Same count: the view itself; gray to RGB: the channel repeated; RGB to gray: the rounded channel mean."""
    rgb = photo_tensors[0][:, :50, :60]
    assert fit_channels(rgb, 3) is rgb
    gray = rgb[:1]
    assert torch.equal(fit_channels(gray, 3), gray.repeat(3, 1, 1))
    averaged = fit_channels(rgb, 1)
    assert averaged.shape == (1, 50, 60) and averaged.dtype == torch.uint8
    expected = ((rgb[0].int() + rgb[1].int() + rgb[2].int()).double() / 3).round().to(torch.uint8)
    assert torch.equal(averaged[0], expected)


def test_skipped_rows_lose_their_records_and_their_class_set():
    """A skipped row's class set was computed from its black placeholder views: it must go with its records."""
    table = pa.table({"key": ["a", "b"], "classes": [[3, 1], [7]],
                      "reinforcements": [[{"ids": [0, 1]}, {"ids": [1, 0]}], [{"ids": [0]}, {"ids": [0]}]]})
    emptied = without_records(table, [0])
    assert emptied.column("classes").to_pylist() == [[], [7]]
    assert emptied.column("reinforcements").to_pylist() == [[], [{"ids": [0]}, {"ids": [0]}]]


def test_an_unknown_param_mode_is_refused_not_stored_as_full_params(digits):
    """Bug: any param_mode but "seeded" (a typo of it too) silently stored every param; now it is refused, naming the
    modes (the codec codes the params, as for a run)."""
    chunks = ChunkPlan(plan_shards(NUM_ROWS, NUM_ROWS), NUM_SAMPLES, BATCH)
    with pytest.raises(InvalidConfigError, match=r"param_mode should be one of \['stored', 'seeded'\].*'Seeded'"):
        ViewRenderer(encoded_images(digits, "image"), image_feature(digits, "image"), digits["key"][:], chunks,
                     create_policy("rrc"), VIEWS, SEED, BATCH, param_mode="Seeded")
    seeded = ViewRenderer(encoded_images(digits, "image"), image_feature(digits, "image"), digits["key"][:], chunks,
                          create_policy("rrc"), VIEWS, SEED, BATCH, param_mode="seeded")
    assert seeded[0]["params"].type.names == ["check"]
