"""Content keys and image sizes are computed once per dataset version and reused (issue 12): count the hashes."""

from __future__ import annotations

import logging
import os

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import hf_dr.data.source_keys as source_keys
from hf_dr.data.columns import encoded_images
from hf_dr.data.keys import DIGEST_SAMPLE_SIZE, content_key
from hf_dr.data.scan_cache import cache_path
from hf_dr.data.source_keys import scan_keys
from hf_dr.errors import CorruptImageError
from hf_dr.generate.render import partner_sizes
from hf_dr.generate.run import reinforce
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

ROWS = 200


@pytest.fixture
def on_disk(tmp_path) -> datasets.Dataset:
    """A key-less dataset loaded from disk, as a user's: it has cache files, so its scans can be cached."""
    digits_dataset(ROWS, size=16).remove_columns("key").save_to_disk(str(tmp_path / "digits"))
    return datasets.load_from_disk(str(tmp_path / "digits"))


@pytest.fixture
def hashes(monkeypatch) -> list[int]:
    """Counts the content hashes source_keys.py computes."""
    count = [0]

    def counting(cell):
        count[0] += 1
        return content_key(cell)

    monkeypatch.setattr(source_keys, "content_key", counting)
    return count


def test_content_keys_are_hashed_once_per_dataset_version(on_disk, hashes, tmp_path):
    first = scan_keys(on_disk, "image")
    assert hashes[0] == ROWS and os.path.exists(cache_path(on_disk, "content-keys-image"))
    again = scan_keys(datasets.load_from_disk(str(tmp_path / "digits")), "image")  # a new process would do this
    assert again == first and hashes[0] == ROWS + DIGEST_SAMPLE_SIZE  # only the 64 checked rows


def test_a_cache_that_disagrees_with_the_rows_is_recomputed(on_disk, hashes, caplog):
    keys = scan_keys(on_disk, "image")
    path = cache_path(on_disk, "content-keys-image")
    table = pq.read_table(path)
    forged = pa.table({"value": pa.array(["forged"] * ROWS)}).replace_schema_metadata(table.schema.metadata)
    pq.write_table(forged, path)
    with caplog.at_level(logging.WARNING):
        assert scan_keys(on_disk, "image") == keys
    assert "do not match" in caplog.text and hashes[0] == 2 * ROWS + DIGEST_SAMPLE_SIZE


def test_images_stored_as_file_paths_are_hashed_every_time(tmp_path, hashes):
    """A cell that refers to a file (no embedded bytes) is not cached: the file can change in place, under the same
    fingerprint and the same dataset files, and its key must change with it."""
    paths = []
    for i, image in enumerate(digits_dataset(ROWS, size=16)["image"]):
        paths.append(str(tmp_path / f"{i}.png"))
        image.save(paths[-1])
    (tmp_path / "images.csv").write_text("image\n" + "\n".join(paths) + "\n")

    def load() -> datasets.Dataset:  # a CSV of paths, as users load one: cached Arrow files, cells without bytes
        table = datasets.load_dataset("csv", data_files=str(tmp_path / "images.csv"), split="train",
                                      cache_dir=str(tmp_path / "cache"))
        return table.cast_column("image", datasets.Image())

    before = scan_keys(load(), "image")
    assert load().cache_files and cache_path(load(), "content-keys-image", "image") is None
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(paths[1])  # row 1 is not among the 64 checked
    after = scan_keys(load(), "image")
    assert after[1] != before[1] and after[2:] == before[2:] and hashes[0] == 2 * ROWS


def test_in_memory_datasets_are_not_cached(hashes):
    dataset = digits_dataset(10, size=16).remove_columns("key")
    scan_keys(dataset, "image")
    scan_keys(dataset, "image")
    assert hashes[0] == 20 and cache_path(dataset, "content-keys-image") is None


def test_sizes_are_read_once_per_dataset_version(on_disk, monkeypatch):
    images = encoded_images(on_disk, "image")
    keys = scan_keys(on_disk, "image")
    reads = [0]
    header_size = source_keys.header_size

    def counting(cell):
        reads[0] += 1
        return header_size(cell)

    monkeypatch.setattr("hf_dr.generate.render.header_size", counting)
    sizes = partner_sizes(images, keys)
    assert list(sizes) == [(16, 16)] * ROWS and reads[0] == ROWS
    again = partner_sizes(encoded_images(on_disk, "image"), keys)
    assert list(again) == list(sizes) and reads[0] == ROWS + DIGEST_SAMPLE_SIZE


def test_a_cached_unreadable_header_still_raises(tmp_path):
    rows = {"image": [{"bytes": b"not an image", "path": None}, *digits_dataset(2, size=16)["image"]]}
    features = datasets.Features({"image": datasets.Image()})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "broken"))
    images = encoded_images(datasets.load_from_disk(str(tmp_path / "broken")), "image")
    assert list(partner_sizes(images, ["a", "b", "c"], on_bad_image="skip")) == [(1, 1), (16, 16), (16, 16)]
    with pytest.raises(CorruptImageError, match="row 0 .key 'a'"):
        partner_sizes(images, ["a", "b", "c"])


def test_a_resume_hashes_only_the_checked_rows(on_disk, hashes, tmp_path):
    teacher = [save_teacher(str(tmp_path / "teacher"))]
    options = {"policy": "rrc", "num_samples": 2, "topk": 3, "seed": 0, "shard_size": 64, "batch_size": 32,
               "num_workers": 0, "progress": False, "output_dir": str(tmp_path / "run")}
    reinforce(on_disk, teacher, **options)
    first = hashes[0]
    reinforce(datasets.load_from_disk(str(tmp_path / "digits")), teacher, **options)  # the resume of a new process
    assert first == ROWS and hashes[0] - first == DIGEST_SAMPLE_SIZE
