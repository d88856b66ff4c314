"""The contract every augmentation op follows: declared fields, a sampler that draws every random choice
from a generator passed in, and a pure ``apply``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from hf_dr.augment.fields import Field
from hf_dr.errors import InvalidConfigError, ParamsMismatchError
from hf_dr.files import to_json_value

ImageSize = tuple[int, int]  # (height, width)


class AugmentationOp(ABC):
    """One step of a policy. Subclasses declare ``name`` and ``fields`` and implement the three methods."""

    name: ClassVar[str]
    fields: ClassVar[dict[str, Field]]

    @abstractmethod
    def sample(self, image_size: ImageSize, generator: np.random.Generator) -> dict[str, Any]:
        """Draws every random choice of this op for an image of ``image_size`` (height, width)."""

    @abstractmethod
    def apply(self, image: Image.Image, params: dict[str, Any]) -> Image.Image:
        """Performs the op with ``params`` on an "L" or "RGB" Pillow image; never modifies ``image``."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Parameters under which this op leaves the image as it is (used to fill unused records)."""

    def config(self) -> dict[str, Any]:
        """The op's constructor arguments, JSON-serialisable (saved with every reinforcement run)."""
        return {k: to_json_value(v) for k, v in vars(self).items() if not k.startswith("_")}

    def check(self, params: Any) -> None:
        """Raises :class:`ParamsMismatchError` unless ``params`` has exactly this op's fields."""
        if not isinstance(params, dict) or set(params) != set(self.fields):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ParamsMismatchError(f"'{self.name}' params need fields {sorted(self.fields)}, got {got}")
        bad = [k for k, f in self.fields.items() if not f.check(params[k])]
        if bad:
            raise ParamsMismatchError(f"'{self.name}' params have invalid values for {bad}: {params}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def check_probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise InvalidConfigError(f"{name} should be a probability in [0, 1], but got {value} instead.")
    return float(value)


def check_range(name: str, value: tuple[float, float], low: float = 0.0) -> tuple[float, float]:
    lo, hi = value
    if not low <= lo <= hi:
        raise InvalidConfigError(f"{name} should be an increasing pair >= {low}, but got {value} instead.")
    return float(lo), float(hi)
