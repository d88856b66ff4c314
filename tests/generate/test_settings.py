"""``ReinforceSettings``: ``reinforce``'s settings as one object. The API takes it (``config=``) or builds it from the
keyword arguments of before; the CLI builds it from its flags, whose defaults are its defaults, as are a recipe's."""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
import os

import datasets
import pytest

from hf_dr.cli.reinforce import _apply_builder, add_arguments, settings_from
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.builder import Builder
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.settings import ReinforceSettings
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")
OPTIONS = {"policy": "rrc", "num_samples": 2, "topk": 3, "seed": 0, "key_column": "key", "shard_size": 8,
           "batch_size": 8, "num_workers": 0, "progress": False}


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(12)


@pytest.fixture(scope="module")
def member(tmp_path_factory) -> dict:
    return save_teacher(str(tmp_path_factory.mktemp("teacher")))


def _shards(output_dir: str) -> list[str]:
    return sorted(os.path.join("shards", name) for name in os.listdir(os.path.join(output_dir, "shards"))
                  if name.endswith(".parquet"))


def test_a_settings_object_and_keyword_arguments_make_the_same_run(digits, member, tmp_path):
    """``config=ReinforceSettings(...)`` and today's keyword arguments write the same config and shard bytes."""
    by_keywords = reinforce(digits, [member], output_dir=str(tmp_path / "a"), **OPTIONS)
    by_object = reinforce(digits, [member], config=ReinforceSettings(output_dir=str(tmp_path / "b"), **OPTIONS))
    assert ReinforceConfig.load(by_object).fingerprint() == ReinforceConfig.load(by_keywords).fingerprint()
    shards = _shards(by_keywords)
    assert shards and shards == _shards(by_object)
    assert all(filecmp.cmp(os.path.join(by_keywords, n), os.path.join(by_object, n), shallow=False) for n in shards)


def test_arguments_replace_the_settings_they_name(digits, member, tmp_path):
    """Positional and keyword arguments override the object's fields; the rest come from the object."""
    settings = ReinforceSettings(output_dir=str(tmp_path / "ignored"), **OPTIONS)
    out = reinforce(digits, [member], None, 3, seed=5, output_dir=str(tmp_path / "run"), config=settings)
    config = ReinforceConfig.load(out)
    assert (config.num_samples, config.seed, config.topk, config.policy["name"]) == (3, 5, 3, "rrc")
    assert not os.path.exists(tmp_path / "ignored")


@pytest.mark.parametrize("call, message", [
    (lambda d, m, out: reinforce(d, [m], output_dir=out, num_sample=2), r"unknown settings \['num_sample'\]"),
    (lambda d, m, out: reinforce(d, [m], num_samples=2), r"output_dir \(--output-dir\) is required"),
    (lambda d, m, out: reinforce(d, [m], config=ReinforceConfig({}, 1, 1, 0, 1, []), output_dir=out),
     "config= should be a ReinforceSettings, but got ReinforceConfig"),
    (lambda d, m, out: reinforce(d, [m], config=ReinforceSettings(topk=0), output_dir=out),
     r"topk \(--topk\) should be an integer >= 1, but got 0"),
])
def test_bad_settings_are_refused_before_the_folder_is_touched(digits, member, tmp_path, call, message):
    out = str(tmp_path / "out")
    with pytest.raises(InvalidConfigError, match=message):
        call(digits, member, out)
    assert not os.path.exists(out)


def _parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    _apply_builder(args, None)
    return args


def test_the_cli_defaults_are_the_api_defaults():
    """Every setting the command line leaves out is ReinforceSettings' default (one source of truth)."""
    settings = settings_from(_parsed("--dataset", "digits", "--output-dir", "out"))
    defaults = ReinforceSettings()
    made_by_the_cli = {"output_dir", "source", "codec"}
    for field in dataclasses.fields(ReinforceSettings):
        if field.name not in made_by_the_cli:
            assert getattr(settings, field.name) == getattr(defaults, field.name), field.name
    assert settings.output_dir == "out" and settings.source == {"id": "digits", "split": "train", "revision": None}


def test_the_cli_builds_the_settings_of_its_flags():
    settings = settings_from(_parsed("--dataset", "d", "--output-dir", "o", "--num-samples", "4", "--label-column", "",
                                     "--key-from", "path", "--shard-size", "5", "--label-codec", "q8-topk"))
    assert (settings.num_samples, settings.label_column, settings.shard_size) == (4, None, 5)
    assert settings.columns.key_source == "path" and settings.codec["labels"] == "q8-topk"


def test_a_recipe_defaults_to_the_api_defaults():
    builder = Builder(name="x", pretty_name="X", description="x", dataset_id="me/x", split="train",
                      image_column="image", label_column="label", num_classes=10, teacher=("resnet18.a1_in1k",))
    defaults = ReinforceSettings()
    assert (builder.policy, builder.num_samples, builder.topk, builder.seed) == (
        defaults.policy, defaults.num_samples, defaults.topk, defaults.seed)
