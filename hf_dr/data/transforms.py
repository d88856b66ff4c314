"""``set_transform`` hooks for the other two ways of reading images: training with on-the-fly augmentation and hard
labels (the baseline that reinforced data is compared with) and evaluation.

Both return ``pixel_values`` (normalised ``float32 [C, H, W]``) and integer ``labels``, the batch layout of
:class:`hf_dr.ReinforcedTransform`, so one training loop serves plain, reinforced and online-distillation runs.
With ``image_mode`` ("RGB" or "L") every image is converted to it first
(:func:`hf_dr.augment.functional.convert_mode`), so a dataset mixing grayscale, RGB, CMYK, palette or 16-bit images
gives batches of one shape; without it grayscale stays one channel and other modes become RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms.v2 import functional as TF

import hf_dr.augment.functional as K
from hf_dr.augment.functional import IMAGENET_MEAN, IMAGENET_STD
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.registry import as_policy
from hf_dr.augment.seeding import generator_for
from hf_dr.data.columns import check_columns
from hf_dr.data.epochs import EpochHook
from hf_dr.data.replay import ATTACH_FIX
from hf_dr.data.schema import KEY_COLUMN
from hf_dr.data.view_options import check_channels, check_seed, view_options
from hf_dr.errors import InvalidConfigError

_PLAIN_STREAM = 1  # separates the plain baseline's draws from any other use of (seed, epoch, key)


class _ImageTransform(EpochHook):
    def __init__(self, size: int | Sequence[int], mean: Sequence[float], std: Sequence[float], image_column: str,
                 label_column: str, image_mode: str | None = None, data_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.image_mode = K.check_image_mode(image_mode)
        self.size, self.mean, self.std, channels = view_options(size, mean, std, data_config)
        check_channels(channels, self.image_mode, "image_mode gives")
        self.image_column, self.label_column = image_column, label_column

    @property
    def column_options(self) -> dict[str, str]:
        """The columns the hook reads, by the option naming them."""
        return {"image_column": self.image_column, "label_column": self.label_column}

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[torch.Tensor] | list[int]]:
        check_columns(batch, role="batch", fix=ATTACH_FIX, **self.column_options)
        rows = range(len(batch[self.image_column]))
        pixels = [K.normalize(self._image(row, batch), self.mean, self.std) for row in rows]
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
        image_mode (`str`, *optional*): ``"RGB"`` or ``"L"``, the mode every image is converted to (see the module
            docstring); use the reinforcement run's for a like-for-like comparison.

    Example:
        >>> from hf_dr import AugmentTransform
        >>> from hf_dr.data.bundled import load_bundled
        >>> digits = load_bundled("digits").select(range(8))
        >>> train = AugmentTransform("rrc", size=28, mean=(0.286,), std=(0.353,)).attach(digits)
        >>> train[0]["pixel_values"].shape, train[0]["labels"]
        (torch.Size([1, 28, 28]), 0)
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
        image_mode: str | None = None,
    ) -> None:
        super().__init__(size, mean, std, image_column, label_column, image_mode)
        self.policy = as_policy(policy)
        if self.policy.needs_partner:
            raise InvalidConfigError(
                f"policy '{self.policy.name}' mixes samples, which needs soft labels; use a policy without mixing "
                "for hard-label training"
            )
        self.seed = check_seed(seed)
        self.key_column = key_column

    @property
    def column_options(self) -> dict[str, str]:
        """The columns the hook reads, by the option naming them."""
        return {**super().column_options, "key_column": self.key_column}

    def _image(self, row: int, batch: dict[str, list[Any]]) -> torch.Tensor:
        image = K.to_pil(batch[self.image_column][row], self.image_mode)
        generator = generator_for(self.seed, self.epoch, batch[self.key_column][row], _PLAIN_STREAM)
        params = self.policy.sample_params((image.height, image.width), generator)
        return self.policy.apply(image, params, self.size)


class EvalTransform(_ImageTransform):
    """Evaluation preprocessing: resize the whole image to ``size`` and normalise; integer labels.

    Args:
        size (`int` or `tuple[int, int]`, *optional*, defaults to 224): output resolution.
        mean, std (`tuple[float, ...]`, *optional*): normalisation, ImageNet's by default.
        data_config (`dict`, *optional*): a timm data config (``input_size``, ``mean``, ``std``) overriding the above.
        image_mode (`str`, *optional*): ``"RGB"`` or ``"L"``, the mode every image is converted to (see the module
            docstring): the training data's.

    Example:
        >>> from PIL import Image
        >>> transform = EvalTransform(size=8, image_mode="RGB")
        >>> batch = transform({"image": [Image.new("L", (16, 16)), Image.new("CMYK", (16, 16))], "label": [0, 1]})
        >>> [tuple(p.shape) for p in batch["pixel_values"]]
        [(3, 8, 8), (3, 8, 8)]
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        data_config: dict[str, Any] | None = None,
        image_column: str = "image",
        label_column: str = "label",
        image_mode: str | None = None,
    ) -> None:
        super().__init__(size, mean, std, image_column, label_column, image_mode, data_config)

    def _image(self, row: int, batch: dict[str, list[Any]]) -> torch.Tensor:
        image = K.to_tensor(batch[self.image_column][row], self.image_mode)
        if tuple(image.shape[-2:]) == self.size:
            return image
        return TF.resize(image, list(self.size), antialias=True)

