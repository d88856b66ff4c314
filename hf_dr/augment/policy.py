"""Augmentation policies: an ordered composition of replayable ops with a declared parameter schema."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode

from hf_dr.augment.functional import ImageLike, to_pil, to_tensor
from hf_dr.augment.ops import AugmentationOp, Mixing, PartnerPool
from hf_dr.augment.ops.base import ImageSize
from hf_dr.errors import InvalidConfigError, ParamsMismatchError

Params = dict[str, Any]
_INTERPOLATIONS = {mode.value for mode in InterpolationMode}


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if len(size) == 3:  # timm's input_size (C, H, W)
        size = size[1:]
    return int(size[0]), int(size[1])


class AugmentationPolicy:
    """A crop op, then optional image ops (RandAugment, RandomErasing), then optional mixing.

    ``sample_params`` draws every random choice from the generator it is given and returns nested plain values;
    ``apply`` is pure: the same image and params give the same pixels, bit for bit.

    Args:
        name (`str`): registry name, recorded with every run.
        crop (`AugmentationOp`): the crop-and-flip op (always first).
        image_ops (`Sequence[AugmentationOp]`, *optional*): ops applied after the resize, in order.
        mixing (`Mixing`, *optional*): MixUp/CutMix with a partner sample augmented by the same ops.

    Example:
        >>> import numpy as np, torch
        >>> from hf_dr import create_policy
        >>> policy = create_policy("rrc+ra_re")
        >>> image = torch.zeros(3, 48, 64, dtype=torch.uint8)
        >>> params = policy.sample_params((48, 64), np.random.default_rng(0))
        >>> policy.apply(image, params, size=32).shape
        torch.Size([3, 32, 32])
    """

    def __init__(
        self,
        name: str,
        crop: AugmentationOp,
        image_ops: Sequence[AugmentationOp] = (),
        mixing: Mixing | None = None,
    ) -> None:
        self.name = name
        self.crop = crop
        self.image_ops = tuple(image_ops)
        self.mixing = mixing
        names = [op.name for op in self.base_ops] + ([mixing.name] if mixing else [])
        if len(set(names)) != len(names):
            raise InvalidConfigError(f"a policy needs ops with distinct names, got {names}")

    @property
    def base_ops(self) -> tuple[AugmentationOp, ...]:
        return (self.crop, *self.image_ops)

    @property
    def needs_partner(self) -> bool:
        return self.mixing is not None

    def partner_key(self, params: Params) -> str | None:
        """The key of the mixing partner ``params`` blend with, or None when they do not mix.

        Example:
            >>> from hf_dr import create_policy
            >>> create_policy("rrc").partner_key({"crop": {}}) is None
            True
        """
        if self.mixing is None or not params[self.mixing.name]["mode"]:
            return None
        return params[self.mixing.name]["partner_key"]

    # -- sampling ---------------------------------------------------------------------------------------------
    def sample_params(
        self, image_size: ImageSize, generator: np.random.Generator, partners: PartnerPool | None = None
    ) -> Params:
        """Draws the parameters of one augmentation of an image of ``image_size`` (height, width).

        Args:
            image_size (`tuple[int, int]`): height and width of the source image.
            generator (`numpy.random.Generator`): the only source of randomness.
            partners (`PartnerPool`, *optional*): keys and sizes to draw a mixing partner from (mixing only).
        """
        params = self._sample_base(image_size, generator)
        if self.mixing is not None:
            if not partners:
                raise InvalidConfigError(f"policy '{self.name}' mixes samples: pass partners=PartnerPool(...)")
            mix, index = self.mixing.sample_with_partner(image_size, generator, partners)
            partner_size = partners.sizes[index] if index >= 0 else None
            mix["partner"] = self._sample_base(partner_size, generator) if partner_size else self._identity_base()
            params[self.mixing.name] = mix
        return params

    def _sample_base(self, image_size: ImageSize, generator: np.random.Generator) -> Params:
        return {op.name: op.sample(image_size, generator) for op in self.base_ops}

    def _identity_base(self) -> Params:
        return {op.name: op.identity() for op in self.base_ops}

    def unmix(self, params: Params) -> None:
        """Turns mixing ``params`` into an unmixed record, in place: what a run stores for a view whose drawn partner
        image cannot be decoded (and what a seeded replay redraws for it)."""
        params[self.mixing.name] = {**self.mixing.identity(), "partner": self._identity_base()}

    # -- applying ---------------------------------------------------------------------------------------------
    def apply(
        self,
        image: ImageLike,
        params: Params,
        size: int | Sequence[int],
        partner_image: ImageLike | None = None,
    ) -> torch.Tensor:
        """Replays ``params`` on ``image`` and returns a ``uint8 [C, size, size]`` tensor.

        Args:
            image (`PIL.Image.Image` or `torch.Tensor`): the original image (never modified).
            params (`dict`): parameters from :meth:`sample_params` (or read back from a dataset).
            size (`int` or `tuple[int, int]`): output resolution, chosen freely at replay.
            partner_image (*optional*): the original image of ``params["mixing"]["partner_key"]``.
        """
        self.check_params(params)
        out_size = _as_size(size)
        out = to_tensor(self._apply_base(to_pil(image), params, out_size))
        if self.mixing is not None:
            mix = params[self.mixing.name]
            partner = None
            if mix["mode"] and partner_image is not None:
                partner_pil = self._apply_base(to_pil(partner_image), mix["partner"], out_size)
                partner = to_tensor(partner_pil.convert("RGB") if out.shape[0] == 3 else partner_pil.convert("L"))
            out = self.mixing.apply(out, mix, partner)
        return out

    def _apply_base(self, image: Image.Image, params: Params, size: tuple[int, int]) -> Image.Image:
        out = self.crop.apply(image, params[self.crop.name], size)
        for op in self.image_ops:
            out = op.apply(out, params[op.name])
        return out

    def __call__(
        self,
        image: ImageLike,
        size: int | Sequence[int],
        generator: np.random.Generator,
        partners: PartnerPool | None = None,
        load_partner: Callable[[str], ImageLike] | None = None,
    ) -> tuple[torch.Tensor, Params]:
        """Samples and applies in one go; returns the augmented image and its params."""
        image = to_pil(image)
        params = self.sample_params((image.height, image.width), generator, partners)
        partner, partner_key = None, self.partner_key(params)
        if partner_key is not None:
            if load_partner is None:
                raise InvalidConfigError(f"policy '{self.name}' mixes samples: pass load_partner=callable(key)")
            partner = load_partner(partner_key)
        return self.apply(image, params, size, partner), params

    def with_interpolation(self, interpolation: str) -> AugmentationPolicy:
        """This policy with its crop resized by ``interpolation``: a view setting, chosen where the views are made
        (a teacher member's own, a student's), which leaves the params and every other op as they are. The policy
        itself when it already uses ``interpolation``.

        Args:
            interpolation (`str`): a torchvision ``InterpolationMode`` value (``"bilinear"``, ``"bicubic"``, ...).

        Example:
            >>> from hf_dr import create_policy
            >>> policy = create_policy("rrc+ra_re")
            >>> bicubic = policy.with_interpolation("bicubic")
            >>> bicubic.crop.interpolation, policy.crop.interpolation, policy.with_interpolation("bilinear") is policy
            ('bicubic', 'bilinear', True)
        """
        if interpolation == self.crop.interpolation:
            return self
        if interpolation not in _INTERPOLATIONS:
            raise InvalidConfigError(f"interpolation should be one of {sorted(_INTERPOLATIONS)}, but got "
                                     f"{interpolation!r} instead.")
        crop = type(self.crop)(**{**self.crop.config(), "interpolation": interpolation})
        return AugmentationPolicy(self.name, crop, self.image_ops, self.mixing)

    # -- schema -----------------------------------------------------------------------------------------------
    def features(self) -> dict[str, Any]:
        """The ``datasets`` feature schema of one record's params."""
        base = {op.name: {k: f.feature() for k, f in op.fields.items()} for op in self.base_ops}
        if self.mixing is not None:
            mix = {k: f.feature() for k, f in self.mixing.fields.items()}
            base[self.mixing.name] = {**mix, "partner": {k: dict(v) for k, v in base.items()}}
        return base

    def encode(self, params: Params) -> dict[str, Any]:
        """Params -> stored values (fractions become ``uint16``)."""
        return self._convert(params, "encode")

    def decode(self, stored: dict[str, Any]) -> Params:
        """Stored values -> params, the exact inverse of :meth:`encode`."""
        return self._convert(stored, "decode")

    def _convert(self, values: dict[str, Any], how: str) -> dict[str, Any]:
        out = {op.name: _convert_op(op, values[op.name], how) for op in self.base_ops}
        if self.mixing is not None:
            mix = values[self.mixing.name]
            out[self.mixing.name] = _convert_op(self.mixing, mix, how)
            out[self.mixing.name]["partner"] = {op.name: _convert_op(op, mix["partner"][op.name], how)
                                                for op in self.base_ops}
        return out

    def check_params(self, params: Any) -> None:
        """Raises :class:`ParamsMismatchError` unless ``params`` fits this policy exactly."""
        expected = {op.name for op in self.base_ops} | ({self.mixing.name} if self.mixing else set())
        if not isinstance(params, dict) or set(params) != expected:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ParamsMismatchError(f"policy '{self.name}' needs params for ops {sorted(expected)}, got {got}")
        for op in self.base_ops:
            op.check(params[op.name])
        if self.mixing is not None:
            mix = dict(params[self.mixing.name])
            partner = mix.pop("partner", None)
            self.mixing.check(mix)
            for op in self.base_ops:
                op.check((partner or {}).get(op.name))

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description: name and every op's class and arguments."""
        ops = [*self.base_ops, *([self.mixing] if self.mixing else [])]
        return {"name": self.name, "ops": [{"op": type(op).__name__, **op.config()} for op in ops]}

    def __repr__(self) -> str:
        ops = ", ".join(repr(op) for op in [*self.base_ops, *([self.mixing] if self.mixing else [])])
        return f"AugmentationPolicy(name={self.name!r}, ops=[{ops}])"


def _convert_op(op: AugmentationOp, values: dict[str, Any], how: str) -> dict[str, Any]:
    try:
        return {k: getattr(f, how)(values[k]) for k, f in op.fields.items()}
    except (KeyError, TypeError) as err:
        raise ParamsMismatchError(f"'{op.name}' params need fields {sorted(op.fields)}, got {values!r}") from err

