"""ReinforcedTransform: replays what the teacher saw, same choice for any worker count, new choice per epoch."""

from __future__ import annotations

import pickle

import datasets
import pytest
import torch
from torch.utils.data import DataLoader

from hf_dr import ReinforcedTransform, create_policy, densify
from hf_dr.augment.functional import normalize
from hf_dr.data.keys import KeyIndex
from hf_dr.errors import ClassCountMismatchError, DataMismatchError, InvalidConfigError, MissingColumnError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

N, K = 6, 5


@pytest.fixture(scope="module")
def teacher():
    return ProjectionTeacher(size=24)


@pytest.fixture(scope="module")
def images():
    return digits_dataset(48)


@pytest.fixture(scope="module")
def reinforced(images, teacher):
    """Self-contained layout: images, labels, keys and reinforcements in one table."""
    table = reinforce_in_memory(images, create_policy("rrc+ra_re"), teacher, N, K, seed=3)
    return datasets.concatenate_datasets([images, table.remove_columns("key")], axis=1)


def _transform(dataset, **kwargs):
    return ReinforcedTransform(dataset, **{"policy": "rrc+ra_re", "size": 24, "seed": 11, "num_classes": 10, **kwargs})


def _epoch(dataset, num_workers: int, epoch: int = 0, transform=None):
    transform = transform or _transform(dataset)
    transform.set_epoch(epoch)
    loader = DataLoader(transform.attach(dataset), batch_size=8, num_workers=num_workers)
    batches = list(loader)
    return torch.cat([b["pixel_values"] for b in batches]), torch.cat([b["labels"] for b in batches])


def test_outputs_pixel_values_and_dense_soft_labels(reinforced):
    ds = _transform(reinforced).attach(reinforced.with_format(None))
    row = ds[0]
    assert row["pixel_values"].shape == (3, 24, 24) and row["pixel_values"].dtype == torch.float32
    assert row["labels"].shape == (10,) and float(row["labels"].sum()) == pytest.approx(1.0, abs=1e-5)
    batch = ds[:5]
    assert len(batch["pixel_values"]) == 5


def test_replayed_view_gets_the_stored_teacher_prediction(reinforced, teacher):
    transform = _transform(reinforced)
    for row in reinforced.select(range(12)):
        for index in range(N):
            pixel_values, target = transform.replay(row["image"], row["key"], index)
            stored = transform.record(row["key"], index)
            ids = torch.topk(teacher(pixel_values[None])[0], K).indices.tolist()
            assert ids == stored["ids"]
            expected = densify(torch.tensor(stored["ids"]), torch.tensor(stored["probs"], dtype=torch.float16), 10)
            assert torch.equal(target, expected)


def test_same_samples_for_any_num_workers(reinforced):
    pixels0, labels0 = _epoch(reinforced.with_format(None), num_workers=0)
    pixels2, labels2 = _epoch(reinforced.with_format(None), num_workers=2)
    assert torch.equal(pixels0, pixels2) and torch.equal(labels0, labels2)


def test_each_epoch_draws_other_records(reinforced):
    transform = _transform(reinforced)
    first = [transform.choose(k) for k in reinforced["key"]]
    transform.set_epoch(1)
    assert [transform.choose(k) for k in reinforced["key"]] != first
    pixels_a, _ = _epoch(reinforced.with_format(None), 0, epoch=0)
    pixels_b, _ = _epoch(reinforced.with_format(None), 0, epoch=1)
    assert not torch.equal(pixels_a, pixels_b)


def test_set_epoch_reaches_persistent_workers(reinforced):
    transform = _transform(reinforced)
    ds = transform.attach(reinforced.with_format(None))
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True)
    first = torch.cat([b["labels"] for b in loader])
    transform.set_epoch(5)
    second = torch.cat([b["labels"] for b in loader])
    assert not torch.equal(first, second)
    assert torch.equal(second, _epoch(reinforced.with_format(None), 0, epoch=5)[1])


def test_metadata_only_layout_joins_by_key_after_shuffle(images, reinforced):
    """Reinforcements in their own table; the image dataset shuffled: rows are matched by key, not position."""
    table = reinforced.select_columns(["key", "reinforcements"])
    transform = ReinforcedTransform(table, policy="rrc+ra_re", size=24, seed=11, num_classes=10)
    shuffled = transform.attach(images.shuffle(seed=0))
    ref = _transform(reinforced)
    for row_index in range(5):
        key = images.shuffle(seed=0)[row_index]["key"]
        expected = ref.replay(images[int(key.split("-")[1])]["image"], key)
        assert torch.equal(shuffled[row_index]["pixel_values"], expected[0])


