"""Named augmentation policies: ``create_policy(name, **overrides)``, ``list_policies()`` and ``as_policy``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from hf_dr.augment.defaults import DEFAULT_POLICY
from hf_dr.augment.ops import Mixing, RandAugment, RandomCropFlip, RandomErasing, RandomResizedCropFlip
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.errors import InvalidConfigError, UnknownPolicyError

_REGISTRY: dict[str, Callable[..., AugmentationPolicy]] = {}


def register_policy(name: str) -> Callable[[Callable[..., AugmentationPolicy]], Callable[..., AugmentationPolicy]]:
    """Decorator registering a policy factory under ``name``."""

    def wrap(factory: Callable[..., AugmentationPolicy]) -> Callable[..., AugmentationPolicy]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def list_policies() -> list[str]:
    """Names of the registered policies.

    Example:
        >>> list_policies()
        ['crop_flip', 'rrc', 'rrc+mix', 'rrc+mix+ra_re', 'rrc+ra_re']
    """
    return sorted(_REGISTRY)


def create_policy(name: str = DEFAULT_POLICY, **overrides: dict[str, Any]) -> AugmentationPolicy:
    """Builds the policy ``name``; ``overrides`` maps an op name to keyword arguments of that op.

    Args:
        name (`str`, *optional*, defaults to ``"rrc+ra_re"``): one of :func:`list_policies`.
        overrides: per-op arguments, e.g. ``crop={"scale": (0.35, 1)}``, ``randaugment={"magnitude": 5}``.

    Example:
        >>> create_policy("rrc", crop={"scale": (0.35, 1.0)}).crop.scale
        (0.35, 1.0)
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        hint = " (a policy config dict is rebuilt with policy_from_config)" if isinstance(name, dict) else ""
        raise UnknownPolicyError(f"unknown policy {name!r}; valid names are {list_policies()}{hint}")
    policy = _REGISTRY[name](**overrides)
    return policy


def policy_from_config(config: dict[str, Any]) -> AugmentationPolicy:
    """Rebuilds a policy from :meth:`AugmentationPolicy.config` (as saved with a reinforcement run)."""
    ops_classes = (RandomCropFlip, RandomResizedCropFlip, RandAugment, RandomErasing, Mixing)
    classes = {cls.__name__: cls for cls in ops_classes}
    try:
        name = config["name"]
        ops = [classes[op["op"]](**{k: v for k, v in op.items() if k != "op"}) for op in config["ops"]]
    except (KeyError, TypeError) as err:
        raise InvalidConfigError(f"not a policy config: {config!r} ({err})") from err
    mixing = [op for op in ops if isinstance(op, Mixing)]
    rest = [op for op in ops if not isinstance(op, Mixing)]
    if not rest:
        raise InvalidConfigError(f"not a policy config: {config!r} (no crop op)")
    return AugmentationPolicy(name, rest[0], rest[1:], mixing[0] if mixing else None)


def as_policy(policy: str | dict[str, Any] | AugmentationPolicy) -> AugmentationPolicy:
    """The policy named by ``policy``: a registered name, a saved config or a policy (returned as is).

    Args:
        policy (`str`, `dict` or `AugmentationPolicy`): a name of :func:`list_policies` (built with its defaults),
            the path of a ``.json`` file holding a config, an :meth:`AugmentationPolicy.config` dict (as recorded
            with a reinforcement run) or a policy.

    Example:
        >>> as_policy("rrc").name
        'rrc'
        >>> policy = create_policy("rrc", crop={"scale": (0.35, 1.0)})
        >>> as_policy(policy.config()).config() == policy.config(), as_policy(policy) is policy
        (True, True)
    """
    if isinstance(policy, str) and policy not in _REGISTRY and policy.endswith(".json"):
        return _from_file(policy)
    if isinstance(policy, str):
        return create_policy(policy)
    if isinstance(policy, dict):
        return policy_from_config(policy)
    if not isinstance(policy, AugmentationPolicy):
        raise InvalidConfigError(
            f"expected a policy name, a policy config dict or an AugmentationPolicy, got {type(policy).__name__}"
        )
    return policy


def _from_file(path: str) -> AugmentationPolicy:
    """The policy a JSON file holds: an :meth:`AugmentationPolicy.config` (``reinforce_config.json``: ``policy``)."""
    if not os.path.isfile(path):
        raise UnknownPolicyError(f"policy file {path!r} does not exist; pass a policy name ({list_policies()}) or the "
                                 "path of a JSON policy config")
    with open(path) as f:
        try:
            return policy_from_config(json.load(f))
        except ValueError as err:
            raise InvalidConfigError(f"{path}: not a JSON policy config ({err})") from err


def _checked(op_name: str, overrides: dict[str, dict[str, Any]], allowed: set[str]) -> dict[str, Any]:
    unknown = set(overrides) - allowed
    if unknown:
        raise InvalidConfigError(f"overrides for ops {sorted(unknown)} do not apply; the policy has {sorted(allowed)}")
    return dict(overrides.get(op_name, {}))


def _build(name: str, crop_cls: type, ra_re: bool, mix: bool, overrides: dict[str, dict[str, Any]]
           ) -> AugmentationPolicy:
    allowed = {"crop"} | ({"randaugment", "erasing"} if ra_re else set()) | ({"mixing"} if mix else set())
    crop = crop_cls(**_checked("crop", overrides, allowed))
    image_ops = []
    if ra_re:
        image_ops = [RandAugment(**_checked("randaugment", overrides, allowed)),
                     RandomErasing(**_checked("erasing", overrides, allowed))]
    mixing = Mixing(**_checked("mixing", overrides, allowed)) if mix else None
    return AugmentationPolicy(name, crop, image_ops, mixing)


@register_policy("crop_flip")
def _crop_flip(**overrides: dict[str, Any]) -> AugmentationPolicy:
    return _build("crop_flip", RandomCropFlip, False, False, overrides)


@register_policy("rrc")
def _rrc(**overrides: dict[str, Any]) -> AugmentationPolicy:
    return _build("rrc", RandomResizedCropFlip, False, False, overrides)


@register_policy("rrc+ra_re")
def _rrc_ra_re(**overrides: dict[str, Any]) -> AugmentationPolicy:
    return _build("rrc+ra_re", RandomResizedCropFlip, True, False, overrides)


@register_policy("rrc+mix")
def _rrc_mix(**overrides: dict[str, Any]) -> AugmentationPolicy:
    return _build("rrc+mix", RandomResizedCropFlip, False, True, overrides)


@register_policy("rrc+mix+ra_re")
def _rrc_mix_ra_re(**overrides: dict[str, Any]) -> AugmentationPolicy:
    return _build("rrc+mix+ra_re", RandomResizedCropFlip, True, True, overrides)
