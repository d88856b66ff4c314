"""A reinforced dataset named where a dataset is expected (hf_dr.hub.named): a plain dataset stays plain, a pushed
repo and self-contained rows saved to disk are found reinforced by their description and train on their stored
views; their plain images come from their own rows or the recorded source. Real runs on the bundled digits, pushed
to the local Hub server."""

from __future__ import annotations

import dataclasses

import datasets
import pytest

from hf_dr.data.bundled import load_bundled
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.run import reinforce
from hf_dr.hub.named import find_reinforced, plain_images, reinforced_training_data
from hf_dr.hub.push import push_to_hub
from tests.utils_hub import server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return load_bundled("digits").select(range(8))


@pytest.fixture(scope="module")
def repo(hub, digits, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("named")
    run = reinforce(digits, [save_teacher(str(folder / "teacher"))], "rrc", num_samples=2, topk=3, seed=0,
                    output_dir=str(folder / "run"), key_column="key", source={"id": "digits", "split": "train"},
                    num_workers=0, progress=False)
    repo_id = unique_repo("named")
    push_to_hub(run, repo_id, dataset=digits)
    return repo_id


def test_a_plain_dataset_is_found_plain():
    rows, named = find_reinforced("digits", split="test")
    assert named is None and len(rows) > 100 and {"image", "label"} <= set(rows.column_names)


def test_a_pushed_repo_is_found_and_trains_on_its_stored_views(repo):
    rows, named = find_reinforced(repo)
    assert rows is None and named.name == repo and named.split == "train"
    assert (named.description.num_samples, named.description.topk, named.description.num_classes) == (2, 3, 10)
    assert named.in_chans == 3  # the teacher read RGB views of the grayscale digits
    train, transform = reinforced_training_data(named, size=16, mean=MEAN, std=STD)
    assert len(train) == 8 and train[0]["pixel_values"].shape == (3, 16, 16) and train[0]["labels"].shape == (10,)
    assert transform.policy.config() == named.description.policy


def test_the_plain_images_of_a_pushed_repo_are_its_recorded_sources(repo):
    _, named = find_reinforced(repo)
    assert named.source() == ("digits", None)
    test = plain_images(named, "test")
    assert test["key"] == load_bundled("digits", "test")["key"]


def test_self_contained_rows_saved_to_disk_are_found_reinforced(repo, tmp_path):
    datasets.load_dataset(repo, split="train").save_to_disk(str(tmp_path / "digits-plus"))
    rows, named = find_reinforced(str(tmp_path / "digits-plus"))
    assert named is not None and named.rows is rows and len(rows) == 8
    assert plain_images(named) is rows  # their own images, for a plain baseline on the same rows
    fast, transform = reinforced_training_data(named, size=16, mean=MEAN, std=STD, preload=True)
    train, _ = reinforced_training_data(named, size=16, mean=MEAN, std=STD)
    assert fast[3]["labels"].tolist() == train[3]["labels"].tolist()
    assert fast[3]["pixel_values"].tolist() == train[3]["pixel_values"].tolist()


def test_a_run_that_recorded_no_source_names_the_flags_to_pass(repo):
    _, named = find_reinforced(repo)
    sourceless = dataclasses.replace(named, description=dataclasses.replace(named.description, source={}))
    with pytest.raises(InvalidConfigError, match="records no source dataset.*--eval-dataset / --dataset"):
        plain_images(sourceless, "test")