def test_pickles_with_its_epoch(reinforced):
    transform = _transform(reinforced)
    transform.set_epoch(3)
    clone = pickle.loads(pickle.dumps(transform))
    assert clone.epoch == 3
    row = reinforced[0]
    assert torch.equal(clone.replay(row["image"], row["key"])[0], transform.replay(row["image"], row["key"])[0])


def test_mixing_policy_fetches_partner_by_key(images, teacher):
    policy = create_policy("rrc+mix")
    table = reinforce_in_memory(images.select(range(12)), policy, teacher, 3, K, seed=1)
    transform = ReinforcedTransform(table, policy=policy, size=24, images=images.select(range(12)), num_classes=10)
    for row in images.select(range(12)):
        for index in range(3):
            pixel_values, _ = transform.replay(row["image"], row["key"], index)
            ids = torch.topk(teacher(pixel_values[None])[0], K).indices.tolist()
            assert ids == transform.record(row["key"], index)["ids"]


def test_missing_columns_name_the_fix(reinforced, images):
    with pytest.raises(MissingColumnError, match="no column 'reinforcements' \\(reinforcements_column\\)") as info:
        ReinforcedTransform(images, policy="rrc+ra_re")
    assert isinstance(info.value, KeyError)
    transform = _transform(reinforced)
    with pytest.raises(MissingColumnError, match="image_column="):
        transform.attach(reinforced.rename_column("image", "img"))
    with pytest.raises(MissingColumnError, match="input_columns"):
        transform({"img": [], "key": []})


def test_unknown_key_is_a_data_mismatch(reinforced, images):
    transform = _transform(reinforced)
    with pytest.raises(DataMismatchError, match="'not-a-key' is not in the reinforcements; .* different versions"):
        transform.replay(images[0]["image"], "not-a-key")


def test_class_count_mismatch(reinforced):
    transform = _transform(reinforced)
    transform.check_num_classes(10)
    with pytest.raises(ClassCountMismatchError, match="num_classes=N"):
        transform.check_num_classes(1000)
    with pytest.raises(ClassCountMismatchError):
        _transform(reinforced, num_classes=3).replay(reinforced[0]["image"], reinforced[0]["key"], 0)


# -- one replay for map-style and streamed rows ---------------------------------------------------------------------
def test_records_already_read_replay_like_records_looked_up(reinforced):
    transform = _transform(reinforced)
    transform.set_epoch(2)
    for row in reinforced.select(range(6)):
        own = row["reinforcements"]  # the dicts a streamed self-contained row holds
        assert transform.record(row["key"], records=own) == transform.record(row["key"])
        for got, expected in zip(transform.replay(row["image"], row["key"], records=own),
                                 transform.replay(row["image"], row["key"]), strict=True):
            assert torch.equal(got, expected)
    with pytest.raises(DataMismatchError, match="holds no reinforcement records"):
        transform.replay(reinforced[0]["image"], reinforced[0]["key"], records=[])


@pytest.mark.parametrize("layout", ["self_contained", "metadata_only"])
def test_streamed_replay_equals_map_style_for_each_seed_and_epoch(layout, images, reinforced):
    from hf_dr.data.streaming import empty_reinforcements, stream_replay

    if layout == "self_contained":
        table = empty_reinforcements(reinforced.features, "key", "reinforcements")
        source, records_column = reinforced, "reinforcements"
    else:
        table, source, records_column = reinforced.select_columns(["key", "reinforcements"]), images, None
    streamed_transform = ReinforcedTransform(table, policy="rrc+ra_re", size=24, seed=11, num_classes=10)
    stream = stream_replay(source.to_iterable_dataset(), streamed_transform, "image", "key", records_column)
    mapped_transform = _transform(reinforced)
    mapped = mapped_transform.attach(reinforced.with_format(None))
    for epoch in (0, 4):
        stream.set_epoch(epoch)
        mapped_transform.set_epoch(epoch)
        rows = list(stream)
        assert [r["key"] for r in rows] == reinforced["key"]
        for row, streamed in enumerate(rows):
            assert torch.equal(streamed["pixel_values"], mapped[row]["pixel_values"])
            assert torch.equal(streamed["labels"], mapped[row]["labels"])


