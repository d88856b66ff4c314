"""Streamed replay on small in-memory reinforced digits: every stream layout gives the map-style samples of the same
(seed, epoch), also through persistent DataLoader workers; the epoch is shared with derived datasets (shuffle, take,
skip, filter, map, shard, split_dataset_by_node), so set_epoch on the outermost wrapper selects the records; a
self-contained stream turns only the chosen record of each row into Python objects; refused inputs."""

from __future__ import annotations

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from hf_dr import ReinforcedTransform, create_policy
from hf_dr.augment.seeding import choose_index
from hf_dr.data.epochs import set_epoch
from hf_dr.data.parquet_rows import ParquetRows, plan_parts
from hf_dr.data.source_keys import scan_keys
from hf_dr.data.streaming import ReinforcedIterableDataset, empty_reinforcements, stream_replay
from hf_dr.errors import DataMismatchError, InvalidConfigError, MissingColumnError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

pytestmark = pytest.mark.usefixtures("one_thread")

POLICY, NUM_ROWS, NUM_SAMPLES, SIZE, SEED = "rrc+ra_re", 16, 4, 24, 3


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(NUM_ROWS)


@pytest.fixture(scope="module")
def table(digits) -> datasets.Dataset:
    """A metadata-only reinforcement table (key, N records) of the digits."""
    return reinforce_in_memory(digits, create_policy(POLICY), ProjectionTeacher(size=SIZE), NUM_SAMPLES, topk=3)


def _self_contained(digits: datasets.Dataset, table: datasets.Dataset) -> datasets.Dataset:
    """Images, labels, keys and each row's own records in one dataset (a fresh object each call)."""
    assert table["key"][:] == digits["key"][:]
    return datasets.concatenate_datasets([digits, table.remove_columns("key")], axis=1)


def _transform(table: datasets.Dataset, **options) -> ReinforcedTransform:
    return ReinforcedTransform(table, POLICY, num_classes=10, size=SIZE, seed=SEED, **options)


def _mapped(digits: datasets.Dataset, table: datasets.Dataset) -> datasets.Dataset:
    """The map-style reference: the self-contained rows with the replay attached."""
    dataset = _self_contained(digits, table)
    return _transform(dataset).attach(dataset)


def _self_contained_stream(digits, table, dataset: datasets.Dataset | None = None,
                           num_shards: int = 2) -> ReinforcedIterableDataset:
    dataset = _self_contained(digits, table) if dataset is None else dataset
    transform = _transform(empty_reinforcements(dataset.features, "key", "reinforcements"))
    return stream_replay(dataset.to_iterable_dataset(num_shards=num_shards), transform, "image", "key",
                         "reinforcements")


def _metadata_only_stream(digits, table) -> ReinforcedIterableDataset:
    return stream_replay(digits.to_iterable_dataset(), _transform(table), "image", "key")


def _assert_same_as_mapped(rows: list[dict], mapped: datasets.Dataset) -> None:
    """Every streamed row equals the map-style row of its key, bit for bit."""
    keys = mapped.with_format("arrow")[:].column("key").to_pylist()
    for row in rows:
        expected = mapped[keys.index(row["key"])]
        assert torch.equal(row["pixel_values"], expected["pixel_values"]), row["key"]
        assert torch.equal(row["labels"], expected["labels"]), row["key"]


@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_streamed_samples_equal_map_style_for_each_epoch(layout, digits, table):
    """Both layouts stream every key once, with the same pixels and soft labels as map-style, epoch by epoch."""
    stream = (_self_contained_stream if layout == "self_contained" else _metadata_only_stream)(digits, table)
    mapped = _mapped(digits, table)
    assert isinstance(stream, ReinforcedIterableDataset)
    labels = {}
    for epoch in (0, 2):
        stream.set_epoch(epoch)
        set_epoch(mapped, epoch)
        rows = list(stream)
        assert sorted(row["key"] for row in rows) == digits["key"][:]
        assert set(rows[0]) == {"key", "pixel_values", "labels"}
        assert rows[0]["pixel_values"].shape == (3, SIZE, SIZE) and rows[0]["labels"].shape == (10,)
        _assert_same_as_mapped(rows, mapped)
        labels[epoch] = {row["key"]: row["labels"] for row in rows}
    assert any(not torch.equal(labels[0][k], labels[2][k]) for k in labels[0])  # the epoch changed the records


