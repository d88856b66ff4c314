"""``hf_dr.set_epoch`` on the wrappers a training script puts around a map-style reinforced dataset (Subset, shard,
select, shuffle, split_dataset_by_node, persistent DataLoader workers) reaches the ``set_transform`` hook: each row
replays the record of the epoch set on the wrapper. Epochs that are not small whole numbers are refused."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader, Subset

from hf_dr import AugmentTransform
from hf_dr.data.epochs import MAX_EPOCH, check_epoch, set_epoch, transform_of
from hf_dr.errors import InvalidConfigError
from tests.training_utils import reinforced_digits, reinforced_transform

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_ROWS = 16


@pytest.fixture(scope="module")
def rows() -> datasets.Dataset:
    return reinforced_digits(NUM_ROWS)


def _attached(rows: datasets.Dataset) -> datasets.Dataset:
    """The rows with a fresh reinforced hook (its own epoch counter)."""
    dataset = rows.with_format(None)
    return reinforced_transform(dataset).attach(dataset)


def _keys_of(wrapped) -> list[str]:
    """The keys of the rows ``wrapped`` yields, read without the hook."""
    if isinstance(wrapped, Subset):
        return [_keys_of(wrapped.dataset)[i] for i in wrapped.indices]
    return wrapped.with_format(None)["key"]


# each wrapper keeps a set of rows of the dataset; set_epoch is called on the wrapper, never on the dataset
WRAPPERS = {
    "Subset": lambda d: Subset(d, [3, 0, 9, 12]),
    "shard": lambda d: d.shard(num_shards=3, index=1),
    "select": lambda d: d.select([5, 1, 14]),
    "shuffle": lambda d: d.shuffle(seed=0),
    "split_dataset_by_node": lambda d: split_dataset_by_node(d, rank=1, world_size=2),
    "Subset-of-shuffle-of-shard": lambda d: Subset(d.shard(num_shards=2, index=0, contiguous=False).shuffle(seed=1),
                                                   [0, 2, 5]),
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_set_epoch_on_a_wrapper_replays_that_epochs_records(wrapper, rows):
    """Every row of the wrapped dataset equals the row of the same key in a dataset whose own hook is at that epoch;
    two epochs give other views."""
    wrapped = WRAPPERS[wrapper](_attached(rows))
    reference = _attached(rows)
    keys, all_keys = _keys_of(wrapped), reference.with_format(None)["key"]
    views = {}
    for epoch in (1, 6):
        set_epoch(wrapped, epoch)
        set_epoch(reference, epoch)
        assert transform_of(wrapped).epoch == epoch
        views[epoch] = [wrapped[i]["pixel_values"] for i in range(len(keys))]
        for key, view in zip(keys, views[epoch], strict=True):
            assert torch.equal(view, reference[all_keys.index(key)]["pixel_values"]), (key, epoch)
    assert any(not torch.equal(a, b) for a, b in zip(views[1], views[6], strict=True))


def test_persistent_workers_follow_set_epoch_on_a_wrapper(rows):
    """A Subset of a shard read by 2 persistent DataLoader workers: epoch 2 replays other views than epoch 1, each
    identical to the views read without workers."""
    wrapped = Subset(_attached(rows).shard(num_shards=2, index=1), list(range(6)))
    workers = DataLoader(wrapped, batch_size=2, num_workers=2, persistent_workers=True)
    inline = DataLoader(wrapped, batch_size=2)
    views = {}
    for epoch in (1, 2):
        set_epoch(wrapped, epoch)
        views[epoch] = torch.cat([batch["pixel_values"] for batch in workers])
        assert torch.equal(views[epoch], torch.cat([batch["pixel_values"] for batch in inline]))
    assert not torch.equal(views[1], views[2])


@pytest.mark.parametrize("epoch", [3, np.int64(3), torch.tensor(3), MAX_EPOCH])
def test_integer_epochs_are_accepted(epoch):
    transform = AugmentTransform("rrc", size=8)
    transform.set_epoch(epoch)
    assert transform.epoch == int(epoch)


@pytest.mark.parametrize(("epoch", "message"), [
    (10**30, r"in \[0, 2\*\*31 - 1\].*got 1000000000000000000000000000000$"),
    (MAX_EPOCH + 1, "got 2147483648$"),
    (-1, r"in \[0, 2\*\*31 - 1\].*got -1$"),
    (2.5, r"whole number .*got 2\.5 \(float\).*ReinforcedEpochCallback"),
    (2.0, r"got 2\.0 \(float\)"),
    ("3", r"got '3' \(str\)"),
    (None, r"got None \(NoneType\)"),
    (True, r"got True \(bool\)"),
])
def test_an_epoch_that_is_not_a_small_whole_number_is_one_clear_error(epoch, message, rows):
    """The library's set_epoch and the hook's refuse it naming the value (no overflow traceback), and the
    epoch stays where it was."""
    dataset = _attached(rows)
    set_epoch(dataset, 4)
    with pytest.raises(InvalidConfigError, match=message):
        set_epoch(dataset, epoch)
    with pytest.raises(InvalidConfigError, match=message):
        transform_of(dataset).set_epoch(epoch)
    with pytest.raises(InvalidConfigError, match=message):
        check_epoch(epoch)
    assert transform_of(dataset).epoch == 4


def test_attaching_to_a_slice_of_rows_is_refused_naming_select():
    """Before: transform.attach(dataset[:4]) (a dict of columns) failed with an AttributeError."""
    from hf_dr import AugmentTransform
    from hf_dr.data.bundled import load_bundled
    from hf_dr.errors import InvalidConfigError

    digits = load_bundled("digits", "train")
    with pytest.raises(InvalidConfigError, match=r"not a dict: dataset\[:n\] is a dict.*select\(range\(n\)\)"):
        AugmentTransform("rrc", size=16).attach(digits[:4])
    with pytest.raises(InvalidConfigError, match=r"not a DatasetDict: pick a split, e.g. dataset\['train'\]"):
        AugmentTransform("rrc", size=16).attach(datasets.DatasetDict({"train": digits}))
