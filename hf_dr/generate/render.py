"""Rendering the augmented views a teacher labels, in DataLoader workers.

A worker renders one chunk of the plan (:mod:`hf_dr.generate.plan`): it decodes each image once, draws the params
of each view from ``generator_for(seed, key, index)``, applies them at every teacher view size and converts the
params to Arrow. Chunks are padded to ``batch_size`` so the teacher always runs on one batch shape; the draws depend
only on (seed, key, index), so the output does not depend on the number of processes or workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from hf_dr.augment.functional import to_pil
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.registry import policy_from_config
from hf_dr.augment.seeding import generator_for
from hf_dr.data.keys import KeyIndex
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.plan import Chunk
from hf_dr.generate.teacher import ViewSpec

TENSOR_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")


def policy_for_view(policy: AugmentationPolicy, interpolation: str) -> AugmentationPolicy:
    """``policy`` with its crop resized by ``interpolation`` (a teacher member's own); other ops unchanged."""
    if interpolation not in TENSOR_INTERPOLATIONS:
        raise InvalidConfigError(
            f"teacher interpolation {interpolation!r} has no tensor kernel; set the member's interpolation to one "
            f"of {list(TENSOR_INTERPOLATIONS)} (teacher spec field 'interpolation')"
        )
    config = policy.config()
    if config["ops"][0].get("interpolation") == interpolation:
        return policy
    config["ops"][0] = {**config["ops"][0], "interpolation": interpolation}
    return policy_from_config(config)


class ViewRenderer(torch.utils.data.Dataset):
    """Item ``i`` is chunk ``i`` rendered: ``{"chunk": i, "views": [uint8 [B, C, H, W] per view spec],
    "params": pyarrow.StructArray of the encoded params, one per view}``.

    Args:
        images (`datasets.Dataset`): one image column with decoding off (see
            :func:`hf_dr.data.sources.encoded_images`).
        image_feature (`datasets.Image`): the feature that decodes a cell (so decoding matches ``datasets``).
        keys (`Sequence[str]`): every row's key.
        chunks (`ChunkPlan`): the work, in order.
        policy (`AugmentationPolicy`): the augmentation policy.
        views (`Sequence[ViewSpec]`): the teacher's distinct views.
        seed (`int`): the run seed.
        batch_size (`int`): chunks are padded to this many views.
        partners (`PartnerPool`, *optional*): every key and image size, for mixing policies.
    """

    def __init__(
        self,
        images: datasets.Dataset,
        image_feature: datasets.Image,
        keys: Sequence[str],
        chunks: Sequence[Chunk],
        policy: AugmentationPolicy,
        views: Sequence[ViewSpec],
        seed: int,
        batch_size: int,
        partners: PartnerPool | None = None,
    ) -> None:
        self.images, self.image_feature, self.keys = images, image_feature, keys
        self.column = images.column_names[0]
        self.chunks, self.policy, self.views = list(chunks), policy, list(views)
        self.view_policies = [policy_for_view(policy, v.interpolation) for v in self.views]
        self.seed, self.batch_size, self.partners = int(seed), int(batch_size), partners
        self.params_type = datasets.Features({"params": policy.features()}).arrow_schema.field("params").type
        self._partner_rows: KeyIndex | None = None

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        chunk = self.chunks[i]
        # NumPy buffers: copying Pillow's HWC pixels into CHW is single-threaded and fast in NumPy, while torch may
        # hand the small strided copy to OpenMP threads (slow on a busy CPU, and in the main process with 0 workers)
        batches = [np.zeros((self.batch_size, v.channels, v.height, v.width), dtype=np.uint8) for v in self.views]
        cache: dict[int, Image.Image] = {}
        params_out = []
        for slot, (row, index) in enumerate(chunk.views()):
            image = self._image(row, cache)
            generator = generator_for(self.seed, self.keys[row], index)
            params = self.policy.sample_params((image.height, image.width), generator, self.partners)
            partner = self._partner(params, cache)
            for batch, spec, policy in zip(batches, self.views, self.view_policies, strict=True):
                batch[slot] = render_view(policy, image, params, spec, partner).numpy()
            params_out.append(self.policy.encode(params))
        views = [torch.from_numpy(batch) for batch in batches]
        return {"chunk": i, "views": views, "params": pa.array(params_out, type=self.params_type)}

    def _image(self, row: int, cache: dict[int, Image.Image]) -> Image.Image:
        if row not in cache:
            cache[row] = to_pil(self.image_feature.decode_example(self.images[row][self.column]))
        return cache[row]

    def _partner(self, params: dict[str, Any], cache: dict[int, Image.Image]) -> Image.Image | None:
        key = self.policy.partner_key(params)
        if key is None:
            return None
        if self._partner_rows is None:
            self._partner_rows = KeyIndex(self.keys, where="the reinforced dataset",
                                          fix="mixing partners must be drawn from the dataset's own keys.")
        return self._image(self._partner_rows.row(key), cache)


def fit_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A ``uint8 [C, H, W]`` view with the teacher's channel count (gray repeated, or RGB averaged to gray)."""
    if image.shape[0] == channels:
        return image
    if image.shape[0] == 1:
        return image.expand(channels, -1, -1)
    return image.float().mean(0, keepdim=True).round().to(torch.uint8).expand(channels, -1, -1)


def render_view(view_policy: AugmentationPolicy, image: Any, params: dict[str, Any], spec: ViewSpec,
                partner: Any = None) -> torch.Tensor:
    """The ``uint8 [C, H, W]`` view a teacher member reads: ``params`` replayed by the member's ``view_policy`` (see
    :func:`policy_for_view`) at its size, with its channel count. Generation and ``verify`` both call this."""
    return fit_channels(view_policy.apply(image, params, (spec.height, spec.width), partner), spec.channels)
