"""Typed parameter fields: how one named augmentation parameter is stored in Arrow and read back.

Fractions are stored as ``uint16`` in units of 1/65535. Sampling snaps every fraction to that grid
(:func:`snap_fraction`), so the value a teacher saw is exactly the value a student replays after a round
trip through Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np

FRACTION_SCALE = 65535


def snap_fraction(value: float) -> float:
    """Rounds a fraction in ``[0, 1]`` to the stored grid of 1/65535.

    Example:
        >>> snap_fraction(0.5) == round(0.5 * 65535) / 65535
        True
    """
    return min(FRACTION_SCALE, max(0, int(round(value * FRACTION_SCALE)))) / FRACTION_SCALE


@dataclass(frozen=True)
class Field:
    """One stored parameter.

    Args:
        dtype (`str`): the Arrow value type (``"uint16"``, ``"bool"``, ``"int8"``, ``"uint8"``, ``"string"``).
        kind (`str`, *optional*, defaults to ``"plain"``): ``"fraction"`` stores a float in ``[0, 1]`` as
            ``uint16``; ``"plain"`` stores the value as is.
        length (`int`, *optional*): a fixed-length list of values instead of a scalar.
    """

    dtype: str
    kind: str = "plain"
    length: int | None = None

    def feature(self) -> datasets.Value | datasets.List:
        value = datasets.Value(self.dtype)
        return value if self.length is None else datasets.List(value, length=self.length)

    def encode(self, value: Any) -> Any:
        if self.length is not None:
            return [self._encode_one(v) for v in value]
        return self._encode_one(value)

    def decode(self, stored: Any) -> Any:
        if self.length is not None:
            return [self._decode_one(v) for v in stored]
        return self._decode_one(stored)

    def decode_array(self, stored: Any) -> list[Any]:
        """:meth:`decode` of many stored values at once, as Python values equal to it: ``stored`` is a NumPy array
        of them (``[n, length]`` for a list field) or, for text, a list.

        Example:
            >>> FRACTION.decode_array(np.array([0, 65535], np.uint16)) == [FRACTION.decode(0), FRACTION.decode(65535)]
            True
        """
        if self.dtype == "string":
            return list(stored)
        if self.kind == "fraction":  # int / int: the one correctly rounded double, as Python's true division
            return (np.asarray(stored, dtype=np.int64) / FRACTION_SCALE).tolist()
        return np.asarray(stored).astype(bool if self.dtype == "bool" else np.int64).tolist()

    def check(self, value: Any) -> bool:
        """Whether ``value`` has this field's shape (list length and scalar type)."""
        if self.length is not None:
            return isinstance(value, (list, tuple)) and len(value) == self.length and all(map(self._ok, value))
        return self._ok(value)

    def _ok(self, value: Any) -> bool:
        if self.kind == "fraction":
            return isinstance(value, float) and 0.0 <= value <= 1.0
        if self.dtype == "string":
            return isinstance(value, str)
        if self.dtype == "bool":
            return isinstance(value, bool)
        return isinstance(value, int) and not isinstance(value, bool)

    def _encode_one(self, value: Any) -> Any:
        return int(round(value * FRACTION_SCALE)) if self.kind == "fraction" else value

    def _decode_one(self, stored: Any) -> Any:
        if self.kind == "fraction":
            return int(stored) / FRACTION_SCALE
        if self.dtype == "bool":
            return bool(stored)
        return stored if self.dtype == "string" else int(stored)


FRACTION = Field("uint16", kind="fraction")
BOOL = Field("bool")
