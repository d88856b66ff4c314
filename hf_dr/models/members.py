"""The members :func:`hf_dr.train.finetune.finetune_teacher` trains: each built from a timm architecture (pretrained
body from the Hub or a local file, a fresh head of the target's classes), with the data config it reads images with
and the entry of ``teacher_spec.json`` that describes it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from hf_dr.errors import InvalidConfigError, TeacherError
from hf_dr.files import to_json_value

if TYPE_CHECKING:
    from hf_dr.train.finetune import FinetuneConfig


def create_member(config: FinetuneConfig, num_classes: int, seed: int) -> torch.nn.Module:
    """``config.arch`` with a fresh ``num_classes`` head (initialised from ``seed``) on the pretrained body: Hub
    weights, ``config.weights``, or random weights when ``config.pretrained`` is False.

    Example:
        >>> from hf_dr.train.finetune import FinetuneConfig
        >>> model = create_member(FinetuneConfig("test_resnet", pretrained=False), num_classes=10, seed=0)
        >>> model.num_classes
        10
    """
    import timm

    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "pretrained": config.pretrained}
    if config.weights is not None:
        kwargs["pretrained_cfg_overlay"] = _local_weights_overlay(config.arch, config.weights)
    try:
        return timm.create_model(config.arch, **kwargs)
    except (RuntimeError, OSError, ValueError) as err:
        source = config.weights or ("the Hub" if config.pretrained else "random weights")
        raise TeacherError(
            f"could not build {config.arch!r} from {source}: {str(err).strip().splitlines()[0].rstrip('.')}. "
            "Check the name (timm.list_pretrained()), that the weights belong to it, and for Hub weights that the "
            "Hub is reachable (offline: pass weights=FILE / --weights FILE)."
        ) from err


def _local_weights_overlay(arch: str, weights: str) -> dict[str, Any]:
    from hf_dr.errors import WeightsNotFoundError
    from hf_dr.models.teacher import head_size

    if not os.path.isfile(weights):
        raise WeightsNotFoundError(f"pretrained weights {os.path.abspath(weights)!r} of {arch!r} do not exist; pass "
                                   "an existing .safetensors/.pth file")
    overlay: dict[str, Any] = {"file": weights}
    classes = head_size(arch, weights)
    if classes is not None:
        overlay["num_classes"] = classes  # timm drops a head of another size and keeps the body
    return overlay


def member_data_config(model: torch.nn.Module, image_size: int | None = None, mean: Any = None, std: Any = None
                       ) -> dict[str, Any]:
    """The member's input size, interpolation, mean, std and crop_pct (timm's resolved config; ``image_size``,
    ``mean`` and ``std`` override it)."""
    import timm

    config = dict(timm.data.resolve_model_data_config(model))
    if image_size is not None:
        config["input_size"] = (int(config["input_size"][0]), int(image_size), int(image_size))
    for name, value in (("mean", mean), ("std", std)):
        if value is not None:
            channels = int(config["input_size"][0])
            if len(value) not in (1, channels):
                raise InvalidConfigError(f"{name} has {len(value)} values for a {channels}-channel model; pass 1 or "
                                         f"{channels} (--{name}).")
            config[name] = tuple(value) * (channels if len(value) == 1 else 1)
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct")
    return to_json_value({k: config[k] for k in keys})


def member_spec(arch: str, weights: str, num_classes: int, data_config: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``teacher_spec.json`` (see :func:`hf_dr.load_teacher_spec`); ``weights`` is made absolute."""
    return {"arch": arch, "weights": os.path.abspath(weights), "num_classes": num_classes, **data_config}
