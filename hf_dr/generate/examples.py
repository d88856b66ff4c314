"""A tiny reinforced run for examples and doctests: the first rows of the bundled digits (scikit-learn's scans, no
network) reinforced by a randomly initialised ``test_resnet`` teacher (``rrc``, N=2, k=3, keyed by their ``key``
column), written to a temporary folder. The docstring examples of the replay, loading and training APIs start from it,
so each shows what it documents, not the same setup again."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import datasets

from hf_dr.data.bundled import load_bundled

__all__ = ["tiny_run"]


def tiny_run(rows: int = 4, num_samples: int = 2, output_dir: str | None = None, **options: Any
             ) -> tuple[datasets.Dataset, str]:
    """The bundled digits' first ``rows`` rows and the folder of a finished run over them.

    Args:
        rows (`int`, *optional*, defaults to 4): rows of the bundled digits' train split.
        num_samples (`int`, *optional*, defaults to 2): N, stored augmentations per image.
        output_dir (`str`, *optional*): the run's folder; a new temporary one by default.
        options: more :func:`hf_dr.reinforce` settings (``policy``, ``topk``, ``codec``, ...).

    Example (what it does, written out):
        >>> import os, tempfile, safetensors.torch, timm
        >>> from hf_dr import reinforce
        >>> digits = load_bundled("digits").select(range(4))
        >>> weights = os.path.join(tempfile.mkdtemp(), "teacher.safetensors")
        >>> safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), weights)
        >>> teacher = {"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}  # reads 32x32 RGB views
        >>> run = reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0, key_column="key",
        ...                 output_dir=tempfile.mkdtemp(), progress=False)
        >>> digits, run = tiny_run()  # the same, in one call
        >>> len(digits), sorted(name for name in os.listdir(run) if name.endswith(".json"))
        (4, ['manifest.json', 'reinforce_config.json'])
    """
    import safetensors.torch
    import timm

    from hf_dr.generate.run import reinforce

    digits = load_bundled("digits").select(range(rows))
    folder = tempfile.mkdtemp(prefix="hf-dr-example-")
    weights = os.path.join(folder, "teacher.safetensors")
    safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), weights)
    teacher = {"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}
    settings = {"policy": "rrc", "topk": 3, "seed": 0, "key_column": "key", "progress": False, **options}
    run = reinforce(digits, [teacher], num_samples=num_samples, output_dir=output_dir or os.path.join(folder, "run"),
                    **settings)
    return digits, run
