"""Recipes of the paper's reinforced datasets, one module per dataset holding
``BUILDER = hf_dr.generate.builder.Builder(...)``.

Example:
    >>> from hf_dr.builders import get_builder, list_builders
    >>> [name for name in list_builders() if name != "digits_plus"]  # digits_plus: registered by an example below
    ['cifar100_plus', 'flowers102_plus', 'food101_plus', 'imagenet_plus', 'imagenet_plus_small']
    >>> get_builder("cifar100-plus").dataset_id
    'uoft-cs/cifar100'
"""

from __future__ import annotations

import importlib

from hf_dr.errors import UnknownBuilderError
from hf_dr.generate.builder import Builder

__all__ = ["Builder", "UnknownBuilderError", "get_builder", "list_builders", "register_builder"]

_MODULES = ("cifar100_plus", "flowers102_plus", "food101_plus", "imagenet_plus", "imagenet_plus_small")
_REGISTERED: dict[str, Builder] = {}


def list_builders() -> list[str]:
    """Names of the recipes: the modules of this package, then those added with :func:`register_builder`."""
    return sorted(set(_MODULES) | set(_REGISTERED))


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def get_builder(name: str) -> Builder:
    """The recipe ``name`` (``-`` and ``_`` are the same); :class:`UnknownBuilderError` lists the valid names.

    Example:
        >>> get_builder("imagenet")
        Traceback (most recent call last):
        ...
        hf_dr.errors.UnknownBuilderError: unknown builder 'imagenet'; valid names are ['cifar100_plus', ...
    """
    key = _normalize(name)
    if key in _REGISTERED:
        return _REGISTERED[key]
    if key not in _MODULES:
        raise UnknownBuilderError(f"unknown builder {name!r}; valid names are {list_builders()} (`hf-dr builders`)")
    return importlib.import_module(f"{__name__}.{key}").BUILDER


def register_builder(builder: Builder) -> Builder:
    """Adds a recipe of your own under ``builder.name`` (replacing one of that name); returns it.

    Example:
        >>> register_builder(Builder(name="digits_plus", pretty_name="Digits+", description="demo",
        ...                          dataset_id="me/digits", split="train", image_column="image",
        ...                          label_column="label", num_classes=10, teacher=("resnet18.a1_in1k",)))
        ... # doctest: +SKIP
    """
    _REGISTERED[_normalize(builder.name)] = builder
    return builder
