"""Checkpoints of ``hf_dr.fit`` (hf_dr.train.resume): only complete ones count, in step order, the newest two kept;
one written with other settings is refused before anything is loaded; the shuffle depends on (seed, epoch) alone.
The whole kill-and-resume run is in test_loop.py."""

from __future__ import annotations

import pytest
import torch

from hf_dr.errors import ConfigConflictError
from hf_dr.train.resume import STATE_FILE, EpochShuffle, checkpoints, restore_checkpoint, save_checkpoint_state

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_shuffle_is_a_function_of_seed_and_epoch_only():
    one, other = EpochShuffle(50, seed=3), EpochShuffle(50, seed=3)
    one.set_epoch(4)
    other.set_epoch(1)
    list(other)  # an instance that already shuffled other epochs (a resumed run's) draws the same order
    other.set_epoch(4)
    assert list(one) == list(other) and sorted(one) == list(range(50)) and len(one) == 50
    orders = set()
    for seed, epoch in [(3, 4), (3, 5), (4, 4)]:
        sampler = EpochShuffle(50, seed=seed)
        sampler.set_epoch(epoch)
        orders.add(tuple(sampler))
    assert len(orders) == 3


def test_checkpoints_are_the_complete_ones_in_step_order(tmp_path):
    """``step-10`` comes after ``step-9`` (not by name), and a folder without its state file (a run killed while
    saving) is not a checkpoint."""
    for step, complete in [(10, True), (9, True), (12, False), (2, True)]:
        folder = tmp_path / "checkpoints" / f"step-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / STATE_FILE).write_text("{}")
    (tmp_path / "checkpoints" / "step-x").mkdir()
    assert [p.name for p in checkpoints(tmp_path)] == ["step-2", "step-9", "step-10"]
    assert checkpoints(tmp_path / "elsewhere") == []


def test_saving_keeps_the_newest_two_and_restoring_reads_the_newest(tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(3, 2))
    settings = {"lr": 0.1, "batch_size": 8}
    saved = {}
    for step in (4, 8, 12):
        with torch.no_grad():
            model.weight.fill_(step)
        saved[step] = save_checkpoint_state(accelerator, tmp_path, {"step": step, "epoch": step // 6,
                                                                    "batches": step % 6, "config": settings})
    assert [p.name for p in checkpoints(tmp_path)] == ["step-8", "step-12"]
    with torch.no_grad():
        model.weight.zero_()
    state = restore_checkpoint(accelerator, tmp_path, settings)
    assert (state["step"], state["epoch"], state["batches"]) == (12, 2, 0)
    assert torch.all(model.weight == 12)
    assert restore_checkpoint(accelerator, tmp_path / "fresh", settings) is None


def test_a_checkpoint_of_other_settings_is_refused_naming_them(tmp_path):
    folder = tmp_path / "checkpoints" / "step-4"
    folder.mkdir(parents=True)  # no accelerate state at all: the refusal comes before any loading
    (folder / STATE_FILE).write_text('{"step": 4, "epoch": 0, "batches": 4, "config": {"lr": 0.1, "epochs": 3}}')
    with pytest.raises(ConfigConflictError, match="lr: 0.1 -> 0.2") as info:
        restore_checkpoint(object(), tmp_path, {"lr": 0.2, "epochs": 3})
    assert "step-4" in str(info.value) and "epochs" not in str(info.value)
