"""Evaluation of a classifier: top-1 accuracy, negative log-likelihood and expected calibration error.

The metric functions take logits (or probabilities) and integer labels; :func:`evaluate` runs a model over a
dataset or DataLoader whose batches hold ``pixel_values`` and integer ``labels`` (see :class:`hf_dr.EvalTransform`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from hf_dr.augment.functional import IMAGENET_MEAN, IMAGENET_STD
from hf_dr.errors import InvalidConfigError, MissingColumnError
from hf_dr.models.students import forward_logits

ECE_BINS = 15


def _check(scores: torch.Tensor, labels: torch.Tensor) -> None:
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] != labels.shape[0]:
        raise InvalidConfigError(
            f"expected scores [N, C] and integer labels [N], got {tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if torch.is_floating_point(labels):
        raise InvalidConfigError("evaluation needs integer class labels, got floating-point labels")


def top1_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of rows whose highest score is the label.

    Args:
        scores (`torch.Tensor`): logits or probabilities ``[N, C]``.
        labels (`torch.Tensor`): integer labels ``[N]``.

    Example:
        >>> top1_accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        0.5
    """
    _check(scores, labels)
    return float((scores.argmax(-1) == labels).float().mean())


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean ``-log softmax(logits)[label]`` (in nats).

    Example:
        >>> round(negative_log_likelihood(torch.zeros(3, 4), torch.tensor([0, 1, 2])), 4)  # log(4)
        1.3863
    """
    _check(logits, labels)
    return float(F.cross_entropy(logits.float(), labels.long()))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, num_bins: int = ECE_BINS) -> float:
    """Expected calibration error (Guo et al., 2017) with ``num_bins`` equal-width confidence bins.

    The confidence of a row is its highest probability; bin ``b`` holds confidences in ``(b / B, (b + 1) / B]``.
    ECE = sum over bins of ``|bin| / N * |accuracy(bin) - mean confidence(bin)|``, a fraction in ``[0, 1]``.

    Args:
        probs (`torch.Tensor`): probabilities ``[N, C]`` (rows sum to one).
        labels (`torch.Tensor`): integer labels ``[N]``.
        num_bins (`int`, *optional*, defaults to 15): number of confidence bins.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
        >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 0, 0])), 4)  # (2 * |0.5 - 0.9| + 2 * 0.4) / 4
        0.4
    """
    _check(probs, labels)
    if num_bins < 1:
        raise InvalidConfigError(f"num_bins should be a positive integer, but got {num_bins} instead.")
    confidence, prediction = probs.float().max(-1)
    correct = (prediction == labels).float()
    # bin b holds (b/B, (b+1)/B]; a confidence of exactly 0 cannot occur for a probability row's maximum
    bins = (confidence * num_bins).ceil().long().clamp(1, num_bins) - 1
    conf_sum = torch.zeros(num_bins).index_add_(0, bins, confidence)
    correct_sum = torch.zeros(num_bins).index_add_(0, bins, correct)
    return float((conf_sum - correct_sum).abs().sum() / max(len(labels), 1))


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_bins: int = ECE_BINS) -> dict[str, float]:
    """``{"top1", "nll", "ece", "num_samples"}`` of logits ``[N, C]`` against integer labels ``[N]``.

    Example:
        >>> metrics = classification_metrics(torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 1]))
        >>> metrics["top1"], metrics["num_samples"]
        (1.0, 2)
    """
    probs = logits.float().softmax(-1)
    return {
        "top1": top1_accuracy(logits, labels),
        "nll": negative_log_likelihood(logits, labels),
        "ece": expected_calibration_error(probs, labels, num_bins),
        "num_samples": int(labels.shape[0]),
    }


@torch.no_grad()
def predict(
    model: torch.nn.Module, data: Any, batch_size: int = 256, num_workers: int = 0, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` and integer labels ``[N]`` of ``model`` over ``data``.

    Args:
        model (`torch.nn.Module`): a timm model, a transformers image classifier, or any module returning logits.
        data (`datasets.Dataset`, `torch.utils.data.DataLoader` or iterable of batches): batches of
            ``pixel_values`` and integer ``labels``; a dataset is batched with ``batch_size``.
        batch_size (`int`, *optional*, defaults to 256): batch size when ``data`` is a dataset.
        num_workers (`int`, *optional*, defaults to 0): DataLoader workers when ``data`` is a dataset.
        channels_last (`bool`, *optional*, defaults to `False`): feed channels-last inputs (faster CNNs on CPU).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    all_logits, all_labels = [], []
    try:
        for batch in _batches(data, batch_size, num_workers):
            if "pixel_values" not in batch or "labels" not in batch:
                raise MissingColumnError(
                    f"evaluation batches need 'pixel_values' and 'labels', got {sorted(batch)}; set "
                    "hf_dr.EvalTransform on the dataset"
                )
            pixels = batch["pixel_values"].to(device)
            if channels_last and pixels.ndim == 4:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            all_logits.append(forward_logits(model, pixels).float().cpu())
            all_labels.append(torch.as_tensor(batch["labels"]).cpu())
    finally:
        model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(
    model: torch.nn.Module,
    data: Any,
    batch_size: int = 256,
    num_workers: int = 0,
    num_bins: int = ECE_BINS,
    channels_last: bool = False,
) -> dict[str, float]:
    """Top-1, NLL and ECE (``num_bins`` bins) of ``model`` on ``data``; see :func:`predict` for the arguments.

    Example (an untrained network on 16 bundled test digits):
        >>> from hf_dr import EvalTransform, create_model, evaluate
        >>> from hf_dr.data.bundled import load_bundled
        >>> digits = load_bundled("digits", "test").select(range(16))
        >>> test = EvalTransform(size=28, mean=(0.5,), std=(0.5,)).attach(digits)
        >>> metrics = evaluate(create_model("hf_dr_mlp", num_classes=10, in_chans=1), test)
        >>> sorted(metrics), metrics["num_samples"], 0 <= metrics["top1"] <= 1
        (['ece', 'nll', 'num_samples', 'top1'], 16, True)
    """
    logits, labels = predict(model, data, batch_size, num_workers, channels_last)
    if torch.is_floating_point(labels):
        raise InvalidConfigError(
            "evaluation needs integer labels but the batches hold soft labels; evaluate on a dataset with "
            "hf_dr.EvalTransform set, not the reinforced training transform"
        )
    return classification_metrics(logits, labels, num_bins)


def _batches(data: Any, batch_size: int, num_workers: int) -> Iterable[dict[str, Any]]:
    import datasets

    if isinstance(data, (datasets.Dataset, torch.utils.data.Dataset)):
        return torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=num_workers)
    return data


def evaluate_checkpoint(
    checkpoint: str,
    dataset: Any = "fashion-mnist",
    split: str = "test",
    model: str | None = None,
    image_column: str = "image",
    label_column: str = "label",
    num_classes: int | None = None,
    in_chans: int | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Top-1, NLL and ECE of a checkpoint on a dataset split (what ``hf-dr eval`` prints).

    Args:
        checkpoint (`str`): see :func:`hf_dr.load_classifier`.
        dataset (`str` or `datasets.Dataset`, *optional*, defaults to ``"fashion-mnist"``): ``"fashion-mnist"`` (the
            Debian files), a Hub id, a local folder, a Parquet file, or a loaded dataset.
        split (`str`, *optional*, defaults to ``"test"``): the split to evaluate.
        model (`str`, *optional*): timm architecture, when the checkpoint does not record it.
        size, mean, std (*optional*): preprocessing; the checkpoint's (or the model's timm data config) by default.
        limit (`int`, *optional*): evaluate the first ``limit`` rows only.

    Example (an untrained network's checkpoint on the first 16 rows of the bundled digits' test split):
        >>> import tempfile
        >>> from hf_dr import create_model
        >>> from hf_dr.models.checkpoints import save_checkpoint
        >>> path = save_checkpoint(create_model("hf_dr_mlp", num_classes=10, in_chans=1),
        ...                        tempfile.mkdtemp() + "/student.safetensors", {"architecture": "hf_dr_mlp"})
        >>> metrics = evaluate_checkpoint(path, "digits", limit=16, mean=(0.5,), std=(0.5,))
        >>> metrics["num_samples"], metrics["dataset"], metrics["split"], sorted(metrics)
        (16, 'digits', 'test', ['checkpoint', 'dataset', 'ece', 'nll', 'num_samples', 'split', 'top1'])
    """
    from hf_dr.data.columns import class_count
    from hf_dr.models.checkpoints import load_classifier

    dataset, name = _evaluation_rows(dataset, split, limit)
    num_classes = num_classes or class_count(dataset, label_column)
    classifier, data_config = load_classifier(checkpoint, model, num_classes, in_chans)
    if num_classes is not None:
        from hf_dr.models.students import check_model_num_classes

        check_model_num_classes(classifier, num_classes)
    transform = _eval_transform(data_config, size, mean, std, image_column, label_column)
    metrics = evaluate(classifier, transform.attach(dataset.with_format(None)), batch_size=batch_size,
                       num_workers=num_workers)
    return {**metrics, "checkpoint": str(checkpoint), "dataset": name, "split": split}


def _evaluation_rows(dataset: Any, split: str, limit: int | None) -> tuple[Any, str | None]:
    """The rows :func:`evaluate_checkpoint` evaluates (the first ``limit`` of ``split``) and the dataset's name."""
    if isinstance(dataset, str):
        from hf_dr.data.sources import load_source

        name, dataset = dataset, load_source(dataset, split=split)  # bundled names included
    else:
        name = getattr(dataset, "info", None) and dataset.info.dataset_name
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset, name


def _eval_transform(data_config: dict[str, Any], size: int | None, mean: Sequence[float] | None,
                    std: Sequence[float] | None, image_column: str, label_column: str) -> Any:
    """An :class:`hf_dr.EvalTransform` with the given preprocessing, else the checkpoint's (else ImageNet's at 224)."""
    from hf_dr.data.transforms import EvalTransform

    input_size = data_config.get("input_size", (3, 224, 224))
    return EvalTransform(
        size=size or tuple(input_size[1:]), mean=mean or data_config.get("mean", IMAGENET_MEAN),
        std=std or data_config.get("std", IMAGENET_STD), image_column=image_column,
        label_column=label_column,
    )