# -- class count, statistics ----------------------------------------------------------------------------------------
def test_class_count_is_read_from_the_classlabel_column(reinforced):
    from hf_dr.data.columns import class_count

    assert _transform(reinforced).num_classes == class_count(reinforced, "label") == 10
    assert class_count(reinforced, None) is None and class_count(reinforced, "key") is None
    with pytest.raises(InvalidConfigError, match="num_classes is unknown"):
        ReinforcedTransform(reinforced, policy="rrc+ra_re", label_column="key")


def test_replayed_pixels_are_functional_normalize_of_the_replayed_view(reinforced):
    transform = ReinforcedTransform(reinforced, policy="rrc+ra_re", size=24, seed=11, mean=(0.3,), std=(0.2,))
    row = reinforced[3]
    record = transform.record(row["key"], 2)
    view = transform.policy.apply(row["image"], record["params"], 24)
    assert torch.equal(transform.replay(row["image"], row["key"], 2)[0], normalize(view, (0.3,), (0.2,)))


def test_the_teachers_batched_input_equals_the_replayed_pixels(reinforced, tmp_path):
    """Generation normalises views in batches, replay one sample at a time: identical float32 values."""
    from hf_dr.models.teacher import Teacher, load_member
    from tests.utils_teacher import save_teacher

    member = load_member(save_teacher(str(tmp_path), seed=0, size=24))
    seen = []
    member.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    teacher = Teacher([member])
    transform = ReinforcedTransform(reinforced, policy="rrc+ra_re", size=24, seed=11,
                                    data_config=member.data_config)
    rows = reinforced.select(range(8))
    records = [transform.record(row["key"], 1) for row in rows]
    views = torch.stack([transform.policy.apply(row["image"], record["params"], 24)
                         for row, record in zip(rows, records, strict=True)])
    with torch.inference_mode():
        teacher([views])
    replayed = torch.stack([transform.replay(row["image"], row["key"], 1)[0] for row in rows])
    assert seen[0].dtype == torch.float32 and torch.equal(seen[0], replayed)


# -- partners and other rows found by key ---------------------------------------------------------------------------
def test_key_index_names_the_missing_key_the_table_and_the_fix():
    index = KeyIndex(["a", "b", "c"], where="the image dataset", fix="pass images=<the full dataset>.")
    assert [index.row(k) for k in "cab"] == [2, 0, 1] and "b" in index and len(index) == 3
    with pytest.raises(DataMismatchError, match=r"^sample key 'z' is not in the image dataset; pass images=<"):
        index.row("z")


def test_missing_mixing_partner_names_the_key_and_the_fix(images, teacher):
    policy = create_policy("rrc+mix")
    subset = images.select(range(12))
    table = reinforce_in_memory(subset, policy, teacher, 3, K, seed=1)
    transform = ReinforcedTransform(table, policy=policy, size=24, images=subset.select(range(1)), num_classes=10)
    records = [transform.record(key, i) for key in subset["key"][1:] for i in range(3)]
    mixing = [r for r in records if policy.partner_key(r["params"]) not in (None, subset[0]["key"])]
    assert mixing, "the seeded records include mixing ones"
    with pytest.raises(DataMismatchError, match="is not in the image dataset; .*images=<the full dataset>"):
        transform.partner_for(mixing[0])


def test_generation_and_replay_fetch_the_same_partner(images, teacher):
    """ViewRenderer (generation) and ReinforcedTransform (replay) both find a mixing partner's image by key."""
    from hf_dr.augment.ops import PartnerPool
    from hf_dr.data.columns import encoded_images, image_feature
    from hf_dr.data.source_keys import scan_keys, scan_sizes
    from hf_dr.generate.plan import ChunkPlan, Shard
    from hf_dr.generate.render import ViewRenderer
    from hf_dr.models.teacher import ViewSpec

    policy, subset = create_policy("rrc+mix"), images.select(range(10))
    keys = scan_keys(subset, "image", "key")
    renderer = ViewRenderer(encoded_images(subset, "image"), image_feature(subset, "image"), keys,
                            ChunkPlan([Shard(0, 0, len(keys))], 2, 20), policy, [ViewSpec(3, 24, 24, "bilinear")],
                            seed=3, batch_size=20, partners=PartnerPool(keys, scan_sizes(subset, "image")))
    item = renderer[0]
    table = reinforce_in_memory(subset.select(range(1)), policy, teacher, 1, K)
    transform = ReinforcedTransform(table, policy=policy, size=24, images=subset, num_classes=10)
    mixed = 0
    for slot, (row, _) in enumerate(renderer.chunks[0].views()):
        record = {"params": policy.decode(item["params"][slot].as_py())}
        mixed += policy.partner_key(record["params"]) is not None
        expected = policy.apply(subset[row]["image"], record["params"], 24, transform.partner_for(record))
        assert torch.equal(item["views"][0][slot], expected)
    assert mixed > 0


