"""Checkpoints of :func:`hf_dr.fit` that resume exactly: the model, optimizer, schedule, EMA and RNG states
(``accelerate``'s ``save_state``) plus where the run stood (optimizer step, epoch, batches of that epoch), and a
shuffle that is a function of (seed, epoch) alone, so that a resumed run sees the batches, stored views and updates an
uninterrupted one would.

A checkpoint is the folder ``{output_dir}/checkpoints/step-{N}``; its ``fit_state.json`` is written last, so a folder
without it (a run killed while saving) is ignored. The newest :data:`KEEP` complete checkpoints are kept.

Imports: ``hf_dr.files``, ``hf_dr.errors``, ``hf_dr.data.description`` and ``torch``.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from hf_dr.data.description import differences
from hf_dr.errors import ConfigConflictError
from hf_dr.files import read_json, write_json_atomic

logger = logging.getLogger(__name__)

STATE_FILE = "fit_state.json"
KEEP = 2
_STEP = re.compile(r"^step-(\d+)$")


class EpochShuffle(torch.utils.data.Sampler):
    """A permutation of ``range(num_rows)`` drawn from ``(seed, epoch)`` only (:meth:`set_epoch`): the same for an
    uninterrupted and a resumed run, and on every process.

    Example:
        >>> sampler = EpochShuffle(5, seed=0)
        >>> first = list(sampler); sampler.set_epoch(1)
        >>> sorted(first) == sorted(sampler) == list(range(5)) and first != list(sampler)
        True
    """

    def __init__(self, num_rows: int, seed: int) -> None:
        self.num_rows, self.seed, self.epoch = num_rows, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_rows, generator=generator).tolist())


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete checkpoints under ``output_dir``, oldest first."""
    folder = Path(output_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in folder.glob("step-*") if (m := _STEP.match(p.name))]
    return [p for _, p in sorted(found) if (p / STATE_FILE).exists()]


def save_checkpoint_state(accelerator: Any, output_dir: str | Path, state: dict[str, Any]) -> Path:
    """Saves the prepared objects' states and ``state`` (where the run stands) as ``step-{state['step']}``; keeps the
    newest :data:`KEEP`. Every process calls it; the main process writes the state file and removes old ones."""
    folder = Path(output_dir) / "checkpoints" / f"step-{state['step']}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(folder / STATE_FILE, state)
        for old in checkpoints(output_dir)[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def restore_checkpoint(accelerator: Any, output_dir: str | Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Restores the prepared objects from the newest checkpoint under ``output_dir`` and returns where the run stood
    (None without a checkpoint). A checkpoint written with other ``settings`` is refused
    (:class:`~hf_dr.errors.ConfigConflictError`): resuming it would not continue the same run."""
    found = checkpoints(output_dir)
    if not found:
        return None
    state = read_json(found[-1] / STATE_FILE)
    changed = differences(state.get("config"), settings)
    if changed:
        raise ConfigConflictError(
            f"{found[-1]} was written with other training settings ({'; '.join(changed)}): resuming would not be the "
            "run it started. Pass the same settings, or another output folder to start afresh.")
    accelerator.load_state(str(found[-1]))
    logger.info("resuming from %s: step %d, epoch %d, %d batches into it", found[-1], state["step"], state["epoch"],
                state["batches"])
    return state
