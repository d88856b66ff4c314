"""The run description a reinforced dataset carries: it survives every way the data travels, and the replay reads it
(bug of issue 11: a run made with a non-default policy replayed with the default one differed on 48 of 50 records,
silently)."""

from __future__ import annotations

import dataclasses
import glob
import os

import datasets
import pytest
import torch

from hf_dr import ReinforcedTransform, create_policy, push_to_hub
from hf_dr.data.description import RunDescription, read_description
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError, ParamsMismatchError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from tests.data_utils import digits_dataset
from tests.utils_hub import unique_repo
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")
POLICY = create_policy("rrc+ra_re", randaugment={"num_magnitude_bins": 11})


@pytest.fixture(scope="module")
def images():
    return digits_dataset(24)


@pytest.fixture(scope="module")
def run_dir(images, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("described")
    member = save_teacher(str(folder / "teachers"), seed=0)
    out = str(folder / "run")
    reinforce(images, [member], POLICY, num_samples=4, topk=3, seed=0, output_dir=out, key_column="key",
              shard_size=12, num_workers=0, progress=False)
    return out


@pytest.fixture(scope="module")
def reinforced(run_dir):
    return load_run_records(run_dir)


def _pixels(transform: ReinforcedTransform, images: datasets.Dataset, rows=range(6)) -> torch.Tensor:
    batch = images.select(rows).with_format(None)[:]
    return torch.stack(transform(batch)["pixel_values"])


def test_every_shard_and_the_loaded_dataset_carry_the_full_run(run_dir, reinforced, images):
    description = read_description(reinforced)
    assert description.policy == POLICY.config()
    assert (description.num_samples, description.topk, description.num_classes, description.seed) == (4, 3, 10, 0)
    assert description.class_names == images.features["label"].names
    assert description.key_column == "key" and description.columns.key_source == "column"
    assert description.teacher[0]["sha256"] and description.source["keys_sha256"]
    assert set(description.versions) >= {"hf_dr", "torch", "pillow"}
    for shard in glob.glob(os.path.join(run_dir, "shards", "*.parquet")):
        assert read_description(datasets.Dataset.from_parquet(shard)) == description


def test_replay_needs_nothing_but_the_dataset(reinforced, images):
    """The recorded policy is used (the bins included), so the default-policy replay of the bug cannot happen."""
    described = ReinforcedTransform(reinforced, size=20, images=images)
    explicit = ReinforcedTransform(reinforced, policy=POLICY, size=20, images=images)
    assert torch.equal(_pixels(described, images), _pixels(explicit, images))
    assert described.policy.config() == POLICY.config() and described.num_classes == 10


def test_a_contradicting_policy_is_refused_naming_the_field(reinforced):
    with pytest.raises(ParamsMismatchError, match="num_magnitude_bins: 11 -> 31"):
        ReinforcedTransform(reinforced, policy="rrc+ra_re", size=20)


def test_the_crop_interpolation_is_a_replay_setting_not_a_contradiction(reinforced):
    policy = create_policy("rrc+ra_re", randaugment={"num_magnitude_bins": 11}, crop={"interpolation": "bicubic"})
    assert ReinforcedTransform(reinforced, policy=policy, size=20).policy.crop.interpolation == "bicubic"


def test_contradicting_class_count_and_columns_are_refused(reinforced):
    with pytest.raises(ClassCountMismatchError, match="num_classes=100 contradicts the 10 classes"):
        ReinforcedTransform(reinforced, num_classes=100)
    with pytest.raises(ParamsMismatchError, match="key_column='label' contradicts"):
        ReinforcedTransform(reinforced, key_column="label")
    renamed = reinforced.rename_column("key", "image_id")  # a renamed column is no contradiction
    assert ReinforcedTransform(renamed, key_column="image_id").key_column == "image_id"


@pytest.mark.parametrize("how", ["parquet", "disk", "shuffle", "select", "split", "map", "select_columns"])
def test_the_description_survives_how_datasets_move_data(how, run_dir, reinforced, tmp_path):
    shards = sorted(glob.glob(os.path.join(run_dir, "shards", "*.parquet")))
    moved = {
        "parquet": lambda: datasets.load_dataset("parquet", data_files=shards, split="train"),
        "disk": lambda: (reinforced.save_to_disk(str(tmp_path)), datasets.load_from_disk(str(tmp_path)))[1],
        "shuffle": lambda: reinforced.shuffle(seed=0),
        "select": lambda: reinforced.select([3, 1]),
        "split": lambda: reinforced.train_test_split(test_size=0.5, seed=0)["test"],
        "map": lambda: reinforced.map(lambda row: row),
        "select_columns": lambda: reinforced.select_columns(["key", "reinforcements"]),
    }[how]()
    assert read_description(moved) == read_description(reinforced)
    assert ReinforcedTransform(moved, size=20).policy.config() == POLICY.config()


def test_pushed_and_loaded_with_plain_load_dataset(hub, run_dir, images):
    """The design card's main flow: ``load_dataset("org/x")`` and a transform that needs only a size."""
    repo = unique_repo("described")
    push_to_hub(run_dir, repo, dataset=images)
    loaded = datasets.load_dataset(repo, split="train")
    assert read_description(loaded) == read_description(load_run_records(run_dir))
    ReinforcedTransform(loaded, size=20).attach(loaded)
    assert loaded[0]["pixel_values"].shape == (3, 20, 20) and loaded[0]["labels"].shape == (10,)
    streamed = datasets.load_dataset(repo, split="train", streaming=True)
    assert read_description(streamed) == read_description(loaded)


def test_datasets_without_a_description_need_the_policy(reinforced):
    plain = datasets.Dataset.from_dict({"key": ["a"], "reinforcements": [[]]})
    with pytest.raises(InvalidConfigError, match="carries no hf-dr run description"):
        ReinforcedTransform(plain, num_classes=10)


def test_a_description_of_another_format_is_refused():
    description = RunDescription(policy={}, num_samples=1, topk=1, num_classes=2, seed=0, columns={})
    text = description.to_id().replace("hf-dr-run/1 ", "hf-dr-run/9 ", 1)
    with pytest.raises(InvalidConfigError, match="format '9'"):
        RunDescription.from_id(text)
    assert RunDescription.from_id(description.to_id()) == dataclasses.replace(description)
