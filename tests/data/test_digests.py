"""A changed image under an unchanged key is caught: every shard of a run keyed by a column (or by path) stores an
8-byte BLAKE2b of each row's encoded image, and each join of a source with its reinforcements compares it
(load_reinforced map-style and streamed, the self-contained push, the training-data join): a random sample of rows up
front and every row when a process first replays it by default, every row up front on request. Content keys are such
a digest already, so their runs store none."""

from __future__ import annotations

import hashlib

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from huggingface_hub import HfApi

from hf_dr import ReinforcedTransform, load_reinforced, push_to_hub
from hf_dr.data.columns import encoded_images
from hf_dr.data.keys import DIGEST_SAMPLE_SIZE, digest_positions, image_digest
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.data.source_keys import keyed
from hf_dr.errors import DataMismatchError, InvalidConfigError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from hf_dr.generate.storage import verify_run
from hf_dr.train.inputs import DataConfig, training_data
from tests.data_utils import digits_dataset
from tests.utils_hub import pushed_digits, server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

COUNT, SIZE = 80, 32  # more rows than the sample checks
DATA = DataConfig(size=(SIZE, SIZE), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), in_chans=3)
IN_SAMPLE = 0
OUTSIDE = COUNT - 1  # the last row
OUTSIDE_FIXED = 77  # a row the old fixed sample (64 rows spread evenly over the 80) left out every time


def _run(dataset: datasets.Dataset, members: list[dict], output_dir, **options) -> str:
    arguments = {"policy": "rrc+ra_re", "num_samples": 2, "topk": 3, "seed": 0, "key_column": "key",
                 "shard_size": 32, "batch_size": 32, "num_workers": 0, "progress": False, **options}
    return reinforce(dataset, members, output_dir=str(output_dir), **arguments)


def changed(dataset: datasets.Dataset, row: int) -> datasets.Dataset:
    """``dataset`` with the image of ``row`` replaced by another digit's, its key unchanged; every other cell keeps
    its exact bytes."""
    cells = encoded_images(dataset, "image")
    other = cells[(row + 1) % len(dataset)]["image"]
    swapped = cells.map(lambda cell, i: {"image": other if i == row else cell["image"]}, with_indices=True)
    return dataset.remove_columns("image").add_column("image", swapped["image"], feature=datasets.Image()) \
        .select_columns(dataset.column_names)


@pytest.fixture(scope="module")
def state(hub, tmp_path_factory):
    """80 keyed digits as a source repo, reinforced by their key column, pushed metadata-only."""
    root = tmp_path_factory.mktemp("digests")
    cache_dir = str(root / "cache")
    source_id, commit, source = pushed_digits(COUNT, "digest-source", cache_dir)
    members = [save_teacher(str(root / "teachers"), seed=0)]
    run_dir = _run(source, members, root / "run", source={"id": source_id, "revision": commit, "split": "train"})
    repo = unique_repo("digest-meta")
    push_to_hub(run_dir, repo, layout="metadata-only")
    return source, members, run_dir, repo, cache_dir


def _load(state, **options):
    return load_reinforced(state[3], size=SIZE, cache_dir=state[4], **options)


# -- what generation stores -----------------------------------------------------------------------------------------
def test_shards_store_an_8_byte_blake2b_of_each_image_declared_in_the_schema(state):
    """The digest is BLAKE2b-64 of the stored bytes, as int64 (8 bytes a row; uint64 cannot be built from Python
    integers by datasets)."""
    source, _, run_dir, *_ = state
    table = load_run_records(run_dir, keep_in_memory=True)
    assert table.features[DIGEST_COLUMN] == datasets.Value("int64")
    assert list(table.features) == ["key", "label", DIGEST_COLUMN, "reinforcements"]
    cells = encoded_images(source, "image")["image"]
    first = int.from_bytes(hashlib.blake2b(cells[0]["bytes"], digest_size=8).digest(), "big", signed=True)
    assert table[DIGEST_COLUMN][:] == [image_digest(cell) for cell in cells] and table[DIGEST_COLUMN][0] == first
    shard = verify_run(run_dir)["shards"][0]["path"]
    assert pq.read_schema(f"{run_dir}/{shard}").field(DIGEST_COLUMN).type == pa.int64()
    assert datasets.Dataset.from_list(table.to_list(), features=table.features)[DIGEST_COLUMN][:] == \
        table[DIGEST_COLUMN][:]  # every digest survives the Python round trip (uint64 would overflow here)


def test_content_keyed_runs_store_no_digest_their_key_is_one(state, tmp_path):
    _, members, *_ = state
    out = _run(digits_dataset(6, with_keys=False), members, tmp_path / "out", key_column=None)
    table = load_run_records(out)
    assert DIGEST_COLUMN not in table.column_names
    # the replay checks the key itself: an image changed under a content key carried over from the old images
    images = keyed(digits_dataset(6, with_keys=False), "image", None, None, "key")[0]
    stale = changed(images, 3)
    assert len(list(torch.utils.data.DataLoader(ReinforcedTransform(table, size=SIZE).attach(images)))) == 6
    replay = ReinforcedTransform(table, size=SIZE).attach(stale)
    with pytest.raises(DataMismatchError, match=r"the image of sample key '[0-9a-f]{32}' \(row 3 of the image "
                                                r"dataset\) is not the one that was reinforced: the run keyed its "
                                                r"rows by content"):
        replay[3]
    assert ReinforcedTransform(table, size=SIZE, verify_images="off").attach(stale)[3]["labels"].shape == (10,)


