"""The plan of a reinforcement run: fixed row ranges (shards, the unit of resume and of the files written) cut into
chunks of ``batch_size`` views (the unit of teacher work), independent of the number of processes or workers.

Shard ``i`` holds rows ``[i * shard_size, (i + 1) * shard_size)``; process ``r`` of ``W`` takes shards
``r, r + W, ...``.
A shard's work is the row-major list of its views, view ``v`` being reinforcement ``v % N`` of row
``shard.start + v // N``. :class:`ChunkPlan` computes chunks on demand, so a plan takes memory per shard, not per view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SHARDS_DIR = "shards"


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of the source dataset, written to :attr:`path` (relative to the output folder)."""

    index: int
    start: int
    stop: int

    @property
    def path(self) -> str:
        return f"{SHARDS_DIR}/reinforcements-{self.index:05d}.parquet"

    @property
    def num_rows(self) -> int:
        return self.stop - self.start


def plan_shards(num_rows: int, shard_size: int) -> list[Shard]:
    """Fixed row ranges of ``shard_size`` rows, independent of the number of processes.

    Example:
        >>> [(s.start, s.stop) for s in plan_shards(5, 2)]
        [(0, 2), (2, 4), (4, 5)]
    """
    starts = range(0, num_rows, shard_size)
    return [Shard(i, start, min(start + shard_size, num_rows)) for i, start in enumerate(starts)]


@dataclass(frozen=True)
class Chunk:
    """Views ``[start, stop)`` of a shard (row-major over its rows and ``num_samples`` reinforcements)."""

    shard: Shard
    start: int
    stop: int
    num_samples: int

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def last(self) -> bool:
        """Whether this chunk completes its shard."""
        return self.stop == self.shard.num_rows * self.num_samples

    def views(self) -> list[tuple[int, int]]:
        """The ``(row, reinforcement index)`` of each view."""
        return [(self.shard.start + v // self.num_samples, v % self.num_samples) for v in range(self.start, self.stop)]


class ChunkPlan(Sequence[Chunk]):
    """The shards' views cut into chunks of ``batch_size`` (a chunk never spans two shards), computed on demand.

    Example:
        >>> plan = ChunkPlan([Shard(0, 0, 3)], num_samples=2, batch_size=4)
        >>> [c.views() for c in plan]
        [[(0, 0), (0, 1), (1, 0), (1, 1)], [(2, 0), (2, 1)]]
    """

    def __init__(self, shards: Sequence[Shard], num_samples: int, batch_size: int) -> None:
        self.shards, self.num_samples, self.batch_size = list(shards), num_samples, batch_size
        counts = [-(-s.num_rows * num_samples // batch_size) for s in self.shards]
        self._offsets = np.cumsum([0, *counts])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int) -> Chunk:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self._offsets, i, side="right")) - 1
        shard, start = self.shards[k], (i - int(self._offsets[k])) * self.batch_size
        return Chunk(shard, start, min(start + self.batch_size, shard.num_rows * self.num_samples), self.num_samples)
