"""Keys from the image cell's file name (``key_from="path"``, ``--key-from path``), the key source for ImageNet on the
Hub (``image`` and ``label`` only, and byte-identical files under different names): scanned, refused when a row has
no path or two rows share a name, recorded in the run, and used by every consumer that recomputes keys (reinforce,
verify, show, training, push and load_reinforced, map-style and streamed), on an imagefolder read from files on disk.
"""

from __future__ import annotations

import json
import os
import shutil

import datasets
import pytest
import torch
from huggingface_hub import HfApi

from hf_dr import ReinforcedTransform, load_reinforced, push_to_hub
from hf_dr.cli import main as cli_main
from hf_dr.data.columns import encoded_images
from hf_dr.data.description import read_description
from hf_dr.data.keys import image_digest
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.data.source_keys import scan_keys
from hf_dr.data.sources import load_source
from hf_dr.errors import DataMismatchError, InvalidConfigError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.run_inspection import load_target, sample_grid
from hf_dr.generate.verify import verify
from hf_dr.train.inputs import DataConfig, training_data
from tests.data_utils import digit_images, digits_dataset
from tests.utils_hub import server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

COUNT, NUM_SAMPLES, TOPK, SIZE = 12, 2, 3, 32
POLICY = "rrc+ra_re"
COPY = "copy-of-digit-00000.png"  # byte for byte digit-00000.png, under another name


def write_imagefolder(root: str, count: int = COUNT) -> str:
    """``count`` real digits as PNG files ``root/train/<label>/digit-xxxxx.png``, and :data:`COPY`, a byte-identical
    copy of the first; returns ``root``."""
    images, labels = digit_images(count)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        os.makedirs(os.path.join(root, "train", str(label)), exist_ok=True)
        image.save(os.path.join(root, "train", str(label), f"digit-{i:05d}.png"))
    first = os.path.join(root, "train", str(labels[0]), "digit-00000.png")
    shutil.copyfile(first, os.path.join(root, "train", str(labels[0]), COPY))
    return root


def file_names(dataset: datasets.Dataset) -> list[str]:
    return [os.path.basename(cell["path"]) for cell in encoded_images(dataset, "image")["image"]]


def run(dataset: datasets.Dataset, members: list[dict], output_dir, **options) -> str:
    arguments = {"policy": POLICY, "num_samples": NUM_SAMPLES, "topk": TOPK, "seed": 0, "key_from": "path",
                 "shard_size": 8, "batch_size": 16, "num_workers": 0, "progress": False, **options}
    return reinforce(dataset, members, output_dir=str(output_dir), **arguments)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return write_imagefolder(str(tmp_path_factory.mktemp("imagefolder")))


@pytest.fixture(scope="module")
def images(folder) -> datasets.Dataset:
    return load_source(folder, split="train")


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[dict]:
    return [save_teacher(str(tmp_path_factory.mktemp("teachers")), seed=0)]


@pytest.fixture(scope="module")
def run_dir(images, members, folder, tmp_path_factory) -> str:
    return run(images, members, tmp_path_factory.mktemp("path-run") / "out",
               source={"id": folder, "split": "train"})


# -- scanning -------------------------------------------------------------------------------------------------------
def test_content_keys_refuse_identical_files_and_point_to_path_keys(images):
    """The ImageNet case: two byte-identical files share a content key; the error names both rows and the fix."""
    rows = sorted(file_names(images).index(name) for name in ("digit-00000.png", COPY))
    with pytest.raises(DataMismatchError, match=rf"rows {rows[0]} and {rows[1]} share the key .*"
                                                r"key_from='path' / --key-from path"):
        scan_keys(images, "image")


def test_path_keys_are_the_stored_file_names(images):
    """Keys are the file names of the cells' stored paths: the identical copy gets its own key."""
    keys = scan_keys(images, "image", key_from="path")
    assert keys == file_names(images) and len(set(keys)) == COUNT + 1
    assert {"digit-00000.png", COPY} <= set(keys)
    assert all(os.path.isabs(cell["path"]) for cell in encoded_images(images, "image")["image"])  # stored: full path


