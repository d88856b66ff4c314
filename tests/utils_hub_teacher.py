"""Test helper: a tiny teacher (``hf_dr_cnn_fc``, one channel, 28x28) pushed to the local Hub server as a timm model
repo with ``hf-dr push-model``, as a teacher's author publishes one."""

from __future__ import annotations

import os

import torch
from huggingface_hub import HfApi

from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint
from hf_dr.models.students import create_model
from hf_dr.train.model_repo import push_model

TEACHER_ARCH = "hf_dr_cnn_fc"


def teacher_checkpoint(directory: str, seed: int = 0, num_classes: int = 10) -> str:
    """A randomly initialised ``hf_dr_cnn_fc`` whose head is scaled up (spread-out probabilities, a clear top-k),
    saved with its architecture and preprocessing in the file header."""
    torch.manual_seed(seed)
    model = create_model(TEACHER_ARCH, num_classes=num_classes).eval()
    with torch.no_grad():
        model.get_classifier().weight.mul_(30.0)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{TEACHER_ARCH}-{seed}.safetensors")
    return str(save_checkpoint(model, path, checkpoint_model_metadata(model, TEACHER_ARCH)))


def push_teacher(repo_id: str, directory: str, seed: int = 0) -> str:
    """Pushes :func:`teacher_checkpoint` to the model repo ``repo_id`` (a new commit each call); returns the commit."""
    push_model(teacher_checkpoint(directory, seed), repo_id)
    return HfApi().model_info(repo_id).sha