# -- bound to the images it replays (hf-dr issue 21) ----------------------------------------------------------------
def _with_digests(table, images):
    """``table`` with the image digest column a run keyed by a column stores (the run's own scan)."""
    from hf_dr.data.schema import DIGEST_COLUMN
    from hf_dr.data.source_keys import scan_digests

    return table.add_column(DIGEST_COLUMN, scan_digests(images, "image"))


def _replaced(images, row, by):
    """``images`` with the image of ``row`` replaced by row ``by``'s (exact bytes), every key unchanged."""
    from hf_dr.data.columns import encoded_images

    cells = list(encoded_images(images, "image")["image"])
    cells[row] = cells[by]
    return images.remove_columns("image").add_column("image", cells, feature=datasets.Image()) \
        .select_columns(images.column_names)


def _swapped_keys(images, one, other):
    keys = list(images["key"])
    keys[one], keys[other] = keys[other], keys[one]
    return images.remove_columns("key").add_column("key", keys).select_columns(images.column_names)


@pytest.fixture(scope="module")
def digested(images, teacher):
    """Metadata-only rows with the image digests of ``images``."""
    return _with_digests(reinforce_in_memory(images, create_policy("rrc+ra_re"), teacher, N, K, seed=3), images)


def test_bare_transform_refuses_an_image_replaced_under_its_key(images, digested):
    changed = _replaced(images, 7, 8)
    changed.set_transform(_transform(digested, images=changed))  # the bare flow: no join checked anything
    assert changed[6]["labels"].shape == (10,)
    with pytest.raises(DataMismatchError, match=r"the image of sample key 'digit-00007' \(row 7 of the image dataset\)"
                                                r" is not the one that was reinforced.*verify_images='off'"):
        changed[7]
    attached = _transform(digested).attach(_replaced(images, 7, 8))  # attach binds the dataset it is set on
    with pytest.raises(DataMismatchError, match="sample key 'digit-00007'"):
        attached[5:9]
    assert _transform(digested, verify_images="off").attach(_replaced(images, 7, 8))[7]["labels"].shape == (10,)
    shuffled = _transform(digested).attach(_replaced(images, 7, 8).shuffle(seed=1))  # an indices mapping
    row = list(shuffled.with_format(None)["key"]).index("digit-00007")
    with pytest.raises(DataMismatchError, match=rf"sample key 'digit-00007' \(row {row} of the image dataset\)"):
        list(DataLoader(shuffled, batch_size=8))


def test_the_unchanged_images_replay_as_before(images, digested):
    checked = _epoch(images.with_format(None), 0, transform=_transform(digested, images=images))
    unchecked = _epoch(images.with_format(None), 0, transform=_transform(digested, verify_images="off"))
    assert torch.equal(checked[0], unchecked[0]) and torch.equal(checked[1], unchecked[1])
    assert torch.equal(_epoch(images.with_format(None), 2, transform=_transform(digested))[0], checked[0])


def test_decoded_images_with_no_dataset_to_read_bytes_from_are_refused(images, digested):
    with pytest.raises(InvalidConfigError, match=r"attach\(dataset\), or pass images=dataset"):
        _transform(digested)({"image": images[:2]["image"], "key": images[:2]["key"]})


def test_every_row_is_checked_when_first_read_any_row_of_200(teacher):
    many = digits_dataset(200)
    table = _with_digests(reinforce_in_memory(many, create_policy("rrc"), teacher, 2, K), many)
    for source in (_replaced(many, 199, 3), _swapped_keys(many, 120, 57)):
        dataset = ReinforcedTransform(table, policy="rrc", size=24, num_classes=10).attach(source)
        with pytest.raises(DataMismatchError, match=r"sample key 'digit-00(199|057|120)'"):
            list(DataLoader(dataset, batch_size=16, num_workers=0))


