"""MixUp and CutMix with a partner sample, replayable: the partner is stored by its key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

import hf_dr.augment.functional as K
from hf_dr.augment.fields import FRACTION, Field, snap_fraction
from hf_dr.augment.ops.base import AugmentationOp, ImageSize, check_probability
from hf_dr.errors import ParamsMismatchError

NONE, MIXUP, CUTMIX = 0, 1, 2


@dataclass(frozen=True)
class PartnerPool:
    """The samples a mixing op may draw a partner from: their keys and image sizes (height, width).

    Example:
        >>> pool = PartnerPool(keys=["a", "b"], sizes=[(32, 32), (40, 30)])
        >>> len(pool)
        2
    """

    keys: Sequence[str]
    sizes: Sequence[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.keys)


class Mixing(AugmentationOp):
    """MixUp (Zhang et al.) or CutMix (Yun et al.) with one partner sample.

    The mode is drawn once per record: MixUp with ``mixup_prob``, CutMix with ``cutmix_prob``, else no mixing.
    The paper stores the partner and lambda (MixUp) or the box (CutMix); the teacher labels the mixed image,
    so no label mixing is needed at replay.

    Args:
        mixup_prob (`float`, *optional*, defaults to 0.5): probability of MixUp.
        cutmix_prob (`float`, *optional*, defaults to 0.5): probability of CutMix.
        mixup_alpha (`float`, *optional*, defaults to 0.2): Beta(alpha, alpha) for MixUp's lambda.
        cutmix_alpha (`float`, *optional*, defaults to 1.0): Beta(alpha, alpha) for CutMix's area.
    """

    name: ClassVar[str] = "mixing"
    fields: ClassVar[dict[str, Field]] = {
        "mode": Field("uint8"), "lam": FRACTION, "top": FRACTION, "left": FRACTION, "height": FRACTION,
        "width": FRACTION, "partner_key": Field("string"),
    }

    def __init__(
        self, mixup_prob: float = 0.5, cutmix_prob: float = 0.5, mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0
    ) -> None:
        self.mixup_prob = check_probability("mixup_prob", mixup_prob)
        self.cutmix_prob = check_probability("cutmix_prob", cutmix_prob)
        check_probability("mixup_prob + cutmix_prob", mixup_prob + cutmix_prob)
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)

    def sample(self, image_size: ImageSize, generator: np.random.Generator, partners: PartnerPool | None = None
               ) -> dict[str, Any]:
        """Draws the mode, lambda, box and partner; ``partner_key`` is taken from ``partners``."""
        return self.sample_with_partner(image_size, generator, partners)[0]

    def sample_with_partner(
        self, image_size: ImageSize, generator: np.random.Generator, partners: PartnerPool | None
    ) -> tuple[dict[str, Any], int]:
        """Like :meth:`sample`, also returning the partner's index in ``partners`` (-1 when not mixing)."""
        u = generator.random()
        mode = MIXUP if u < self.mixup_prob else CUTMIX if u < self.mixup_prob + self.cutmix_prob else NONE
        lam = generator.beta(self.mixup_alpha, self.mixup_alpha) if mode == MIXUP else 1.0
        box = self._cutmix_box(generator) if mode == CUTMIX else (0.0, 0.0, 0.0, 0.0)
        params, index = self.identity(), -1
        if mode != NONE:
            if not partners:
                raise ParamsMismatchError("mixing needs a non-empty PartnerPool to draw a partner from")
            index = int(generator.integers(len(partners)))
            top, left, height, width = (snap_fraction(v) for v in box)
            params.update(mode=mode, lam=snap_fraction(lam), top=top, left=left, height=height, width=width,
                          partner_key=str(partners.keys[index]))
        return params, index

    def apply(self, image: torch.Tensor, params: dict[str, Any], partner: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Mixes ``image`` with the already augmented ``partner`` (same shape)."""
        if params["mode"] == NONE:
            return image
        if partner is None:
            raise ParamsMismatchError(f"mixing params need the partner image '{params['partner_key']}'")
        if params["mode"] == MIXUP:
            return K.mixup(image, partner, params["lam"])
        return K.cutmix(image, partner, params["top"], params["left"], params["height"], params["width"])

    def identity(self) -> dict[str, Any]:
        return {"mode": NONE, "lam": 1.0, "top": 0.0, "left": 0.0, "height": 0.0, "width": 0.0, "partner_key": ""}

    def _cutmix_box(self, generator: np.random.Generator) -> tuple[float, float, float, float]:
        cut = np.sqrt(1.0 - generator.beta(self.cutmix_alpha, self.cutmix_alpha))
        cy, cx = generator.uniform(0, 1), generator.uniform(0, 1)
        top, bottom = max(0.0, cy - cut / 2), min(1.0, cy + cut / 2)
        left, right = max(0.0, cx - cut / 2), min(1.0, cx + cut / 2)
        return top, left, bottom - top, right - left
