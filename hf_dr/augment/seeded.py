"""Seeded parameter storage: a record keeps a checksum of its encoded params instead of the params themselves, and
the replay draws them again from ``generator_for(seed, key, index)``, as the run did.

What a replay needs beyond the record: the run's seed and policy (in the data's description), the image's size
(the decoded image itself) and, for mixing policies, the size of the pool partners were drawn from (the run's row
count) and the partner's key and image size. So a seeded record of a mixing policy also stores the partner's key: the
draw of its index consumes the generator exactly as the run did, and the key stored is the one it found.

The checksum is the first 4 bytes of a BLAKE2b of the canonical JSON of the encoded params
(:meth:`hf_dr.augment.policy.AugmentationPolicy.encode`). Draws that changed (a NumPy release that changed a
``Generator`` method, another policy or seed) are refused with :class:`~hf_dr.errors.RecomputedParamsError` naming
the record; a changed draw passes unnoticed with probability 2**-32 per record.

Example:
    >>> import numpy as np
    >>> from hf_dr import create_policy
    >>> policy = create_policy("rrc+ra_re")
    >>> params = policy.sample_params((48, 64), generator_for(0, "img_7", 3))
    >>> stored = seeded_record(policy, policy.encode(params))
    >>> sorted(stored)
    ['check']
    >>> recompute_params(policy, stored, seed=0, key="img_7", index=3, image_size=(48, 64)) == params
    True
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import datasets

from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.ops.base import ImageSize
from hf_dr.augment.policy import AugmentationPolicy, Params
from hf_dr.augment.seeding import generator_for
from hf_dr.errors import RecomputedParamsError

CHECK_FIELD = "check"
PARTNER_FIELD = "partner_key"


def params_checksum(encoded: dict[str, Any]) -> int:
    """A 32-bit checksum of encoded params (their canonical JSON).

    Example:
        >>> params_checksum({"crop": {"top": 1}}) == params_checksum({"crop": {"top": 1}})
        True
    """
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")


def seeded_features(policy: AugmentationPolicy) -> dict[str, Any]:
    """The features of a seeded record's params: the checksum, and the partner key for mixing policies."""
    features = {CHECK_FIELD: datasets.Value("uint32")}
    if policy.needs_partner:
        features[PARTNER_FIELD] = datasets.Value("string")
    return features


def seeded_record(policy: AugmentationPolicy, encoded: dict[str, Any]) -> dict[str, Any]:
    """What a seeded record stores of ``encoded`` params (see :func:`seeded_features`)."""
    stored: dict[str, Any] = {CHECK_FIELD: params_checksum(encoded)}
    if policy.needs_partner:
        stored[PARTNER_FIELD] = encoded[policy.mixing.name]["partner_key"]
    return stored


class _Constant:
    """A read-only sequence of ``length`` copies of ``value``: the pool of a replayed draw has the run's size, and
    whichever index is drawn holds the stored partner."""

    def __init__(self, value: Any, length: int) -> None:
        self.value, self.length = value, int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.value


def recompute_params(
    policy: AugmentationPolicy,
    stored: dict[str, Any],
    seed: int,
    key: str,
    index: int,
    image_size: ImageSize,
    pool_size: int | None = None,
    partner_size: ImageSize | None = None,
) -> Params:
    """The params of record ``index`` of ``key``, drawn again and checked against the stored checksum.

    Args:
        policy (`AugmentationPolicy`): the run's policy.
        stored (`dict`): the record's stored params (:func:`seeded_record`).
        seed (`int`): the run's seed.
        key (`str`), index (`int`): the sample key and the record's index among its N.
        image_size (`tuple[int, int]`): height and width of the image as the run decoded it.
        pool_size (`int`, *optional*): the number of rows partners were drawn from (mixing policies).
        partner_size (`tuple[int, int]`, *optional*): the stored partner's image size (mixing policies).

    Raises:
        :class:`~hf_dr.errors.RecomputedParamsError`: the draws differ from the ones the run stored.
    """
    partners = None
    if policy.needs_partner:
        if pool_size is None:
            raise RecomputedParamsError(f"record {index} of key {key!r} mixes, and the pool size partners were drawn "
                                        "from is unknown; the data's description records it as source.num_rows")
        partners = PartnerPool(keys=_Constant(stored.get(PARTNER_FIELD) or "", pool_size),
                               sizes=_Constant(tuple(partner_size or (1, 1)), pool_size))
    params = policy.sample_params(tuple(image_size), generator_for(seed, key, index), partners)
    if policy.needs_partner and not stored.get(PARTNER_FIELD) and policy.partner_key(params) is not None:
        policy.unmix(params)  # the run stored this view unmixed: its partner's image could not be decoded
    encoded = policy.encode(params)
    if params_checksum(encoded) != stored[CHECK_FIELD]:
        raise RecomputedParamsError(
            f"record {index} of key {key!r}: the augmentation params drawn again from (seed {seed}, key, index) on a "
            f"{image_size[0]}x{image_size[1]} image do not match the checksum the run stored, so this replay would "
            "not show what the teacher saw. The libraries that draw them differ from the run's (compare the versions "
            "in the data's description with the installed ones and install those), or the image differs from the one "
            "reinforced. Reinforce with param_mode='stored' to keep params independent of library versions.")
    return policy.decode(encoded)
