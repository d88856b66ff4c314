"""Small CPU-sized networks registered with timm: ``hf_dr_cnn_tiny``, ``hf_dr_cnn_small``, ``hf_dr_cnn``,
``hf_dr_cnn_fc`` and ``hf_dr_mlp``.

Importing this module registers them, so ``timm.create_model("hf_dr_cnn_small", num_classes=10)``,
``TimmWrapperConfig(architecture="hf_dr_cnn_small")`` and a teacher spec ``hf_dr_cnn_fc=member.safetensors`` build
them; every hf_dr module that builds models by name imports it. They exist to run the demo on a CPU in minutes; their
names are stored in checkpoints, so they stay registered under these names.

Example:
    >>> import timm
    >>> timm.create_model("hf_dr_cnn_small", num_classes=10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import nn

from hf_dr.data.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from hf_dr.errors import InvalidConfigError


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class _Classifier(nn.Module):
    """The part of timm's classifier interface hf_dr and ``TimmWrapper`` use."""

    features: nn.Module
    num_features: int

    def _init_head(self, num_classes: int, drop_rate: float) -> None:
        self.num_classes = num_classes
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self._init_head(num_classes, self.drop.p)


class ConvNet(_Classifier):
    """A VGG-style CNN: stages of ``depth`` conv-BN-ReLU blocks with ``widths`` channels and 2x2 max-pooling between
    stages, then global average pooling (``global_pool="avg"``) or, after a last pooling, the flattened feature map
    (``global_pool="flatten"``, fixed ``img_size``), and a linear head.

    Args:
        widths (`tuple[int, ...]`): channels of each stage.
        depth (`int`, *optional*, defaults to 1): conv blocks per stage.
        num_classes (`int`, *optional*, defaults to 10): classes (0: no head, features only).
        in_chans (`int`, *optional*, defaults to 3): input channels.
        global_pool (`str`, *optional*, defaults to ``"avg"``): ``"avg"`` or ``"flatten"``.
        img_size (`int`, *optional*, defaults to 28): input side, used by ``global_pool="flatten"``.
        drop_rate (`float`, *optional*, defaults to 0.0): dropout before the head.
    """

    def __init__(self, widths: tuple[int, ...], depth: int = 1, num_classes: int = 10, in_chans: int = 3,
                 global_pool: str = "avg", img_size: int | tuple[int, int] = 28, drop_rate: float = 0.0) -> None:
        super().__init__()
        if global_pool not in ("avg", "flatten"):
            raise InvalidConfigError(f"global_pool should be 'avg' or 'flatten', but got {global_pool!r} instead.")
        layers: list[nn.Module] = []
        cin = in_chans
        for stage, width in enumerate(widths):
            if stage:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers += _conv_bn(cin, width)
                cin = width
        if global_pool == "avg":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            self.num_features = cin
        else:
            side = img_size if isinstance(img_size, int) else img_size[0]
            layers += [nn.MaxPool2d(2), nn.Flatten()]
            self.num_features = cin * (side // 2 ** len(widths)) ** 2
        self.features = nn.Sequential(*layers)
        self._init_head(num_classes, drop_rate)


class MLPNet(_Classifier):
    """A multi-layer perceptron on flattened pixels (``input_size`` = in_chans x height x width).

    Args:
        hidden (`tuple[int, ...]`, *optional*, defaults to ``(256,)``): hidden layer widths.
        input_size (`int`, *optional*, defaults to 784): flattened input size per channel (28 x 28).
        num_classes (`int`, *optional*, defaults to 10): classes.
        in_chans (`int`, *optional*, defaults to 3): input channels.
    """

    def __init__(self, hidden: tuple[int, ...] = (256,), input_size: int = 784, num_classes: int = 10,
                 in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        cin = input_size * in_chans
        for width in hidden:
            layers += [nn.Linear(cin, width), nn.ReLU(inplace=True)]
            cin = width
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self._init_head(num_classes, drop_rate)


def _cfg(**overrides: Any) -> dict[str, Any]:
    # Fashion-MNIST-sized defaults (one channel, 28x28, its pixel statistics); any input size works
    return {"num_classes": 10, "input_size": (1, 28, 28), "pool_size": None, "crop_pct": 1.0,
            "interpolation": "bilinear", "mean": FASHION_MNIST_MEAN, "std": FASHION_MNIST_STD,
            "first_conv": "features.0", "classifier": "head", **overrides}


default_cfgs = {name: _cfg(first_conv=first) for name, first in (
    ("hf_dr_cnn_tiny", "features.0"), ("hf_dr_cnn_small", "features.0"), ("hf_dr_cnn", "features.0"),
    ("hf_dr_mlp", "features.1"), ("hf_dr_cnn_fc", "features.0"),
)}
default_cfgs["hf_dr_cnn_fc"]["fixed_input_size"] = True


def _build(cls: type, variant: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    from timm.models import build_model_with_cfg

    return build_model_with_cfg(cls, variant, pretrained, **kwargs)


@register_model
def hf_dr_cnn_tiny(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """~4k parameters: stages of 8, 16, 16 channels."""
    return _build(ConvNet, "hf_dr_cnn_tiny", pretrained, widths=(8, 16, 16), **kwargs)


@register_model
def hf_dr_cnn_small(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """~14k parameters: stages of 16, 32, 32 channels."""
    return _build(ConvNet, "hf_dr_cnn_small", pretrained, widths=(16, 32, 32), **kwargs)


@register_model
def hf_dr_cnn(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """~0.3M parameters: stages of 32, 64, 128 channels, two blocks each (a teacher for 28x28 images)."""
    return _build(ConvNet, "hf_dr_cnn", pretrained, widths=(32, 64, 128), depth=2, **kwargs)


@register_model
def hf_dr_cnn_fc(pretrained: bool = False, **kwargs: Any) -> ConvNet:
    """~50k parameters: stages of 32 and 64 channels, each pooled, and a linear head on the flattened 7x7 map (the
    demo's teacher; 28x28 inputs)."""
    return _build(ConvNet, "hf_dr_cnn_fc", pretrained, widths=(32, 64), global_pool="flatten", **kwargs)


@register_model
def hf_dr_mlp(pretrained: bool = False, **kwargs: Any) -> MLPNet:
    """One hidden layer of 256 units on 28x28 inputs."""
    return _build(MLPNet, "hf_dr_mlp", pretrained, hidden=(256,), **kwargs)
