"""The bundled datasets: scikit-learn's digits (a fixed stratified split) and the generated shapes (the same pixels
for the same seed), read by every command's ``--dataset`` through load_source, with a local folder of the same name
winning."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest

from hf_dr.data.bundled import BUNDLED, SHAPE_NAMES, bundled_name, draw_shapes, load_bundled
from hf_dr.data.sources import load_source
from hf_dr.errors import InvalidConfigError


def test_digits_split_is_fixed_stratified_and_keyed():
    train, test = load_bundled("digits", "train"), load_bundled("digits", "test")
    assert (len(train), len(test)) == (1297, 500)
    keys = list(train["key"]) + list(test["key"])
    assert len(set(keys)) == 1797  # every scan once, in one split only
    counts = np.bincount(test["label"], minlength=10)
    assert counts.min() >= 45 and counts.max() <= 56  # ~10% of each class
    image = test[0]["image"]
    assert image.size == (28, 28) and image.mode == "L" and np.asarray(image).max() > 200  # scaled from 0-16
    from sklearn.datasets import load_digits

    index = int(test[0]["key"].split("-")[1])
    assert test[0]["label"] == load_digits().target[index]


def test_shapes_are_the_same_pixels_for_the_same_seed_and_differ_across_classes():
    labels = np.arange(10)
    first, again, other = draw_shapes(labels, 0), draw_shapes(labels, 0), draw_shapes(labels, 1)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, other, strict=True))
    test = load_bundled("shapes", "test")
    assert len(test) == 2000 and test.features["label"].names == list(SHAPE_NAMES)
    assert np.bincount(test["label"]).tolist() == [200] * 10
    # a class's mean image is its own: the nearest class mean of each class mean is itself
    pixels = np.stack([np.asarray(im, dtype=np.float32) for im in test.select(range(1000))["image"]])
    means = np.stack([pixels[np.array(test["label"][:1000]) == c].mean(0) for c in range(10)])
    assert all(np.argmin(((means - means[c]) ** 2).sum((1, 2))) == c for c in range(10))


def test_load_source_reads_the_bundled_names_and_a_local_folder_wins(tmp_path, monkeypatch):
    assert bundled_name("Fashion_MNIST") == "fashion-mnist" and bundled_name("org/digits") is None
    assert set(BUNDLED) == {"fashion-mnist", "digits", "shapes"}
    assert list(load_source("digits", "test")["key"]) == list(load_bundled("digits", "test")["key"])
    local = datasets.Dataset.from_dict({"image": load_bundled("digits", "test")["image"][:3], "label": [0, 1, 2]})
    monkeypatch.chdir(tmp_path)
    local.save_to_disk(os.path.join(tmp_path, "digits"))
    assert len(load_source("digits", "train")) == 3  # the folder of that name, not the bundled dataset
    with pytest.raises(InvalidConfigError, match="splits 'train' and 'test'"):
        load_bundled("shapes", "validation")


def test_a_transform_attached_to_a_bundled_dataset_does_not_reach_the_next_caller():
    """Before: load_bundled handed out its cached Dataset itself, so attach (in place) changed what every later call
    returned: rows of pixel_values/labels, and reinforce on them failed with MissingColumnError."""
    from hf_dr import AugmentTransform
    from hf_dr.data.bundled import load_bundled

    AugmentTransform("rrc", size=16).attach(load_bundled("digits", "train"))
    assert sorted(load_bundled("digits", "train")[0]) == ["image", "key", "label"]