def _assert_epoch_equals_mapped(stream, keyed, table, epoch: int) -> None:
    """Every row of ``stream`` in ``epoch``, keyed by content, equals the map-style replay of ``keyed``."""
    stream.set_epoch(epoch)
    mapped = _mapped(keyed, table)
    set_epoch(mapped, epoch)
    rows = list(stream)
    assert [row["key"] for row in rows] == keyed["key"][:]
    _assert_same_as_mapped(rows, mapped)


def test_content_keys_when_the_stream_has_no_key_column(digits):
    """Without a key column each streamed row is keyed by its image bytes, as a run without keys stores them."""
    unkeyed = digits.remove_columns("key")
    keyed = unkeyed.add_column("key", scan_keys(unkeyed, "image"))
    table = reinforce_in_memory(keyed, create_policy(POLICY), ProjectionTeacher(size=SIZE), NUM_SAMPLES, topk=3)
    stream = stream_replay(unkeyed.to_iterable_dataset(), _transform(table), "image", None)
    _assert_epoch_equals_mapped(stream, keyed, table, epoch=1)


def test_the_stream_and_its_transform_share_one_epoch(digits, table):
    """Setting the epoch on either side moves the other: the replay reads the dataset's own epoch."""
    transform = _transform(table)
    stream = stream_replay(digits.to_iterable_dataset(), transform, "image", "key")
    stream.set_epoch(4)
    assert transform.epoch == 4
    transform.set_epoch(1)
    mapped = _mapped(digits, table)
    set_epoch(mapped, 1)
    _assert_same_as_mapped(list(stream.take(5)), mapped)


@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_set_epoch_reaches_derived_datasets(layout, digits, table):
    """shuffle/take/filter/map derive datasets that share the replay's epoch: ``set_epoch`` on the derived one picks
    that epoch's records and reshuffles."""
    stream = (_self_contained_stream if layout == "self_contained" else _metadata_only_stream)(digits, table)
    derived = stream.shuffle(seed=0, buffer_size=8).filter(lambda row: row["key"] != "digit-00003").take(12)
    derived = derived.map(lambda row: {**row, "labels": row["labels"] * 1})
    assert isinstance(derived, ReinforcedIterableDataset)
    mapped = _mapped(digits, table)
    orders = []
    for epoch in (0, 5):
        set_epoch(derived, epoch)  # the library's set_epoch, as a training loop calls it
        assert stream.epoch == epoch
        set_epoch(mapped, epoch)
        rows = list(derived)
        assert len(rows) == 12 and "digit-00003" not in [row["key"] for row in rows]
        _assert_same_as_mapped(rows, mapped)
        orders.append([row["key"] for row in rows])
    assert orders[0] != orders[1]  # the shuffle follows the same epoch


@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_a_stream_after_a_user_map_with_features(layout, digits, table):
    """A user's ``.map`` that declares its features streams like the original (its rows reach a self-contained
    stream's Arrow step as Python rows, converted back to Arrow)."""
    dataset = _self_contained(digits, table) if layout == "self_contained" else digits
    plain = dataset.to_iterable_dataset().map(lambda row: {**row, "key": row["key"]}, features=dataset.features)
    if layout == "self_contained":
        transform = _transform(empty_reinforcements(dataset.features, "key", "reinforcements"))
        stream = stream_replay(plain, transform, "image", "key", "reinforcements")
    else:
        stream = stream_replay(plain, _transform(table), "image", "key")
    _assert_same_as_mapped(list(stream.take(4)), _mapped(digits, table))


