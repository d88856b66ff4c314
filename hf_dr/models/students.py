"""Students and teachers as plain modules: building them by name, calling them, checking their class count, and
averaging an ensemble's probabilities.

Any timm model, any transformers image classifier (``TimmWrapperForImageClassification`` included) and any module
returning logits can be trained and evaluated by hf_dr. :func:`forward_logits` calls each kind the right way. The
small CPU networks of :mod:`hf_dr.models.networks` are registered with timm when this module is imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import timm
import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

import hf_dr.models.networks  # noqa: F401 (registers the small networks with timm)
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError
from hf_dr.models.outputs import logits_of
from hf_dr.models.teacher import mean_probabilities

__all__ = [
    "PixelValuesClassifier", "ProbabilityEnsemble", "check_input_channels", "check_model_num_classes", "create_model",
    "ensemble_logits", "forward_logits", "model_in_chans", "model_num_classes",
]


def forward_logits(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, C]`` of a timm model, a transformers classifier or any module returning logits."""
    if _takes_pixel_values(model):
        return logits_of(model(pixel_values=pixel_values))
    return logits_of(model(pixel_values))


def _takes_pixel_values(model: nn.Module) -> bool:
    from transformers import PreTrainedModel

    return isinstance(model, (PreTrainedModel, PixelValuesClassifier))


def model_num_classes(model: nn.Module) -> int | None:
    """The class count of a classifier's head (timm ``num_classes``, transformers ``config.num_labels``), if known."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "num_labels", None):
        return int(config.num_labels)
    for candidate in (model, getattr(model, "model", None), getattr(model, "timm_model", None)):
        if candidate is not None and isinstance(getattr(candidate, "num_classes", None), int):
            return int(candidate.num_classes)
    return None


def check_model_num_classes(model: nn.Module, num_classes: int) -> None:
    """Raises :class:`ClassCountMismatchError` when ``model`` predicts a different number of classes.

    Example:
        >>> check_model_num_classes(create_model("hf_dr_mlp", num_classes=10, in_chans=1), 100)
        Traceback (most recent call last):
        ...
        hf_dr.errors.ClassCountMismatchError: the model predicts 10 classes but the data has 100; ...
    """
    found = model_num_classes(model)
    if found is not None and found != num_classes:
        raise ClassCountMismatchError(
            f"the model predicts {found} classes but the data has {num_classes}; reset the classifier head "
            f"(timm.create_model(..., num_classes={num_classes}) or from_pretrained(..., num_labels={num_classes}, "
            "ignore_mismatched_sizes=True))"
        )


def model_in_chans(model: nn.Module) -> int | None:
    """The input channels of a classifier: those of its first convolution (timm, transformers and wrapped models),
    else its ``in_chans`` attribute; None when neither says (e.g. an MLP on flattened pixels).

    Example:
        >>> model_in_chans(create_model("hf_dr_cnn_tiny", num_classes=10)), model_in_chans(nn.Linear(4, 2))
        (1, None)
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return int(module.in_channels)
    found = getattr(model, "in_chans", None)
    return found if isinstance(found, int) else None


def check_input_channels(model: nn.Module | int, image_mode: str | None, source: str = "the data") -> None:
    """Raises :class:`InvalidConfigError` when ``model`` reads another number of input channels than the images of
    ``image_mode`` have ("L": 1, "RGB": 3; the mode a reinforcement run recorded), naming both and the fix, before
    any training: otherwise the first forward fails deep inside a convolution. Nothing to check without a mode or
    where the model does not say (:func:`model_in_chans`).

    Args:
        model (`torch.nn.Module` or `int`): the student, or its input channels (a ``DataConfig.in_chans``).
        image_mode (`str`, *optional*): the image mode of the data, ``"L"`` or ``"RGB"``.
        source (`str`, *optional*, defaults to ``"the data"``): what the data is, for the message (e.g. the run).

    Example:
        >>> check_input_channels(create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=1), "RGB", "run runs/r")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: the student reads 1 input channel but run runs/r holds images of mode 'RGB'...
    """
    from hf_dr.augment.functional import MODE_CHANNELS

    if image_mode is None or image_mode not in MODE_CHANNELS:
        return
    found, expected = model if isinstance(model, int) else model_in_chans(model), MODE_CHANNELS[image_mode]
    if found is not None and found != expected:
        raise InvalidConfigError(
            f"the student reads {found} input channel{'s' * (found != 1)} but {source} holds images of mode "
            f"{image_mode!r} ({expected} channel{'s' * (expected != 1)}); build it with {expected}: --in-chans "
            f"{expected} (or leave --in-chans out: the scripts take it from the run), create_model(..., "
            f"in_chans={expected}) or timm.create_model(..., in_chans={expected})"
        )