def test_rows_without_a_path_are_refused_naming_the_first_and_the_fix():
    """Images made in memory carry no path: refused naming the first such row and the ways out."""
    mixed = datasets.concatenate_datasets([
        datasets.Dataset.from_dict({"image": [{"bytes": None, "path": p} for p in ["a.png", "b.png"]]},
                                   features=datasets.Features({"image": datasets.Image(decode=False)})),
        digits_dataset(2, with_keys=False).select_columns(["image"]).cast_column("image",
                                                                                  datasets.Image(decode=False)),
    ])
    with pytest.raises(DataMismatchError, match=r"row 2 .*has no file path.*key_column= / --key-column"):
        scan_keys(mixed, "image", key_from="path")


def test_repeated_file_names_are_refused_naming_both_rows(tmp_path):
    """The same name in two class folders: the file names are not unique keys."""
    images, _ = digit_images(2)
    for label, image in zip(("cat", "dog"), images, strict=True):
        os.makedirs(tmp_path / "train" / label)
        image.save(tmp_path / "train" / label / "1.png")
    with pytest.raises(DataMismatchError, match=r"rows 0 and 1 share the key '1.png' from the image file names"):
        scan_keys(load_source(str(tmp_path), split="train"), "image", key_from="path")


def test_key_from_and_key_column_conflicts_are_refused(images, members, tmp_path):
    with pytest.raises(InvalidConfigError, match=r"key_column= .*or key_from='path'.*not both"):
        scan_keys(images.add_column("id", list(range(len(images)))), "image", "id", key_from="path")
    with pytest.raises(InvalidConfigError, match=r"key_from should be one of \['column', 'content', 'path'\]"):
        scan_keys(images, "image", key_from="name")
    with pytest.raises(InvalidConfigError, match=r"key_from='column' needs key_column="):
        run(images, members, tmp_path / "out", key_from="column")
    assert not os.path.exists(tmp_path / "out")


# -- the run --------------------------------------------------------------------------------------------------------
def test_reinforce_by_path_records_the_key_source_and_digests(run_dir, images):
    config = ReinforceConfig.load(run_dir)
    assert config.columns.to_dict() == {"image": "image", "label": "label", "key": None, "key_source": "path"}
    table = load_run_records(run_dir, keep_in_memory=True)
    assert table["key"][:] == file_names(images)
    assert read_description(table).columns.key_source == "path"
    cells = encoded_images(images, "image")["image"]
    assert table[DIGEST_COLUMN][:] == [image_digest(cell) for cell in cells]
    rows = [table["key"][:].index(name) for name in ("digit-00000.png", COPY)]
    assert table[DIGEST_COLUMN][rows[0]] == table[DIGEST_COLUMN][rows[1]]  # same bytes, two keys, two samples
    assert table[rows[0]]["reinforcements"] != table[rows[1]]["reinforcements"]


def test_cli_key_from_path(folder, members, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(members))
    out = str(tmp_path / "out")
    arguments = ["reinforce", "--dataset", folder, "--teacher-spec", str(spec), "--num-samples", "2", "--topk", "3",
                 "--output-dir", out, "--num-workers", "0", "--no-progress"]
    assert cli_main(arguments) == 1
    assert "--key-from path" in capsys.readouterr().err  # content keys refuse the copy and name the flag
    assert cli_main([*arguments, "--key-from", "path"]) == 0
    assert ReinforceConfig.load(out).columns.key_source == "path"
    assert COPY in load_run_records(out)["key"][:]
    assert cli_main([*arguments, "--key-from", "path", "--key-column", "label", "--overwrite"]) == 1
    assert "not both" in capsys.readouterr().err


def test_verify_and_show_recompute_path_keys(run_dir, images):
    config = ReinforceConfig.load(run_dir)
    report = verify(load_run_records(run_dir), images, config, num_pairs=10)
    assert report.passed and not report.source_changes, report.summary()
    reinforcements, loaded, config = load_target(run_dir)
    grid = sample_grid(reinforcements, loaded, config, key=COPY, count=2, size=32)
    assert grid.width > 0
    with pytest.raises(DataMismatchError, match="sample key 'nope.png' is not in the source images"):
        sample_grid(reinforcements, loaded, config, key="nope.png", count=2, size=32)


def test_attaching_to_images_with_their_own_ids_names_the_run_keys_and_the_fix(run_dir, images):
    """A run keyed by file name attached to images whose "key" column holds their own ids: before, the first sample
    failed with "sample key 'id-0' is not in the reinforcements; ... different versions of the dataset"; now attach
    refuses at once, saying how the run keyed its rows and how to add its keys. With them added it replays."""
    from hf_dr.data.source_keys import keyed

    own_ids = images.add_column("key", [f"id-{i}" for i in range(len(images))])
    replay = ReinforcedTransform(load_run_records(run_dir), size=SIZE)
    with pytest.raises(DataMismatchError, match=r"keyed its rows by image file name.*'id-0' and 7 more.*keyed\("):
        replay.attach(own_ids)
    rekeyed, _ = keyed(own_ids, "image", None, "path", "key")
    assert replay.attach(rekeyed)[0]["pixel_values"].shape == (3, SIZE, SIZE)