def test_the_epoch_reaches_persistent_workers(digits, table):
    """A self-contained stream read by 2 persistent DataLoader workers (one shard each) follows ``set_epoch``: every
    key once per epoch, each equal to map-style for that epoch."""
    stream = _self_contained_stream(digits, table)
    mapped = _mapped(digits, table)
    loader = DataLoader(stream, batch_size=3, num_workers=2, persistent_workers=True)
    labels = {}
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        set_epoch(mapped, epoch)
        rows = [{"key": key, "pixel_values": pixels, "labels": target} for batch in loader
                for key, pixels, target in zip(batch["key"], batch["pixel_values"], batch["labels"], strict=True)]
        assert sorted(row["key"] for row in rows) == digits["key"][:]
        _assert_same_as_mapped(rows, mapped)
        labels[epoch] = {row["key"]: row["labels"] for row in rows}
    assert any(not torch.equal(labels[0][k], labels[1][k]) for k in labels[0])


def _rows(loader: DataLoader) -> dict[str, torch.Tensor]:
    """The pixels of every row a DataLoader yields, by key."""
    return {key: pixels for batch in loader for key, pixels in zip(batch["key"], batch["pixel_values"], strict=True)}


# the wrappers a training script puts around a stream, each then given the epoch (the last one, on the split, as
# the Trainer and accelerate call it): split_dataset_by_node with "shards" (2 shards) and "examples" (1 shard)
WRAPPERS = {
    "split": lambda s: split_dataset_by_node(s, rank=1, world_size=2),
    "shard": lambda s: s.shard(num_shards=s.num_shards, index=0),
    "shuffle": lambda s: s.shuffle(seed=0, buffer_size=4),
    "map": lambda s: s.map(lambda row: {**row, "labels": row["labels"] * 1}),
    "skip-take": lambda s: s.skip(2).take(9),
    "shuffle-split-map": lambda s: split_dataset_by_node(s.shuffle(seed=0, buffer_size=4), rank=0, world_size=2)
    .map(lambda row: row),
    "split-skip": lambda s: split_dataset_by_node(s, rank=0, world_size=2).skip(1),
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_set_epoch_on_a_wrapped_stream_selects_that_epochs_records(layout, wrapper, digits, table):
    """``set_epoch(e)`` called on the outermost wrapper (never on the stream itself) replays epoch e's records."""
    stream = (_self_contained_stream if layout == "self_contained" else _metadata_only_stream)(digits, table)
    wrapped = WRAPPERS[wrapper](stream)
    assert isinstance(wrapped, ReinforcedIterableDataset)
    mapped = _mapped(digits, table)
    for epoch in (1, 4):
        wrapped.set_epoch(epoch)
        assert stream.epoch == epoch
        set_epoch(mapped, epoch)
        rows = list(wrapped)
        assert rows and len({row["key"] for row in rows}) == len(rows)
        _assert_same_as_mapped(rows, mapped)


@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_split_dataset_by_node_ranks_cover_every_key_once_per_epoch(layout, digits, table):
    """The ranks of split_dataset_by_node, each given the epoch on its own split, together replay every key once,
    with the records of that epoch."""
    stream = (_self_contained_stream if layout == "self_contained" else _metadata_only_stream)(digits, table)
    splits = [split_dataset_by_node(stream, rank=rank, world_size=2) for rank in range(2)]
    mapped = _mapped(digits, table)
    set_epoch(mapped, 3)
    rows = []
    for split in splits:
        set_epoch(split, 3)  # as accelerate's DataLoaderShard.set_epoch and the Trainer reach it
        rows += list(split)
    assert sorted(row["key"] for row in rows) == digits["key"][:]
    _assert_same_as_mapped(rows, mapped)


def test_the_split_reaches_persistent_workers_as_without_workers(digits, table):
    """A split read by 2 persistent workers (one shard each), given the epoch on the split: epoch 2 replays other
    views than epoch 1, each identical to the views read without workers."""
    split = split_dataset_by_node(_self_contained_stream(digits, table, num_shards=4), rank=1, world_size=2)
    assert split.num_shards == 2
    workers = DataLoader(split, batch_size=3, num_workers=2, persistent_workers=True)
    inline = DataLoader(split, batch_size=3)
    views = {}
    for epoch in (1, 2):
        split.set_epoch(epoch)
        views[epoch], expected = _rows(workers), _rows(inline)
        assert sorted(views[epoch]) == sorted(expected) and len(expected) == NUM_ROWS // 2
        assert all(torch.equal(views[epoch][key], expected[key]) for key in expected)
    assert any(not torch.equal(views[1][key], views[2][key]) for key in set(views[1]) & set(views[2]))


def test_the_split_wrapper_is_installed_where_split_dataset_by_node_looks():
    """The wrapper that makes splits share the epoch sits on the name datasets' split_dataset_by_node calls; a
    datasets release that renames it fails here."""
    import datasets.distributed

    assert getattr(datasets.distributed._split_by_node_iterable_dataset, "keeps_hf_dr_epoch", False)


@pytest.mark.parametrize("epoch", [10**30, -1, 2.5, "3", True])
def test_a_stream_refuses_an_epoch_that_is_not_a_small_whole_number(epoch, digits, table):
    stream = split_dataset_by_node(_metadata_only_stream(digits, table), rank=0, world_size=2)
    with pytest.raises(InvalidConfigError, match=f"got {epoch!r}".replace("'", ".")):
        stream.set_epoch(epoch)


def _poisoned(digits: datasets.Dataset, table: datasets.Dataset, epochs: tuple[int, ...]) -> datasets.Dataset:
    """The self-contained rows with a ``stamp`` added to every record: valid in the records chosen for ``epochs``, a
    timestamp no Python ``datetime`` holds (converting it raises OverflowError) in all the others."""
    base = _self_contained(digits, table)
    arrow = base.data.table
    records = arrow.column("reinforcements").combine_chunks()
    starts, keys = records.offsets.to_pylist(), arrow.column("key").to_pylist()
    valid = {starts[row] + choose_index(NUM_SAMPLES, SEED, epoch, key) for row, key in enumerate(keys)
             for epoch in epochs}
    stamps = pa.array([0 if i in valid else 10**12 for i in range(len(records.values))], pa.timestamp("s"))
    fields = [*records.values.type, pa.field("stamp", stamps.type)]
    values = pa.StructArray.from_arrays([*records.values.flatten(), stamps], fields=fields)
    features = base.features.copy()
    features["reinforcements"] = datasets.List({**features["reinforcements"].feature,
                                                "stamp": datasets.Value("timestamp[s]")})
    column = pa.ListArray.from_arrays(records.offsets, values)
    poisoned = arrow.set_column(arrow.column_names.index("reinforcements"), "reinforcements", column)
    return datasets.Dataset(datasets.table.InMemoryTable(poisoned), info=datasets.DatasetInfo(features=features))


def test_a_self_contained_stream_converts_only_the_chosen_records(digits, table):
    """Each row's records that this epoch does not replay hold a value that fails in any conversion to Python: the
    stream still replays every row (as map-style does), so it converted only the chosen one."""
    poisoned = _poisoned(digits, table, epochs=(0, 1))
    with pytest.raises(OverflowError):  # formatting a whole row converts all its records
        next(iter(poisoned.to_iterable_dataset()))
    stream = _self_contained_stream(digits, table, poisoned)
    mapped = _mapped(digits, table)
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        set_epoch(mapped, epoch)
        rows = list(stream.shuffle(seed=0, buffer_size=4))
        assert sorted(row["key"] for row in rows) == digits["key"][:]
        _assert_same_as_mapped(rows, mapped)


def test_a_self_contained_stream_without_a_key_column_keys_by_content(digits):
    """Without a key column a self-contained row is keyed by its image bytes, and its record chosen by that key."""
    unkeyed = digits.remove_columns("key")
    keyed = unkeyed.add_column("key", scan_keys(unkeyed, "image"))
    table = reinforce_in_memory(keyed, create_policy(POLICY), ProjectionTeacher(size=SIZE), NUM_SAMPLES, topk=3)
    dataset = _self_contained(keyed, table)
    transform = _transform(empty_reinforcements(dataset.features, "key", "reinforcements"))
    stream = stream_replay(dataset.remove_columns("key").to_iterable_dataset(), transform, "image", None,
                           "reinforcements")
    _assert_epoch_equals_mapped(stream, keyed, table, epoch=1)


def test_a_self_contained_row_without_records_is_refused(digits, table):
    """A row whose run gave it no records raises the map-style error, naming its key."""
    dataset = _self_contained(digits, table)
    emptied = dataset.map(lambda row, i: {"reinforcements": [] if i == 5 else row["reinforcements"]},
                          with_indices=True, features=dataset.features)
    with pytest.raises(DataMismatchError, match="'digit-00005' holds no reinforcement records"):
        list(_self_contained_stream(digits, table, emptied))


def test_a_self_contained_stream_resumes_from_its_state_dict(digits, table):
    """``state_dict`` taken mid-epoch (inside an Arrow batch of the record choice) resumes at the next row."""
    stream = _self_contained_stream(digits, table)
    stream.set_epoch(1)
    iterator = iter(stream)
    seen = [next(iterator)["key"] for _ in range(5)]
    state, rest = stream.state_dict(), [row["key"] for row in iterator]
    resumed = _self_contained_stream(digits, table)
    resumed.set_epoch(1)
    resumed.load_state_dict(state)
    rows = list(resumed)
    assert [row["key"] for row in rows] == rest and sorted(seen + rest) == digits["key"][:]
    mapped = _mapped(digits, table)
    set_epoch(mapped, 1)
    _assert_same_as_mapped(rows, mapped)


@pytest.mark.xfail(strict=True, raises=pa.ArrowInvalid, reason="stream_replay infers the features of a stream whose "
                   "features a .map() dropped with IterableDataset._resolve_features, which cannot infer a feature "
                   "from decoded PIL images (ArrowInvalid), and would give a struct, not Image, for undecoded cells")
def test_a_stream_after_a_user_map_resolves_its_columns(digits, table):
    """A stream whose features were dropped by a plain ``.map`` (the case stream_replay's fallback is for) still
    finds its image column and replays."""
    plain = digits.to_iterable_dataset().map(lambda row: row)
    assert plain.features is None
    stream = stream_replay(plain, _transform(table), "image", "key")
    _assert_same_as_mapped(list(stream.take(4)), _mapped(digits, table))


def test_mixing_policies_are_refused_in_streams(digits):
    """Mixing needs a partner image looked up by key, which a stream cannot fetch: the error says to load map-style."""
    mix = reinforce_in_memory(digits, create_policy("rrc+mix"), ProjectionTeacher(size=SIZE), 2, topk=3)
    transform = ReinforcedTransform(mix, "rrc+mix", num_classes=10, size=SIZE, images=digits)
    with pytest.raises(InvalidConfigError, match=r"'rrc\+mix' mixes .*partner.*streaming=False"):
        stream_replay(digits.to_iterable_dataset(), transform, "image", "key")


def test_a_column_without_images_is_refused(digits, table):
    with pytest.raises(InvalidConfigError, match="column 'label' of the stream holds .*not images"):
        stream_replay(digits.to_iterable_dataset(), _transform(table), "label", "key")


def test_a_missing_column_is_refused_naming_it(digits, table):
    with pytest.raises(MissingColumnError, match=r"'id' \(key_column\)"):
        stream_replay(digits.to_iterable_dataset(), _transform(table), "image", "id")


def test_empty_reinforcements_keeps_the_key_and_records_features(digits, table):
    """A 0-row table with exactly the stream's key and records features."""
    features = _self_contained(digits, table).features
    empty = empty_reinforcements(features, "key", "reinforcements")
    assert len(empty) == 0 and empty.column_names == ["key", "reinforcements"]
    assert empty.features == datasets.Features({"key": features["key"], "reinforcements": features["reinforcements"]})


def test_a_metadata_only_stream_zips_both_files_and_refuses_more_shards_than_it_has(digits, table, tmp_path):
    """zip_records streams the source and the reinforcement rows side by side: equal to map-style for the epoch set
    on it, also through split_dataset_by_node; shard() beyond its one shard names the way to split it."""
    from hf_dr.data.streaming import zip_records

    table.to_parquet(str(tmp_path / "records.parquet"))
    records = datasets.load_dataset("parquet", data_files=str(tmp_path / "records.parquet"), split="train",
                                    streaming=True)
    transform = _transform(empty_reinforcements(records.features, "key", "reinforcements"))
    stream = zip_records(digits.to_iterable_dataset(), records, transform, "image", "key", "key", "reinforcements")
    _assert_epoch_equals_mapped(stream, digits, table, epoch=2)
    half = split_dataset_by_node(stream, rank=1, world_size=2)
    stream.set_epoch(3)
    mapped = _mapped(digits, table)
    set_epoch(mapped, 3)
    rows = list(half)
    assert [row["key"] for row in rows] == digits["key"][1::2]
    _assert_same_as_mapped(rows, mapped)
    with pytest.raises(InvalidConfigError, match="1 shard.*split_dataset_by_node"):
        stream.shard(num_shards=2, index=0)


# -- metadata-only streams in parts (issue 23): one shard per source file ------------------------------------------
def _tag_worker(row: dict) -> dict:
    """Adds the id of the DataLoader worker that produced ``row`` (-1 in the main process)."""
    info = torch.utils.data.get_worker_info()
    return {**row, "worker": -1 if info is None else info.id}


def _record_files(table: datasets.Dataset, folder) -> ParquetRows:
    """The reinforcement rows written as 2 Parquet files of 3-row groups (ranges cross files and groups)."""
    half, paths = len(table) // 2, []
    for i, rows in enumerate([range(half), range(half, len(table))]):
        paths.append(str(folder / f"records-{i}.parquet"))
        pq.write_table(table.select(rows).with_format("arrow")[:], paths[-1], row_group_size=3)
    return ParquetRows.read(paths)


def _parts_stream(source: datasets.Dataset, table: datasets.Dataset, folder, skipped=(), num_files: int = 4,
                  rows_per_file: int = NUM_ROWS // 4) -> ReinforcedIterableDataset:
    """A metadata-only stream of ``source`` (``num_files`` contiguous shards, recorded as ``rows_per_file`` rows each)
    zipped with ``table`` in parts."""
    from hf_dr.data.streaming import zip_records

    rows = _record_files(table, folder)
    files = [{"path": f"data/file-{i}.parquet", "num_rows": rows_per_file} for i in range(num_files)]
    parts = plan_parts(files, skipped, rows.total)
    records = table.to_iterable_dataset()  # its features only: the parts read the files
    transform = _transform(empty_reinforcements(table.features, "key", "reinforcements"))
    return zip_records(source.to_iterable_dataset(num_shards=num_files), records, transform, "image", "key", "key",
                       "reinforcements", skipped, parts=(parts, rows))


def test_parquet_rows_reads_a_range_across_files_and_row_groups(table, tmp_path):
    """Rows 5 to 12 of 2 files of 8 rows in 3-row groups: exactly those rows, in order."""
    rows = _record_files(table, tmp_path)
    assert rows.num_rows == (8, 8)
    keys = [key for part in rows.batches(5, 13, ["key"], batch_size=2) for key in part.column("key").to_pylist()]
    assert keys == table["key"][5:13]


def test_a_stream_in_parts_uses_every_worker(digits, table, tmp_path):
    """4 source files, 2 persistent DataLoader workers: each worker replays 2 files' rows, every key once, equal to
    map-style, for 2 epochs (before issue 23 the stream was one shard and one worker read everything)."""
    stream = _parts_stream(digits, table, tmp_path)
    assert stream.num_shards == 4
    tagged = stream.map(_tag_worker)
    loader = DataLoader(tagged, batch_size=3, num_workers=2, persistent_workers=True)
    mapped = _mapped(digits, table)
    labels = {}
    for epoch in (0, 1):
        tagged.set_epoch(epoch)
        set_epoch(mapped, epoch)
        rows = [{"key": key, "pixel_values": pixels, "labels": target, "worker": worker} for batch in loader
                for key, pixels, target, worker in zip(batch["key"], batch["pixel_values"], batch["labels"],
                                                       batch["worker"].tolist(), strict=True)]
        assert sorted(row["key"] for row in rows) == digits["key"][:]
        assert sorted(row["worker"] for row in rows) == [0] * (NUM_ROWS // 2) + [1] * (NUM_ROWS // 2)
        _assert_same_as_mapped(rows, mapped)
        labels[epoch] = {row["key"]: row["labels"] for row in rows}
    assert any(not torch.equal(labels[0][k], labels[1][k]) for k in labels[0])


def test_split_dataset_by_node_ranks_of_a_stream_in_parts_partition_the_keys(digits, table, tmp_path):
    """2 ranks, each 2 of the 4 files: together every key once, with the records of the epoch set on each split."""
    stream = _parts_stream(digits, table, tmp_path)
    splits = [split_dataset_by_node(stream, rank=rank, world_size=2) for rank in range(2)]
    assert [split.num_shards for split in splits] == [2, 2]
    mapped = _mapped(digits, table)
    set_epoch(mapped, 2)
    rows = []
    for split in splits:
        split.set_epoch(2)
        rows.append(list(split))
    assert not {row["key"] for row in rows[0]} & {row["key"] for row in rows[1]}
    assert sorted(row["key"] for row in rows[0] + rows[1]) == digits["key"][:]
    _assert_same_as_mapped(rows[0] + rows[1], mapped)


def test_a_stream_in_parts_leaves_out_the_skipped_rows(digits, table, tmp_path):
    """Source row 5 (in the second file) has no records: every other key is replayed once, as map-style."""
    kept = [row for row in range(NUM_ROWS) if row != 5]
    stream = _parts_stream(digits, table.select(kept), tmp_path, skipped=[5])
    mapped = _mapped(digits.select(kept), table.select(kept))
    stream.set_epoch(1)
    set_epoch(mapped, 1)
    rows = list(DataLoader(stream, batch_size=None, num_workers=2))
    assert sorted(row["key"] for row in rows) == [digits["key"][row] for row in kept]
    _assert_same_as_mapped(rows, mapped)


def test_a_stream_in_parts_names_the_source_file_that_gained_rows(digits, table, tmp_path):
    """A source whose files hold 5 rows where the push recorded 4: the first file's fifth row is refused, naming it
    and the file."""
    stream = _parts_stream(datasets.concatenate_datasets([digits, digits_dataset(NUM_ROWS + 4).select(
        range(NUM_ROWS, NUM_ROWS + 4))]), table, tmp_path)
    with pytest.raises(DataMismatchError, match=r"row 4 of the source \(key 'digit-00004'\) comes after the last "
                                                r"reinforced row \(the source file data/file-0.parquet, rows 0 to 3"):
        list(stream)


def test_a_stream_in_parts_names_the_source_file_that_lost_rows(digits, table, tmp_path):
    """A source whose last file holds 3 rows where the push recorded 4: the error names the file and its rows."""
    stream = _parts_stream(digits.select(range(NUM_ROWS - 1)), table, tmp_path)
    with pytest.raises(DataMismatchError, match=r"ended after 15 rows \(the source file data/file-3.parquet, rows 12 "
                                                r"to 15, holds reinforced rows 12 to 15\).*lost rows"):
        list(stream)
