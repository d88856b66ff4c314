"""The recipes in ``builders/``: each loads, its teacher names resolve in the pinned timm registry as distinct
checkpoints, and ``hf-dr reinforce --builder NAME --limit K`` runs end to end on a local stand-in dataset with the
recipe's columns and classes, labelled by random-init local weights (no network). Bad names and limits are refused."""

from __future__ import annotations

import inspect
import json
import os

import pytest
import timm

from hf_dr import HfDrError, list_policies, push_to_hub
from hf_dr.builders import get_builder, list_builders, register_builder
from hf_dr.cli import main as cli_main
from hf_dr.errors import InvalidConfigError, MissingTeacherError, UnknownBuilderError
from hf_dr.generate.builder import LAYOUTS, Builder
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run_config import ReinforceConfig
from tests.utils_builders import standin
from tests.utils_teacher import save_teacher

NAMES = ["cifar100_plus", "flowers102_plus", "food101_plus", "imagenet_plus", "imagenet_plus_small"]
PAPER = {  # (N, k, layout) of the paper's published datasets
    "imagenet_plus": (400, 10, "metadata-only"), "imagenet_plus_small": (100, 5, "metadata-only"),
    "cifar100_plus": (800, 10, None), "flowers102_plus": (8000, 10, None), "food101_plus": (800, 10, None),
}
LEGACY_IG = ["ig_resnext101_32x8d", "ig_resnext101_32x16d", "ig_resnext101_32x32d", "ig_resnext101_32x48d"]


pytestmark = pytest.mark.usefixtures("one_thread")


# -- the recipes ----------------------------------------------------------------------------------------------------
def test_registry_lists_the_five_recipes():
    assert list_builders() == NAMES
    assert get_builder("CIFAR100-Plus") is get_builder("cifar100_plus")


@pytest.mark.parametrize("name", NAMES)
def test_every_builder_loads_with_the_paper_values(name):
    builder = get_builder(name)
    num_samples, topk, layout = PAPER[name]
    assert (builder.name, builder.num_samples, builder.topk) == (name, num_samples, topk)
    assert builder.policy == "rrc+ra_re" and builder.policy in list_policies()
    assert builder.layout in LAYOUTS and (layout is None or builder.layout == layout)
    assert builder.class_names is None or len(set(builder.class_names)) == builder.num_classes
    assert builder.source_citation.startswith("@") and builder.license and builder.notes
    assert builder.dataset_id.count("/") == 1 and builder.split == "train"
    assert builder.teacher or (len(builder.teacher_seeds) == 4 and builder.teacher_input_size == 224)
    notes = builder.card_notes()
    assert builder.source_citation.strip() in notes and all(note in notes for note in builder.notes)
    assert set(builder.card_options()) <= set(inspect.signature(push_to_hub).parameters)


@pytest.mark.parametrize("name", NAMES)
def test_teacher_names_resolve_to_distinct_checkpoints(name):
    builder = get_builder(name)
    names = list(builder.teacher) or [builder.teacher_base]
    registry = set(timm.list_pretrained())
    assert [n for n in names if n not in registry] == []
    cfgs = [timm.models.get_pretrained_cfg(n) for n in names]
    for attribute in ("hf_hub_id", "url"):
        values = [getattr(cfg, attribute) for cfg in cfgs]
        assert len(set(values)) == len(values), (attribute, values)
    assert not set(names) & set(LEGACY_IG)
    if builder.teacher:
        assert len(builder.teacher) == 4 and all("resnext101" in n and "ig1b" in n for n in names)
        assert any(builder.teacher[0] in note for note in builder.notes)  # the substitution is explained


def test_legacy_ig_resnext_names_alias_one_checkpoint():
    """The fact the ImageNet+ recipe works around (timm 1.0.31): all four legacy names load one checkpoint."""
    deprecated = timm.models.get_deprecated_models()
    assert {deprecated[n] for n in LEGACY_IG} == {"resnext101_32x8d.fb_wsl_ig1b_ft_in1k"}
    assert "resnext101_32x48d" not in timm.list_models()  # hence the substitute fourth member


