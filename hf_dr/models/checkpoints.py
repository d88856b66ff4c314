"""Checkpoints of students and teachers: safetensors weights with hf_dr metadata in the header, loading them back
into bare or wrapped models, and rebuilding a classifier from one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hf_dr.augment.functional import per_channel
from hf_dr.errors import InvalidConfigError
from hf_dr.files import write_atomic
from hf_dr.models.students import model_in_chans, model_num_classes

logger = logging.getLogger(__name__)

_WRAPPER_PREFIXES = ("model.", "timm_model.", "module.")


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Saves ``model``'s weights as safetensors, atomically (:func:`hf_dr.files.write_atomic`); ``metadata``
    (JSON-serialisable) is stored in the file header.

    Example:
        >>> import tempfile
        >>> from hf_dr.models.students import create_model
        >>> path = save_checkpoint(create_model("hf_dr_mlp", num_classes=10, in_chans=1),
        ...                        Path(tempfile.mkdtemp()) / "student.safetensors", {"architecture": "hf_dr_mlp"})
        >>> checkpoint_metadata(path)
        {'architecture': 'hf_dr_mlp'}
    """
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"hf_dr": json.dumps(metadata or {})}
    write_atomic(path, lambda temporary: save_file(state, temporary, metadata=header))
    return path


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata saved by :func:`save_checkpoint` (empty for other safetensors files)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("hf_dr", "{}"))


def load_checkpoint(model: nn.Module, path: str | Path, ignore_mismatched_sizes: bool = False) -> list[str]:
    """Loads safetensors weights into ``model``; returns the names of the tensors left at their initial values.

    Keys saved through a wrapper (``transformers.Trainer`` with :class:`hf_dr.models.students.PixelValuesClassifier`,
    ``TimmWrapperForImageClassification``) load into the bare model and the other way round. With
    ``ignore_mismatched_sizes`` tensors whose shape differs (a classifier head of another class count: pretrain on
    X+, fine-tune on Y+) are skipped instead of raising.

    Args:
        model (`torch.nn.Module`): the model to fill.
        path (`str` or `Path`): a ``.safetensors`` file, or a folder holding ``model.safetensors``.
        ignore_mismatched_sizes (`bool`, *optional*, defaults to `False`): skip tensors of another shape.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = _match_prefixes(load_file(str(path)), model.state_dict())
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched and not ignore_mismatched_sizes:
        shapes = {k: (tuple(state[k].shape), tuple(own[k].shape)) for k in mismatched}
        raise InvalidConfigError(
            f"checkpoint {path} has tensors of other shapes {shapes} (checkpoint, model); pass "
            "ignore_mismatched_sizes=True to fine-tune with a new head"
        )
    state = {k: v for k, v in state.items() if k not in mismatched}
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise InvalidConfigError(f"checkpoint {path} holds tensors the model lacks: {unexpected[:5]}")
    model.load_state_dict(state, strict=False)
    missing = sorted(set(own) - set(state))
    if missing:
        logger.warning("%d tensors not loaded from %s (kept at init): %s", len(missing), path, missing[:5])
    return missing


def _match_prefixes(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if set(state) & set(own):
        return state
    for prefix in _WRAPPER_PREFIXES:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if stripped and set(stripped) & set(own):
            return stripped
        added = {prefix + k: v for k, v in state.items()}
        if set(added) & set(own):
            return added
    return state


def checkpoint_model_metadata(model: nn.Module, architecture: str, data_config: dict[str, Any] | None = None
                              ) -> dict[str, Any]:
    """The metadata :func:`load_classifier` needs to rebuild ``model``: architecture, class count, preprocessing."""
    data_config = data_config or getattr(model, "pretrained_cfg", None) or {}
    metadata: dict[str, Any] = {"architecture": architecture, "num_classes": model_num_classes(model)}
    for key in ("input_size", "mean", "std"):
        if data_config.get(key) is not None:
            metadata[key] = list(data_config[key])
    if "input_size" in metadata:
        metadata["in_chans"] = int(metadata["input_size"][0])
    return metadata


def load_classifier(
    checkpoint: str | Path,
    architecture: str | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds a classifier from a checkpoint; returns it (eval mode) and its preprocessing (``input_size``,
    ``mean``, ``std`` where known).

    Args:
        checkpoint (`str` or `Path`): a ``.safetensors`` file from :func:`save_checkpoint` (architecture and
            preprocessing stored in it), a folder holding ``model.safetensors`` (e.g. a Trainer output), or a
            transformers folder with ``config.json``.
        architecture (`str`, *optional*): timm name; overrides the stored one (needed for bare weight files).
        num_classes, in_chans (`int`, *optional*): override the stored values.

    Example:
        >>> import os, tempfile
        >>> from hf_dr import create_model
        >>> path = os.path.join(tempfile.mkdtemp(), "student.safetensors")
        >>> model = create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=1)
        >>> _ = save_checkpoint(model, path, checkpoint_model_metadata(model, "hf_dr_cnn_tiny"))
        >>> classifier, data_config = load_classifier(path)
        >>> classifier.num_classes, data_config["input_size"]
        (10, (1, 28, 28))
    """
    import timm

    path = Path(checkpoint)
    if path.is_dir() and (path / "config.json").exists() and architecture is None:
        from transformers import AutoModelForImageClassification

        model = AutoModelForImageClassification.from_pretrained(str(path))
        inner = getattr(model, "timm_model", None)
        data_config = timm.data.resolve_model_data_config(inner) if inner is not None else {}
        return model.eval(), dict(data_config)
    weights = path / "model.safetensors" if path.is_dir() else path
    metadata = checkpoint_metadata(weights) if weights.exists() else {}
    architecture = architecture or metadata.get("architecture")
    num_classes = num_classes or metadata.get("num_classes")
    in_chans = in_chans or metadata.get("in_chans")
    if architecture is None or num_classes is None:
        raise InvalidConfigError(
            f"{checkpoint} does not say which model it holds; pass the timm architecture and the class count "
            "(--model, --num-classes)"
        )
    kwargs = {"in_chans": in_chans} if in_chans else {}
    model = timm.create_model(architecture, pretrained=False, num_classes=num_classes, **kwargs)
    load_checkpoint(model, weights)
    data_config = dict(timm.data.resolve_model_data_config(model))
    data_config.update({k: tuple(metadata[k]) for k in ("input_size", "mean", "std") if k in metadata})
    return model.eval(), for_channels(data_config, model_in_chans(model))


def for_channels(data_config: dict[str, Any], channels: int | None) -> dict[str, Any]:
    """``data_config`` with its ``input_size``, ``mean`` and ``std`` for a model of ``channels`` input channels, as its
    inputs were normalised (:func:`hf_dr.augment.functional.per_channel`: a one-channel student trained with RGB
    statistics saw their average). timm refuses a config whose statistics have another length than the model's
    channels (``save_for_hf``, ``resolve_data_config``).

    Example:
        >>> for_channels({"input_size": (3, 28, 28), "mean": (0.2, 0.4, 0.6), "std": (0.5,) * 3}, 1)["input_size"]
        (1, 28, 28)
    """
    if channels is None:
        return data_config
    config = dict(data_config)
    if config.get("input_size") is not None:
        config["input_size"] = (channels, *tuple(config["input_size"])[1:])
    for key in ("mean", "std"):
        if config.get(key) is not None:
            config[key] = tuple(per_channel(config[key], channels))
    return config
