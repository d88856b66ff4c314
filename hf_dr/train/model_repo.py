"""A trained student (or a teacher member) as a timm model repo on the Hub: ``hf-dr push-model``.

The repo is what ``timm.models.push_to_hf_hub`` writes (``config.json`` with the architecture, ``num_classes``,
``model_args`` such as ``in_chans`` and the preprocessing; ``model.safetensors``), so that
``timm.create_model("hf-hub:org/name", pretrained=True)`` rebuilds the model with its channels and classes, plus a
model card that names the reinforced dataset it was trained on and the metrics training measured. What a training
script wrote beside the checkpoint (``train_config.json``, ``result.json``) fills the card; nothing is retyped.

Imports: ``hf_dr.models.checkpoints``; ``timm`` and ``huggingface_hub`` when pushing.

Example:
    >>> card = model_card("me/student", "resnet18", dataset="me/cifar100-plus",
    ...                   metrics={"top1": 0.8, "nll": 0.7, "ece": 0.02, "num_samples": 10000})
    >>> "datasets:\\n- me/cifar100-plus" in card and "| top1 | 0.8 |" in card
    True
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hf_dr.models.checkpoints import load_classifier

CARD_TAGS = ["image-classification", "timm", "dataset-reinforcement", "hf-dr"]


def training_record(checkpoint: str | Path) -> dict[str, Any]:
    """What a training script wrote beside ``checkpoint``: the dataset it trained on and its final metrics (empty
    where it wrote nothing)."""
    folder = Path(checkpoint).parent if Path(checkpoint).is_file() else Path(checkpoint)
    record: dict[str, Any] = {}
    if (folder / "train_config.json").exists():
        data = json.loads((folder / "train_config.json").read_text()).get("data", {})
        record["dataset"] = data.get("dataset")
    if (folder / "result.json").exists():
        record["metrics"] = json.loads((folder / "result.json").read_text()).get("metrics")
    return record


def model_card(repo_id: str, architecture: str, dataset: str | None = None, metrics: dict[str, Any] | None = None,
               license: str | None = None, in_chans: int = 3) -> str:
    """The model card of a pushed student: YAML metadata (``library_name: timm``, the dataset), how to load it, what it
    was trained on and its metrics."""
    from huggingface_hub import ModelCard, ModelCardData

    on_hub = bool(dataset) and _is_hub_id(dataset)  # a local path or bundled name is named, never linked
    data = ModelCardData(library_name="timm", license=license or "other", tags=CARD_TAGS,
                         datasets=[dataset] if on_hub else None, pipeline_tag="image-classification")
    imports = ("import hf_dr.models.networks  # registers hf-dr's small networks with timm\n"
               if architecture.startswith("hf_dr_") else "")
    lines = [f"# {repo_id.split('/')[-1]}", "",
             f"A `{architecture}` image classifier ({in_chans}-channel input) trained with "
             "hf-dr (dataset reinforcement, Faghri et al., ICCV 2023)"
             + (f" on the reinforced dataset [{dataset}](https://huggingface.co/datasets/{dataset})." if on_hub else
                f" on `{dataset}`." if dataset else "."), "", "## How to use", "", "```python",
             f"import timm\n{imports}",
             f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()',
             "config = timm.data.resolve_model_data_config(model)  # input size, mean, std",
             "transform = timm.data.create_transform(**config)", "```", ""]
    if metrics:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        lines += ["## Metrics", "", "Measured at the end of training (top-1 accuracy, negative log-likelihood, "
                  "expected calibration error with 15 bins):", "", "| metric | value |", "|---|---|",
                  *[f"| {name} | {value:.4g} |" for name, value in shown.items()], ""]
    else:
        lines += ["## Metrics", "", "Training recorded none (train with `--eval-split` to record them).", ""]
    return str(ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + "\n".join(lines)))


def _is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hub dataset id (``org/name``), not a local path or a bundled dataset's name."""
    from hf_dr.data.bundled import bundled_name
    from hf_dr.data.sources import looks_local

    return "/" in name and not os.path.exists(name) and not looks_local(name) and bundled_name(name) is None


def push_model(
    checkpoint: str | Path,
    repo_id: str,
    *,
    dataset: str | None = None,
    metrics: dict[str, Any] | None = None,
    license: str | None = None,
    private: bool = False,
    branch: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Pushes a checkpoint written by hf_dr (``save_checkpoint``; a Trainer folder) as a timm model repo.

    Args:
        checkpoint (`str` or `Path`): the checkpoint (see :func:`hf_dr.load_classifier`).
        repo_id (`str`): the model repo to create or update.
        dataset (`str`, *optional*): the dataset it was trained on; by default what ``train_config.json`` beside the
            checkpoint records.
        metrics (`dict`, *optional*): metrics for the card; by default those of ``result.json`` beside it.
        license (`str`, *optional*): a Hub license id (``other`` by default).
        private (`bool`, *optional*, defaults to `False`): create the repo private.
        branch (`str`, *optional*): the branch to commit to (the default branch by default).
        create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead of committing.
        commit_message (`str`, *optional*): the commit message.
        token (`str`, *optional*): a Hub token; the logged-in one by default.

    Returns:
        The commit (or pull request) URL.
    """
    import timm.models
    from huggingface_hub import HfApi

    model, data_config = load_classifier(checkpoint)
    record = training_record(checkpoint)
    dataset = dataset or record.get("dataset")
    metrics = metrics if metrics is not None else record.get("metrics")
    architecture = model.pretrained_cfg.get("architecture") or type(model).__name__
    in_chans = int(data_config.get("input_size", (3,))[0])
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hf-dr-push-model-") as folder:
        timm.models.save_for_hf(model, folder, safe_serialization=True,
                                data_config={k: data_config[k] for k in ("input_size", "mean", "std")
                                             if k in data_config})
        Path(folder, "README.md").write_text(model_card(repo_id, architecture, dataset, metrics, license, in_chans),
                                             encoding="utf-8")
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=branch, create_pr=create_pr,
                                   commit_message=commit_message or f"Upload {architecture} trained with hf-dr")
    return str(getattr(commit, "pr_url", None) or commit.commit_url)