def test_training_data_joins_by_path_key(run_dir, images):
    data = DataConfig(size=(SIZE, SIZE), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), in_chans=3)
    dataset, transform = training_data(images, data, run_dir=run_dir)
    names = file_names(images)
    for row in range(len(images)):
        sample = dataset[row]
        expected = transform.replay(images[row]["image"], names[row])
        assert torch.equal(sample["pixel_values"], expected[0]) and torch.equal(sample["labels"], expected[1])


# -- on the Hub -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def on_hub(hub, images, members, tmp_path_factory):
    """The imagefolder pushed as a source repo (datasets embeds the bytes and keeps the file names), reinforced by
    path from the Hub copy, and pushed in both layouts."""
    source_id = unique_repo("files-by-path")
    images.push_to_hub(source_id)
    commit = HfApi().dataset_info(source_id).sha
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    source = datasets.load_dataset(source_id, split="train", revision=commit, cache_dir=cache_dir)
    out = run(source, members, tmp_path_factory.mktemp("hub-run") / "out",
              source={"id": source_id, "revision": commit, "split": "train"})
    metadata_only, self_contained = unique_repo("path-meta"), unique_repo("path-full")
    push_to_hub(out, metadata_only, layout="metadata-only")
    push_to_hub(out, self_contained, dataset=source)
    return source, out, metadata_only, self_contained, cache_dir


def test_the_hub_copy_keeps_the_file_names(on_hub, images):
    source = on_hub[0]
    assert scan_keys(source, "image", key_from="path") == file_names(images)
    assert not os.path.isabs(encoded_images(source, "image")[0]["image"]["path"])  # only the name was pushed


@pytest.mark.parametrize("layout", ["metadata_only", "self_contained"])
def test_load_reinforced_by_path(on_hub, layout):
    source, out, metadata_only, self_contained, cache_dir = on_hub
    repo = metadata_only if layout == "metadata_only" else self_contained
    reference = ReinforcedTransform(load_run_records(out, keep_in_memory=True), POLICY, size=SIZE,
                                    images=source.add_column("key", scan_keys(source, "image", key_from="path")))
    loaded = load_reinforced(repo, size=SIZE, cache_dir=cache_dir)
    by_name = dict(zip(scan_keys(source, "image", key_from="path"), source["image"], strict=True))
    keys = loaded.with_format("arrow")[:].column("key").to_pylist()
    assert sorted(keys) == sorted(by_name) and COPY in keys
    for row, key in enumerate(keys):
        sample, expected = loaded[row], reference.replay(by_name[key], key)
        assert torch.equal(sample["pixel_values"], expected[0]) and torch.equal(sample["labels"], expected[1])
    streamed = list(load_reinforced(repo, size=SIZE, cache_dir=cache_dir, streaming=True))
    assert [s["key"] for s in streamed] == keys
    for sample in streamed:
        expected = reference.replay(by_name[sample["key"]], sample["key"])
        assert torch.equal(sample["pixel_values"], expected[0]) and torch.equal(sample["labels"], expected[1])


def test_load_reinforced_refuses_a_source_without_paths(on_hub):
    source, _, metadata_only, _, cache_dir = on_hub
    stripped = encoded_images(source, "image").map(lambda row: {"image": {"bytes": row["image"]["bytes"],
                                                                          "path": None}})
    stripped = stripped.cast_column("image", datasets.Image()).add_column("label", source["label"])
    with pytest.raises(DataMismatchError, match=r"row 0 .*has no file path"):
        load_reinforced(metadata_only, size=SIZE, cache_dir=cache_dir, source=stripped)
    with pytest.raises(DataMismatchError, match=r"row 0 .*has no file path"):
        next(iter(load_reinforced(metadata_only, size=SIZE, cache_dir=cache_dir, source=stripped, streaming=True)))


def test_path_keys_need_an_image_column(images):
    with pytest.raises(InvalidConfigError, match=r"column 'label' holds .*not images"):
        scan_keys(images, "label", key_from="path")
