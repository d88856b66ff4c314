"""``set_transform`` hooks for the other two ways of reading images: training with on-the-fly augmentation and hard
labels (the baseline that reinforced data is compared with) and evaluation.

Both return ``pixel_values`` (normalised ``float32 [C, H, W]``) and integer ``labels``, the batch layout of
:class:`hf_dr.ReinforcedTransform`, so one training loop serves plain, reinforced and online-distillation runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.seeding import generator_for
from hf_dr.data.replay import IMAGENET_MEAN, IMAGENET_STD, _as_policy
from hf_dr.data.schema import KEY_COLUMN
from hf_dr.errors import InvalidConfigError, MissingColumnError

_PLAIN_STREAM = 1  # separates the plain baseline's draws from any other use of (seed, epoch, key)


class _ImageTransform:
    def __init__(self, size: int | Sequence[int], mean: Sequence[float], std: Sequence[float], image_column: str,
                 label_column: str) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_column, self.label_column = image_column, label_column
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def input_columns(self) -> list[str]:
        return [self.image_column, self.label_column]

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Selects the augmentations of ``epoch``; reaches persistent DataLoader workers through shared memory."""
        self._epoch.fill_(int(epoch))

    def __deepcopy__(self, memo: dict) -> _ImageTransform:
        clone = copy.copy(self)
        memo[id(self)] = clone
        return clone

    def attach(self, dataset: datasets.Dataset) -> datasets.Dataset:
        """Sets this transform on ``dataset`` (in place), formatting only the columns it reads; returns it."""
        missing = [c for c in self.input_columns if c not in dataset.column_names]
        if missing:
            raise MissingColumnError(f"the dataset has no column(s) {missing}; it has {dataset.column_names}")
        dataset.set_transform(self, columns=self.input_columns)
        return dataset

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[torch.Tensor] | list[int]]:
        missing = [c for c in self.input_columns if c not in batch]
        if missing:
            raise MissingColumnError(f"the batch has no column(s) {missing} (got {sorted(batch)}); use .attach(ds)")
        pixels = [normalize(self._image(i, batch), self.mean, self.std) for i in range(len(batch[self.image_column]))]
        return {"pixel_values": pixels, "labels": [int(label) for label in batch[self.label_column]]}

    def _image(self, row: int, batch: dict[str, list[Any]]) -> torch.Tensor:
        raise NotImplementedError


class AugmentTransform(_ImageTransform):
    """On-the-fly augmentation with hard labels: the standard training that reinforced data replaces.

    Each sample draws fresh parameters from a generator seeded by ``(seed, epoch, key)``, so the run does not depend
    on the number of DataLoader workers. Use the same policy as the reinforcement for a like-for-like comparison.

    Args:
        policy (`str`, `dict` or `AugmentationPolicy`): augmentation policy without mixing (e.g. ``"rrc"``).
        size (`int` or `tuple[int, int]`, *optional*, defaults to 224): output resolution.
        mean, std (`tuple[float, ...]`, *optional*): normalisation, ImageNet's by default.
        seed (`int`, *optional*, defaults to 0): seed of the augmentation draws.

    Example:
        >>> from hf_dr import AugmentTransform
        >>> AugmentTransform("rrc", size=28, mean=(0.286,), std=(0.353,)).attach(train)  # doctest: +SKIP
        >>> train[0]["pixel_values"].shape, train[0]["labels"]  # doctest: +SKIP
        (torch.Size([1, 28, 28]), 9)
    """

    def __init__(
        self,
        policy: str | dict[str, Any] | AugmentationPolicy,
        size: int | Sequence[int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        seed: int = 0,
        image_column: str = "image",
        label_column: str = "label",
        key_column: str = KEY_COLUMN,
    ) -> None:
        super().__init__(size, mean, std, image_column, label_column)
        self.policy = _as_policy(policy)
        if self.policy.needs_partner:
            raise InvalidConfigError(
                f"policy '{self.policy.name}' mixes samples, which needs soft labels; use a policy without mixing "
                "for hard-label training"
            )
        self.seed = int(seed)
        self.key_column = key_column

    @property
    def input_columns(self) -> list[str]:
        return [self.image_column, self.label_column, self.key_column]

    def _image(self, row: int, batch: dict[str, list[Any]]) -> torch.Tensor:
        image = batch[self.image_column][row]
        generator = generator_for(self.seed, self.epoch, batch[self.key_column][row], _PLAIN_STREAM)
        params = self.policy.sample_params(_height_width(image), generator)
        return uint8_tensor(self.policy.apply(image, params, self.size))


class EvalTransform(_ImageTransform):
    """Evaluation preprocessing: resize the whole image to ``size`` and normalise; integer labels.

    Args:
        size (`int` or `tuple[int, int]`, *optional*, defaults to 224): output resolution.
        mean, std (`tuple[float, ...]`, *optional*): normalisation, ImageNet's by default.
        data_config (`dict`, *optional*): a timm data config (``input_size``, ``mean``, ``std``) overriding the above.
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        data_config: dict[str, Any] | None = None,
        image_column: str = "image",
        label_column: str = "label",
    ) -> None:
        if data_config is not None:
            size, mean, std = data_config["input_size"][1:], data_config["mean"], data_config["std"]
        super().__init__(size, mean, std, image_column, label_column)

    def _image(self, row: int, batch: dict[str, list[Any]]) -> torch.Tensor:
        image = uint8_tensor(batch[self.image_column][row])
        if tuple(image.shape[-2:]) == self.size:
            return image
        return TF.resize(image, list(self.size), antialias=True)


def uint8_tensor(image: Any) -> torch.Tensor:
    """A ``uint8 [C, H, W]`` tensor from a Pillow image (grayscale kept, other modes to RGB), array or tensor."""
    if isinstance(image, Image.Image):
        return TF.pil_to_tensor(image if image.mode in ("L", "RGB") else image.convert("RGB"))
    if isinstance(image, np.ndarray):
        array = image if image.ndim == 3 else image[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return image


def normalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8 [C, H, W]`` to normalised ``float32``; RGB statistics on a grayscale image use their average."""
    channels = image.shape[0]
    mean_t, std_t = (torch.tensor(_per_channel(v, channels), dtype=torch.float32).view(-1, 1, 1) for v in (mean, std))
    return (image.float() / 255.0 - mean_t) / std_t


def _per_channel(values: Sequence[float], channels: int) -> list[float]:
    values = list(values)
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if channels == 1:
        return [sum(values) / len(values)]
    raise InvalidConfigError(f"expected 1 or {channels} per-channel statistics, got {len(values)}")


def _height_width(image: Any) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.height, image.width
    return tuple(uint8_tensor(image).shape[-2:])
