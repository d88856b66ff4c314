"""Curricula over the stored reinforcements by the teacher's confidence (paper App. C.4/C.5).

Each sample's N records are ordered from easy to hard by the teacher's confidence (its largest stored probability,
highest first). At each epoch the replay draws uniformly among the records whose rank lies in a window ``[a, b)`` of
that order (fractions of N); the window moves from ``start`` to ``end`` along a cosine over the training's epochs.
``"easy->all"`` starts on the 10% most confident views and ends on all of them, ``"hard->all"`` starts on the 10%
least confident, ``"all->all"`` is the plain replay; the nine combinations of the paper's Table 16 are named in
:data:`CURRICULA`.

Examples are in :class:`Curriculum`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hf_dr.errors import InvalidConfigError

WINDOWS = {"easy": (0.0, 0.1), "all": (0.0, 1.0), "hard": (0.9, 1.0)}
CURRICULA = tuple(f"{a}->{b}" for a in WINDOWS for b in WINDOWS)


@dataclass(frozen=True)
class Curriculum:
    """A window over each sample's records ordered easy to hard, moving from ``start`` to ``end`` (cosine).

    Args:
        start, end (`tuple[float, float]`): the windows ``(a, b)`` of the first and last epoch, fractions of N with
            ``0 <= a < b <= 1``.
        num_epochs (`int`): the training's epochs (the window reaches ``end`` at the last one).
        name (`str`, *optional*): the name it was made from (:meth:`named`).

    Example (over 11 epochs, from the 10% most confident of each sample's records to all of them):
        >>> curriculum = Curriculum.named("easy->all", num_epochs=11)
        >>> curriculum.window(0), curriculum.window(5), curriculum.window(10)
        ((0.0, 0.1), (0.0, 0.55), (0.0, 1.0))
        >>> curriculum.ranks(0, 20), curriculum.ranks(10, 20)  # of N=20 records ordered easy to hard
        ((0, 2), (0, 20))
    """

    start: tuple[float, float]
    end: tuple[float, float]
    num_epochs: int
    name: str | None = None

    def __post_init__(self) -> None:
        for label, (a, b) in (("start", self.start), ("end", self.end)):
            if not 0.0 <= a < b <= 1.0:
                raise InvalidConfigError(f"curriculum {label} window should satisfy 0 <= a < b <= 1, but got {(a, b)}")
        if self.num_epochs < 1:
            raise InvalidConfigError(f"num_epochs should be positive, but got {self.num_epochs}")

    @classmethod
    def named(cls, name: str, num_epochs: int) -> Curriculum:
        """The curriculum ``"FROM->TO"`` with FROM and TO each ``easy``, ``all`` or ``hard`` (see :data:`WINDOWS`)."""
        if name not in CURRICULA:
            raise InvalidConfigError(f"unknown curriculum {name!r}; valid ones are {list(CURRICULA)}")
        first, last = name.split("->")
        return cls(WINDOWS[first], WINDOWS[last], num_epochs, name)

    def window(self, epoch: int) -> tuple[float, float]:
        """The window ``(a, b)`` of ``epoch``: ``start`` at epoch 0, ``end`` at the last, a cosine in between."""
        progress = min(max(epoch, 0), self.num_epochs - 1) / max(self.num_epochs - 1, 1)
        weight = 0.5 * (1 - math.cos(math.pi * progress))
        a = self.start[0] + weight * (self.end[0] - self.start[0])
        b = self.start[1] + weight * (self.end[1] - self.start[1])
        return round(a, 10), round(b, 10)

    def ranks(self, epoch: int, count: int) -> tuple[int, int]:
        """The ranks ``[first, stop)`` (of ``count`` records ordered easy to hard) drawn from in ``epoch``: at least
        one record."""
        a, b = self.window(epoch)
        first = min(int(math.floor(a * count)), count - 1)
        return first, max(first + 1, int(math.ceil(b * count)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def easy_to_hard(confidences: list[float]) -> list[int]:
    """The record indices ordered from the most to the least confident (ties by index).

    Example:
        >>> easy_to_hard([0.5, 0.9, 0.7])
        [1, 2, 0]
    """
    return sorted(range(len(confidences)), key=lambda i: (-confidences[i], i))