def test_sample_is_drawn_at_random_anew_by_every_call():
    draws = [digest_positions(COUNT, "sample") for _ in range(20)]
    assert all(len(positions) == DIGEST_SAMPLE_SIZE and positions == sorted(set(positions)) for positions in draws)
    assert len({tuple(positions) for positions in draws}) > 1  # not one fixed subset
    assert set().union(*draws) == set(range(COUNT))  # no row left out every time (20 draws of 64 of 80 rows)
    assert digest_positions(COUNT, "full") == list(range(COUNT)) and digest_positions(10, "sample") == list(range(10))
    assert digest_positions(COUNT, "off") == []
    with pytest.raises(InvalidConfigError, match=r"verify_images should be one of \['sample', 'full', 'off'\]"):
        digest_positions(COUNT, "all")


# -- load_reinforced ------------------------------------------------------------------------------------------------
def _read_all(dataset) -> int:
    return sum(len(batch["labels"]) for batch in torch.utils.data.DataLoader(dataset, batch_size=16))


def test_the_unchanged_source_loads(state):
    assert len(_load(state)) == len(_load(state, verify_images="full")) == COUNT


def test_a_changed_image_is_refused_naming_key_row_and_fix(state, monkeypatch):
    """Up front when the random sample holds the row (its fix names source= and the checks), else when it is read
    (its fix names the recorded source)."""
    with pytest.raises(DataMismatchError, match=r"the image of sample key 'digit-00000' \(row 0 of the (source|image "
                                                r"dataset)\) is not the one that was reinforced .*(source=.*"
                                                r"verify_images='full'|digest-source.*verify_images='off')"):
        _read_all(_load(state, source=changed(state[0], IN_SAMPLE)))
    # a sample without it
    monkeypatch.setattr("hf_dr.data.source_keys.digest_positions", lambda count, verify_images: [])
    loaded = _load(state, source=changed(state[0], IN_SAMPLE))
    with pytest.raises(DataMismatchError, match=r"the image of sample key 'digit-00000' \(row 0 of the image "
                                                r"dataset\) is not the one that was reinforced .*digest-source.*"
                                                r"verify_images='off'"):
        _read_all(loaded)
    monkeypatch.undo()
    with pytest.raises(DataMismatchError, match=r"the image of sample key 'digit-00000' \(row 0 of the source\) is "
                                                r"not the one that was reinforced .*source=.*verify_images='full'"):
        _load(state, source=changed(state[0], IN_SAMPLE), verify_images="full")


@pytest.mark.parametrize("row", [OUTSIDE_FIXED, OUTSIDE])
def test_a_changed_image_at_any_row_is_caught_by_the_default_when_read(state, row):
    """The default checks a random sample up front and every row the first time it is replayed: a changed image at
    a row the old fixed sample never read (row 77 of 80) is refused, up front or when it is read."""
    source = changed(state[0], row)
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-{row:05d}' \(row {row} of the "):
        _read_all(_load(state, source=source))
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-{row:05d}' \(row {row} of the source\)"):
        _load(state, source=source, verify_images="full")
    assert _read_all(_load(state, source=source, verify_images="off")) == COUNT  # explicitly accepted


def test_two_swapped_keys_are_caught_when_read(state):
    keys = list(state[0]["key"])
    keys[OUTSIDE_FIXED], keys[72] = keys[72], keys[OUTSIDE_FIXED]  # two rows the old fixed sample left out
    swapped = state[0].remove_columns("key").add_column("key", keys).select_columns(state[0].column_names)
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-000(77|72)'"):
        _read_all(_load(state, source=swapped, verify_source=False))


def test_digests_are_matched_by_key_not_position(state):
    shuffled = state[0].shuffle(seed=3)
    assert len(_load(state, source=shuffled, verify_source=False, verify_images="full")) == COUNT
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-00000'"):
        _read_all(_load(state, source=changed(state[0], IN_SAMPLE).shuffle(seed=3), verify_source=False))


def test_a_stream_checks_every_row_as_it_arrives(state):
    assert len(list(_load(state, streaming=True, source=changed(state[0], OUTSIDE), verify_images="off"))) == COUNT
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-{OUTSIDE:05d}' \(row {OUTSIDE} of the source\)"):
        list(_load(state, streaming=True, source=changed(state[0], OUTSIDE)))


def test_bad_verify_images_is_refused(state):
    with pytest.raises(InvalidConfigError, match="verify_images should be one of"):
        _load(state, verify_images=True)


# -- push and training ----------------------------------------------------------------------------------------------
def test_self_contained_push_checks_every_image(state):
    _, _, run_dir, *_ = state
    repo = unique_repo("digest-full")
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-{OUTSIDE:05d}' \(row {OUTSIDE} of the dataset "
                                                r"to push\).*dataset="):
        push_to_hub(run_dir, repo, dataset=changed(state[0], OUTSIDE))
    assert not HfApi().repo_exists(repo, repo_type="dataset")  # refused before anything was uploaded


def test_training_data_checks_a_sample_of_images_and_every_row_when_read(state):
    source, _, run_dir, *_ = state
    dataset, _ = training_data(source, DATA, run_dir=run_dir)
    assert len(dataset) == COUNT and _read_all(dataset) == COUNT
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-00000' \(row 0 of the (training|image) dataset\)"):
        _read_all(training_data(changed(source, IN_SAMPLE), DATA, run_dir=run_dir)[0])
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-{OUTSIDE_FIXED:05d}' \(row {OUTSIDE_FIXED} of "):
        _read_all(training_data(changed(source, OUTSIDE_FIXED), DATA, run_dir=run_dir)[0])
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-{OUTSIDE:05d}'"):
        training_data(changed(source, OUTSIDE), DATA, run_dir=run_dir, verify_images="full")
    for preload in (False, True):  # "off" accepts changed images, also preloaded
        assert _read_all(training_data(changed(source, OUTSIDE), DATA, run_dir=run_dir, verify_images="off",
                                       preload=preload)[0]) == COUNT
