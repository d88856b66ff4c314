"""Test helpers: tiny local timm teachers saved to disk (``.safetensors`` files and ``save_for_hf`` folders)."""

from __future__ import annotations

import os

import safetensors.torch
import timm
import torch

TEACHER_ARCH = "test_resnet"
TEACHER_SIZE = 32


def tiny_model(seed: int = 0, num_classes: int = 10, arch: str = TEACHER_ARCH, size: int = TEACHER_SIZE,
               in_chans: int = 3) -> torch.nn.Module:
    """A randomly initialised timm model whose logits are spread out (the head is scaled up), so its top-k is
    well separated and its probabilities are not all near 1/num_classes."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, num_classes=num_classes, in_chans=in_chans).eval()
    with torch.no_grad():
        model.get_classifier().weight.mul_(30.0)
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (in_chans, size, size), "num_classes": num_classes}
    return model


def save_teacher(directory: str, seed: int = 0, num_classes: int = 10, arch: str = TEACHER_ARCH,
                 size: int = TEACHER_SIZE, in_chans: int = 3) -> dict:
    """Saves a :func:`tiny_model` to ``directory/teacher-{seed}.safetensors``; returns its member spec (a dict whose
    ``input_size`` makes the teacher read ``size`` x ``size`` views of ``in_chans`` channels: 1 makes a gray run)."""
    os.makedirs(directory, exist_ok=True)
    gray = "-gray" if in_chans == 1 else ""
    path = os.path.join(directory, f"{arch}-{seed}-{num_classes}{gray}.safetensors")
    safetensors.torch.save_file(tiny_model(seed, num_classes, arch, size, in_chans).state_dict(), path)
    return {"arch": arch, "weights": path, "input_size": [in_chans, size, size]}


def save_teacher_dir(directory: str, seed: int = 0, num_classes: int = 10, size: int = TEACHER_SIZE) -> str:
    """Saves a :func:`tiny_model` with timm's ``save_for_hf`` (its data config reads ``size`` x ``size`` views)."""
    timm.models.save_for_hf(tiny_model(seed, num_classes, size=size), directory, safe_serialization=True)
    return directory
