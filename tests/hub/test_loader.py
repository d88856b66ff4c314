"""``create_reinforced_loader`` in timm's own training pieces (issue 24): a pushed reinforced dataset read by name,
map-style and streamed, 2 persistent workers, 2 epochs, through timm's ``ClassificationTask`` with
``SoftTargetCrossEntropy``: the stored soft labels reach the loss, each epoch replays exactly the stored views of that
epoch (compared with the run's own replay, order-free), and epoch 2's views are not epoch 1's."""

from __future__ import annotations

import hashlib

import pytest
import timm
import torch
from timm.loss import SoftTargetCrossEntropy
from timm.task import ClassificationTask

from hf_dr import ReinforcedTransform, create_reinforced_loader
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.loading import load_run_records
from tests.utils_hub import (
    NUM_ROWS,
    POLICY,
    SIZE,
    Published,
    published,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
)

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


def _fingerprints(inputs: torch.Tensor, targets: torch.Tensor) -> list[str]:
    """One hash per sample of its pixels and its target: compares epochs whatever the shuffle and worker order."""
    return [hashlib.sha256(x.numpy().tobytes() + t.numpy().tobytes()).hexdigest() for x, t in zip(inputs, targets,
                                                                                                  strict=True)]


def _reference(state: Published, epoch: int) -> list[str]:
    """The run's own replay of every source image at ``epoch``: what any loader of the pushed dataset must give."""
    transform = ReinforcedTransform(load_run_records(state.run_dir, keep_in_memory=True), POLICY, size=SIZE,
                                    images=state.source)
    transform.set_epoch(epoch)
    rows = [transform.replay(row["image"], row["key"]) for row in state.source]
    return sorted(_fingerprints(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])))


class RecordingLoss(SoftTargetCrossEntropy):
    """timm's soft-target loss, keeping what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.targets.append(target.detach().clone())
        return super().forward(x, target)


@pytest.mark.parametrize("streaming", [False, True], ids=["map-style", "streamed"])
def test_timm_task_trains_on_the_stored_views_of_each_epoch(state, streaming):
    loader = create_reinforced_loader(state.metadata_only, input_size=(3, SIZE, SIZE), batch_size=8, num_workers=2,
                                      streaming=streaming, drop_last=False, cache_dir=state.cache_dir)
    model = timm.create_model("test_resnet", num_classes=10, in_chans=3)
    criterion = RecordingLoss()
    task = ClassificationTask(model, criterion=criterion, device=torch.device("cpu"), verbose=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []
    for epoch in range(2):
        loader.dataset.set_epoch(epoch)  # what timm's train.py does with a dataset that has set_epoch
        fingerprints = []
        for inputs, targets in loader:
            loss = task(inputs, targets)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            fingerprints += _fingerprints(inputs, targets)
        assert sorted(fingerprints) == _reference(state, epoch), f"epoch {epoch} did not replay its stored views"
        seen.append(set(fingerprints))
    assert len(seen[0] & seen[1]) < NUM_ROWS // 2  # epoch 2 replays other stored views
    targets = torch.cat(criterion.targets)
    assert targets.shape == (2 * NUM_ROWS, 10) and torch.is_floating_point(targets)
    assert torch.allclose(targets.sum(dim=1), torch.ones(len(targets)), atol=1e-3)


def test_a_loop_that_never_sets_the_epoch_still_moves_on(state):
    loader = create_reinforced_loader(state.metadata_only, input_size=SIZE, batch_size=16, num_workers=0,
                                      drop_last=False, cache_dir=state.cache_dir)
    first = sorted(f for inputs, targets in loader for f in _fingerprints(inputs, targets))
    second = sorted(f for inputs, targets in loader for f in _fingerprints(inputs, targets))
    assert first == _reference(state, 0) and second == _reference(state, 1)
    loader.set_epoch(0)  # an explicit epoch wins
    assert sorted(f for inputs, targets in loader for f in _fingerprints(inputs, targets)) == first


def test_the_loader_refuses_what_it_cannot_honour(state):
    with pytest.raises(InvalidConfigError, match="process group"):
        create_reinforced_loader(state.metadata_only, input_size=SIZE, distributed=True, cache_dir=state.cache_dir)
    with pytest.raises(InvalidConfigError, match="no reinforced transform"):
        create_reinforced_loader(state.source, input_size=SIZE)
