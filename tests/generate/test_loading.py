"""Opening a run without a conversion pass (:func:`hf_dr.generate.loading.open_run_records`): the same rows and the
same records as :func:`load_run_records`, for every codec and with skipped rows; replay bit-exact; each row group
decoded once, when first needed, into a cache every process shares; shards changed under it refused by row and key."""

from __future__ import annotations

import os
import pickle

import pyarrow.parquet as pq
import pytest
import torch

from hf_dr import ReinforcedTransform
from hf_dr.data.codec import CLASSES_COLUMN
from hf_dr.errors import DataMismatchError
from hf_dr.generate import row_groups
from hf_dr.generate.loading import load_run_records, open_run_records
from tests.data_utils import digits_dataset
from tests.generate.test_images import BAD_ROWS, bad, rgb_teacher, skip_run  # noqa: F401  (fixtures)
from tests.utils_hub import run
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS, SIZE = 24, 32
CODECS = {"default": None, "seeded-set": {"params": "seeded", "labels": "q8-topk-set"},
          "sampled": {"params": "seeded", "labels": "sampled", "draws": 6, "temperature": 2.0}}


@pytest.fixture(scope="module")
def digits():
    return digits_dataset(ROWS)


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory) -> dict[str, str]:
    """A run of 24 real digits per codec, in shards of 5 rows (5 shards, one row group each)."""
    root = tmp_path_factory.mktemp("loading")
    members = [save_teacher(str(root / "teacher"), seed=0)]
    return {name: run(digits, members, root / name, codec=codec, shard_size=5) for name, codec in CODECS.items()}


def _same_rows_and_records(run_dir: str, cache_dir: str) -> tuple:
    table = load_run_records(run_dir, cache_dir=os.path.join(cache_dir, "converted"))
    rows, records = open_run_records(run_dir, cache_dir=cache_dir)
    assert rows.column_names == [c for c in table.column_names if c != "reinforcements"]
    assert rows.features == {c: table.features[c] for c in rows.column_names}
    assert rows.to_dict() == table.remove_columns("reinforcements").to_dict()
    assert records.features == table.features and len(records) == len(table)
    for row, (key, stored) in enumerate(zip(table["key"], table["reinforcements"], strict=True)):
        assert records.records(row, key).to_pylist() == stored
    return table, rows, records


@pytest.mark.parametrize("codec", list(CODECS))
def test_every_codec_opens_to_the_same_rows_and_replays_bit_exact(runs, digits, codec, tmp_path):
    table, rows, records = _same_rows_and_records(runs[codec], str(tmp_path))
    assert (CLASSES_COLUMN in rows.column_names) == (codec != "default")
    converted = ReinforcedTransform(table, size=SIZE, images=digits)
    opened = ReinforcedTransform(rows, records=records, size=SIZE, images=digits)
    assert opened.codec == converted.codec and opened.description == converted.description
    for epoch in (0, 1):
        converted.set_epoch(epoch)
        opened.set_epoch(epoch)
        for row in digits:
            assert opened.choose(row["key"]) == converted.choose(row["key"])
            for index in (None, 0, 3):
                new, old = opened.replay(row["image"], row["key"], index), converted.replay(row["image"], row["key"],
                                                                                            index)
                assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])


def test_skipped_rows_are_left_out_and_the_others_keep_their_records(skip_run, bad, tmp_path):  # noqa: F811
    table, rows, records = _same_rows_and_records(skip_run, str(tmp_path))
    assert rows["key"] == [key for i, key in enumerate(bad["key"]) if i not in BAD_ROWS]
    transform = ReinforcedTransform(rows, records=records, size=SIZE, images=bad)
    with pytest.raises(DataMismatchError, match="sample key 'photo-13' is not in the reinforcements"):
        transform.replay(bad[0]["image"], "photo-13")


def test_row_groups_are_decoded_once_when_first_needed_and_shared(runs, digits, tmp_path):
    rows, records = open_run_records(runs["default"], cache_dir=str(tmp_path))
    cache = records.cache_dir
    assert cache.startswith(str(tmp_path)) and not os.path.exists(cache)  # nothing decoded by opening
    transform = ReinforcedTransform(rows, records=records, size=SIZE)
    transform.record("digit-00007")  # row 7: the second shard's row group
    assert sorted(os.listdir(cache)) == ["000001.arrow"]
    decoded = os.stat(os.path.join(cache, "000001.arrow")).st_mtime_ns
    worker = pickle.loads(pickle.dumps(transform))  # what a spawn worker gets: no opened row group
    assert worker._records._open == {}
    assert worker.record("digit-00008") == transform.record("digit-00008")
    assert os.stat(os.path.join(cache, "000001.arrow")).st_mtime_ns == decoded  # mapped, not decoded again
    worker.record("digit-00023")
    assert sorted(os.listdir(cache)) == ["000001.arrow", "000004.arrow"]
    assert open_run_records(runs["default"], cache_dir=str(tmp_path))[1].cache_dir == cache  # same run version


def test_a_key_that_is_not_the_one_at_its_row_is_refused_naming_the_row_and_the_file(runs, tmp_path):
    _, records = open_run_records(runs["default"], cache_dir=str(tmp_path))
    with pytest.raises(DataMismatchError, match=r"row 6 of the run holds key 'digit-00006' in row group 0 of "
                       r".*reinforcements-00001\.parquet, where its rows hold 'digit-00099'"):
        records.records(6, "digit-00099")


def test_shards_are_written_in_small_row_groups_and_a_lookup_decodes_only_its_own(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(row_groups, "ROW_GROUP_BYTES", 1)  # one row per group: several groups per shard of 5 rows
    members = [save_teacher(str(tmp_path / "teacher"), seed=0)]
    run_dir = run(digits, members, tmp_path / "run", shard_size=5)
    shards = sorted(os.listdir(os.path.join(run_dir, "shards")))
    groups = [pq.read_metadata(os.path.join(run_dir, "shards", f)).num_row_groups for f in shards if
              f.endswith(".parquet")]
    assert groups == [5, 5, 5, 5, 4]
    _, rows, records = _same_rows_and_records(run_dir, str(tmp_path / "all"))
    rows, records = open_run_records(run_dir, cache_dir=str(tmp_path / "one"))
    ReinforcedTransform(rows, records=records, size=SIZE).record("digit-00007")
    assert os.listdir(records.cache_dir) == ["000007.arrow"]  # row 7's group only, not its shard's


def test_a_process_keeps_a_bounded_number_of_row_groups_mapped(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(row_groups, "MAX_OPEN_GROUPS", 2)
    table = load_run_records(runs["default"], cache_dir=str(tmp_path / "converted"))
    _, records = open_run_records(runs["default"], cache_dir=str(tmp_path))
    for row in (0, 6, 12, 0, 18, 6):  # groups 0, 1, 2, 0, 3, 1: each past the second evicts the least recently used
        assert records.records(row, table["key"][row]).to_pylist() == table["reinforcements"][row]
    assert list(records._open) == [3, 1]


def test_the_old_name_load_reinforcements_still_loads_and_says_the_new_one(runs, tmp_path):
    import hf_dr

    with pytest.warns(FutureWarning, match="renamed load_run_records"):
        old = hf_dr.load_reinforcements(runs["default"], cache_dir=str(tmp_path))
    assert old.to_dict() == load_run_records(runs["default"], cache_dir=str(tmp_path)).to_dict()