def test_a_mixing_partner_is_checked_too(images, teacher):
    policy = create_policy("rrc+mix")
    table = _with_digests(reinforce_in_memory(images.select(range(12)), policy, teacher, 3, K, seed=1),
                          images.select(range(12)))
    changed = _replaced(images.select(range(12)), 7, 8)
    transform = ReinforcedTransform(table, policy=policy, size=24, images=changed, num_classes=10)
    key, index = next((key, index) for key in list(changed["key"]) if key != "digit-00007" for index in range(3)
                      if policy.partner_key(transform.record(key, index)["params"]) == "digit-00007")
    image = changed[list(changed["key"]).index(key)]["image"]
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-00007' \(row 7 of the image dataset\)"):
        transform.replay(image, key, index)


@pytest.mark.parametrize(("options", "message"), [
    ({"size": "28"}, r"size should be a positive int or \(height, width\) of positive ints, but got '28'"),
    ({"size": 0}, "size should be a positive int .* but got 0"),
    ({"size": (24, -1)}, r"but got \(24, -1\)"),
    ({"std": (0.5, 0.0, 0.5)}, r"std should be a non-empty sequence of positive finite numbers .*NaN pixels"),
    ({"mean": "0.5"}, "mean should be a non-empty sequence of finite numbers"),
    ({"seed": 0.5}, r"seed should be an integer, but got 0.5 \(float\)"),
    ({"seed": True}, "seed should be an integer"),
    ({"data_config": {"input_size": (3, 0, 24), "mean": (0.5,), "std": (0.5,)}}, "data_config should be a timm"),
    ({"data_config": {"input_size": (3, 24, 24), "mean": (0.5,), "std": (0,)}}, r"data_config\['std'\] should be"),
    ({"verify_images": "some"}, "verify_images should be one of"),
])
def test_view_options_that_would_train_wrong_are_refused(reinforced, options, message):
    with pytest.raises(InvalidConfigError, match=message):
        _transform(reinforced, **options)


def test_a_data_config_whose_channels_contradict_the_views_is_refused(reinforced, tmp_path):
    gray = {"input_size": (1, 24, 24), "mean": (0.5,), "std": (0.5,)}
    with pytest.raises(DataMismatchError, match=r"the view of sample key 'digit-00000' has 3 channel\(s\), but "
                                                r"data_config's input_size asks for 1.*in_chans=3"):
        _transform(reinforced, data_config=gray).attach(reinforced.with_format(None))[0]
    rgb = _transform(reinforced, data_config={**gray, "input_size": (3, 24, 24)}).attach(reinforced.with_format(None))
    assert rgb[0]["pixel_values"].shape == (3, 24, 24)


def test_a_recorded_image_mode_refuses_a_contradicting_data_config():
    from hf_dr.data.view_options import check_channels

    with pytest.raises(InvalidConfigError, match=r"input_size has 3 channel\(s\), but the run's teacher saw 'L' "
                                                 r"images \(1 channel\(s\)\).*in_chans=1"):
        check_channels(3, "L", "the run's teacher saw")
    check_channels(1, "L", "the run's teacher saw")


def test_null_keys_are_refused_naming_the_row(reinforced, images, digested):
    keys = list(images["key"])
    keys[5] = None
    nulls = images.remove_columns("key").add_column("key", keys, feature=datasets.Value("string"))
    with pytest.raises(DataMismatchError, match=r"1 sample key\(s\) are missing \(null\), the first at row 5"):
        _transform(digested, images=nulls)
    with pytest.raises(DataMismatchError, match=r"row 1 of this batch has no sample key \(null in column 'key'\)"):
        _transform(reinforced)({"image": images[4:6]["image"], "key": keys[4:6]})


def test_a_stream_is_refused_naming_load_reinforced(reinforced):
    with pytest.raises(InvalidConfigError, match=r"streamed datasets.IterableDataset.*hf_dr.load_reinforced\(\.\.\., "
                                                 r"streaming=True\)"):
        _transform(reinforced.to_iterable_dataset())
    with pytest.raises(InvalidConfigError, match="images is a streamed"):
        _transform(reinforced, images=reinforced.to_iterable_dataset())
    with pytest.raises(InvalidConfigError, match="the dataset to attach to is a streamed"):
        _transform(reinforced).attach(reinforced.to_iterable_dataset())


def test_preloaded_rows_are_checked_against_the_preloaded_images(images, digested):
    from hf_dr.data.preloaded import PreloadedDataset

    preloaded = PreloadedDataset(_replaced(images, 7, 8), _transform(digested))
    assert preloaded[6]["labels"].shape == (10,)
    with pytest.raises(DataMismatchError, match=r"sample key 'digit-00007' \(row 7 of the image dataset\)"):
        preloaded[7]