def test_unknown_builder_lists_the_valid_names(capsys, tmp_path):
    with pytest.raises(UnknownBuilderError) as error:
        get_builder("cifar100")
    assert isinstance(error.value, KeyError) and isinstance(error.value, HfDrError)
    assert "cifar100_plus" in str(error.value) and "imagenet_plus_small" in str(error.value)
    assert cli_main(["reinforce", "--builder", "imagenet-plus-large", "--output-dir", str(tmp_path)]) == 1
    assert "valid names are ['cifar100_plus'" in capsys.readouterr().err
    assert cli_main(["builders"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == NAMES


def test_builder_validation_and_registration():
    base = {"name": "digits_plus", "pretty_name": "Digits+", "description": "d", "dataset_id": "me/digits",
            "split": "train", "image_column": "image", "label_column": "label", "num_classes": 10}
    with pytest.raises(InvalidConfigError, match="pinned teacher tags, or a teacher_base"):
        Builder(**base)
    with pytest.raises(InvalidConfigError, match="repeat"):
        Builder(**base, teacher=("a.x", "a.x"))
    with pytest.raises(InvalidConfigError, match="layout"):
        Builder(**base, teacher=("a.x",), layout="images")
    with pytest.raises(InvalidConfigError, match="10 distinct names"):
        Builder(**base, teacher=("a.x",), class_names=("a",) * 10)
    with pytest.raises(InvalidConfigError, match="topk 11 exceeds"):
        Builder(**base, teacher=("a.x",), topk=11)
    register_builder(Builder(**base, teacher=("resnet18.a1_in1k",)))
    assert get_builder("digits-plus").teacher == ("resnet18.a1_in1k",)


def test_finetuned_recipe_without_teacher_spec_names_the_command(tmp_path, capsys):
    source = str(tmp_path / "cifar")
    standin(get_builder("cifar100_plus"), 4).save_to_disk(source)
    with pytest.raises(MissingTeacherError, match="hf-dr finetune-teacher --builder food101_plus"):
        get_builder("food101_plus").teacher_members()
    assert cli_main(["reinforce", "--builder", "cifar100_plus", "--dataset", source,
                     "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "hf-dr finetune-teacher --builder cifar100_plus" in err and "--teacher-spec" in err
    assert not os.path.exists(tmp_path / "out")


# -- end to end -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_specs(tmp_path_factory) -> dict[int, str]:
    """A teacher spec file per class count: one random-init local ``test_resnet`` member reading 32 x 32 views."""
    directory = tmp_path_factory.mktemp("teachers")
    specs = {}
    for classes in sorted({get_builder(n).num_classes for n in NAMES}):
        path = directory / f"spec-{classes}.json"
        path.write_text(json.dumps([save_teacher(str(directory), seed=0, num_classes=classes)]))
        specs[classes] = str(path)
    return specs


@pytest.mark.parametrize("name", NAMES)
def test_reinforce_builder_end_to_end_with_limit(name, teacher_specs, tmp_path, capsys):
    builder = get_builder(name)
    source, out = str(tmp_path / "source"), str(tmp_path / "out")
    standin(builder, 10).save_to_disk(source)
    arguments = ["reinforce", "--builder", name, "--dataset", source, "--teacher-spec",
                 teacher_specs[builder.num_classes], "--output-dir", out, "--no-progress", "--num-workers", "0"]
    small = name == "imagenet_plus_small"  # keeps the recipe's N = 100 for once; the others override it
    assert cli_main([*arguments, "--limit", "2" if small else "6", *([] if small else ["--num-samples", "3"])]) == 0
    assert f"--layout {builder.layout}" in capsys.readouterr().out  # the push hint carries the recipe
    config = ReinforceConfig.load(out)
    assert config.num_samples == (builder.num_samples if small else 3)
    assert (config.topk, config.policy["name"], config.seed) == (builder.topk, builder.policy, builder.seed)
    assert config.columns.to_dict() == {"image": builder.image_column, "label": builder.label_column, "key": None,
                                        "key_source": builder.key_from or "content"}
    assert config.dataset["builder"] == name and config.dataset["num_rows"] == (2 if small else 6)
    assert config.num_classes == builder.num_classes
    table = load_run_records(out)
    assert len(table) == config.dataset["num_rows"]
    assert len(table[0]["reinforcements"]) == config.num_samples
    assert cli_main([*arguments, "--limit", "11"]) == 1
    assert "--limit 11 exceeds the dataset's 10 rows" in capsys.readouterr().err