class PixelValuesClassifier(nn.Module):
    """Wraps a module that maps images to logits (e.g. a timm model) so that ``transformers.Trainer`` can call it.

    ``Trainer`` calls ``model(pixel_values=...)`` (the ``labels`` are popped for ``compute_loss_func``); the wrapper
    returns an ``ImageClassifierOutput``. Its ``state_dict`` keys are the inner model's with a ``model.`` prefix.

    Args:
        model (`torch.nn.Module`): the classifier to wrap.
        channels_last (`bool`, *optional*, defaults to `False`): feed channels-last inputs (faster CNNs on CPU).
    """

    def __init__(self, model: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.num_classes = model_num_classes(model)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any
                ) -> ImageClassifierOutput:
        if self.channels_last and pixel_values.ndim == 4:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        return ImageClassifierOutput(logits=logits_of(self.model(pixel_values)))

    def no_weight_decay(self) -> set[str]:
        """The wrapped model's ``no_weight_decay()`` names under this wrapper's ``model.`` prefix (read by
        :func:`timm.optim.create_optimizer_v2`)."""
        inner = getattr(self.model, "no_weight_decay", None)
        return {f"model.{name}" for name in inner()} if callable(inner) else set()


def create_model(
    name: str, num_classes: int, in_chans: int | None = None, **kwargs: Any
) -> nn.Module:
    """A timm model with a fresh ``num_classes`` head (load weights into it with
    :func:`hf_dr.models.checkpoints.load_checkpoint`). Any timm architecture name works, the small CPU networks of
    :mod:`hf_dr.models.networks` included; pretrained weights are never downloaded.

    Example:
        >>> model = create_model("hf_dr_cnn_small", num_classes=10, in_chans=1)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if in_chans is not None:  # otherwise the architecture's default (3, or 1 for the 28x28 networks below)
        kwargs["in_chans"] = in_chans
    if ":" not in name and not timm.is_model(name):  # "hf-hub:..." and "local-dir:..." are timm's to resolve
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise InvalidConfigError(f"unknown timm architecture {name!r} (--arch); "
                                 + (f"did you mean {' or '.join(map(repr, close))}? " if close else "")
                                 + f"list them with timm.list_models('*{name.split('.')[0][:8]}*')")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


class ProbabilityEnsemble(nn.Module):
    """Averages the softmax probabilities of ``models`` on the same input; returns their log as "logits".

    ``softmax(ensemble(x))`` is the mean of the members' probabilities, so the ensemble drops in wherever a
    classifier's logits are expected (evaluation, online distillation).

    Args:
        models (`Sequence[torch.nn.Module]`): the members (called with :func:`forward_logits`).
        temperature (`float`, *optional*, defaults to 1.0): every member's logits are divided by it before the
            softmax, as a calibrated teacher's are (:mod:`hf_dr.models.teacher_quality`).
    """

    def __init__(self, models: list[nn.Module], temperature: float = 1.0) -> None:
        super().__init__()
        if not models:
            raise InvalidConfigError("an ensemble needs at least one model")
        self.models = nn.ModuleList(models)
        self.temperature = float(temperature)
        counts = {model_num_classes(m) for m in models} - {None}
        if len(counts) > 1:
            raise ClassCountMismatchError(f"ensemble members predict different class counts: {sorted(counts)}")
        self.num_classes = counts.pop() if counts else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ensemble_logits(forward_logits(m, x).float() / self.temperature for m in self.models)


def ensemble_logits(member_logits: Iterable[torch.Tensor]) -> torch.Tensor:
    """The log of the members' mean probabilities (:func:`hf_dr.models.teacher.mean_probabilities`, the
    teacher's rule), clamped at ``1e-12``: logits whose softmax is the ensemble's prediction.

    Example:
        >>> ensemble_logits([torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 1.0986123]])]).softmax(-1)
        tensor([[0.3750, 0.6250]])
    """
    return mean_probabilities(member_logits).clamp(min=1e-12).log()
