"""The paper's student recipes as named configs: ``get_recipe`` and ``scripts/train.py --recipe`` (the recipe's values
where no flag is given, the flags given where they are, the lr following the total batch unless ``--lr``), the
Trainer script on the same recipe, and docs/training.md listing every recipe with its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_dr.errors import InvalidConfigError
from hf_dr.train.recipes import RECIPES, TrainConfig, get_recipe, scaled_lr
from hf_dr.train.trainer import trainer_arguments
from tests.utils_scripts import load_script, saved_digits_run

pytestmark = pytest.mark.usefixtures("one_thread")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"


@pytest.fixture(scope="module")
def digits_plus(tmp_path_factory) -> tuple[str, str]:
    """64 digits saved to disk and their reinforcement run (a tiny local teacher)."""
    return saved_digits_run(tmp_path_factory.mktemp("recipes"))


def _argv(digits_plus, out: Path, *flags: str) -> list[str]:
    dataset, run = digits_plus
    return ["--dataset", dataset, "--run-dir", run, "--arch", "hf_dr_cnn_tiny", "--in-chans", "3", "--image-size",
            "16", "--output-dir", str(out), "--no-progress", "--epochs", "2", "--batch-size", "16", *flags]


def _train_config(out: Path) -> dict:
    return json.loads((out / "train_config.json").read_text())["train_config"]


def test_every_recipe_is_a_valid_config_with_its_warmup_in_epochs():
    for name, recipe in RECIPES.items():
        config = get_recipe(name)
        assert config.batch_size * config.gradient_accumulation_steps == recipe.batch_size, name
        assert config.lr == recipe.settings["lr"] and config.optimizer == recipe.settings["optimizer"], name
        assert config.warmup_fraction * config.epochs == pytest.approx(recipe.warmup_epochs), name
        assert config.label_smoothing == 0.0 and config.temperature == 1.0  # KL at T=1 on the soft labels
    # more epochs keep the warmup in epochs: 5 of 1000
    assert get_recipe("vit-imagenet-plus", epochs=1000).warmup_fraction == pytest.approx(5 / 1000)
    with pytest.raises(InvalidConfigError, match=r"unknown recipe 'resnet-50'; known recipes are \[.*'resnet50-"):
        get_recipe("resnet-50")
    with pytest.raises(InvalidConfigError, match="warms up for 5 epochs, not fewer than its 2 epochs: pass "
                                                 "--warmup-fraction"):
        get_recipe("resnet50-imagenet-plus", epochs=2)
    with pytest.raises(InvalidConfigError, match="unknown training settings"):
        get_recipe("resnet50-imagenet-plus", learning_rate=0.1)


def test_the_lr_follows_the_total_batch_unless_given():
    # 8 processes x 128 and 1 x 128 x 8 accumulation are the paper's 1024: its lr as is
    for kwargs in ({"num_processes": 8}, {"gradient_accumulation_steps": 8}):
        config = get_recipe("resnet50-imagenet-plus", **kwargs)
        assert (config.batch_size, config.lr) == (128, 0.4)
    assert get_recipe("resnet50-imagenet-plus", batch_size=256).lr == pytest.approx(0.4 / 4)  # SGD: linear
    assert get_recipe("vit-imagenet-plus", batch_size=256).lr == pytest.approx(0.001 / 2)  # AdamW: square root
    assert get_recipe("vit-imagenet-plus", batch_size=64, num_processes=4).lr == pytest.approx(0.001 / 2)
    assert get_recipe("resnet50-imagenet-plus", batch_size=256, lr=0.25).lr == 0.25
    assert scaled_lr(0.002, "sgd", 256, 256) == 0.002
    with pytest.raises(InvalidConfigError, match="does not split over 3 processes"):
        get_recipe("resnet50-imagenet-plus", num_processes=3)


def test_train_script_takes_the_recipe_under_the_flags_given(digits_plus, tmp_path):
    train = load_script("train")
    # no --lr: the recipe's 0.4 for 1024 becomes 0.4 x 16 / 1024; --weight-decay given at TrainConfig's default
    # (5e-4) still overrides the recipe's 1e-4: explicit, not "differs from the default"
    result = train.main(_argv(digits_plus, tmp_path / "a", "--recipe", "resnet50-imagenet-plus", "--warmup-fraction",
                              "0.25", "--weight-decay", "5e-4"))
    values = _train_config(tmp_path / "a")
    assert (values["optimizer"], values["momentum"]) == ("sgd", 0.9)  # the recipe's
    assert (values["epochs"], values["batch_size"], values["warmup_fraction"]) == (2, 16, 0.25)  # the flags'
    assert values["lr"] == pytest.approx(0.4 * 16 / 1024) and values["weight_decay"] == 5e-4
    assert json.loads((tmp_path / "a" / "train_config.json").read_text())["recipe"] == "resnet50-imagenet-plus"
    assert result["steps"] == 2 * 4 and max(r["lr"] for r in result["history"]) <= values["lr"]
    # --lr given: used as given; the recipe's weight decay where no flag sets it
    train.main(_argv(digits_plus, tmp_path / "b", "--recipe", "vit-imagenet-plus", "--warmup-fraction", "0.25",
                     "--lr", "0.003"))
    values = _train_config(tmp_path / "b")
    assert (values["optimizer"], values["lr"], values["weight_decay"]) == ("adamw", 0.003, 0.05)
    # without --recipe: TrainConfig's defaults
    train.main(_argv(digits_plus, tmp_path / "c"))
    assert _train_config(tmp_path / "c") == TrainConfig(epochs=2, batch_size=16).to_dict()


def test_trainer_script_takes_the_same_recipe(digits_plus, tmp_path):
    dataset, run = digits_plus
    script = load_script("train_trainer")
    made = []

    def recorded(config, *args, **kwargs):
        made.append(trainer_arguments(config, *args, **kwargs))
        return made[-1]

    script.trainer_arguments = recorded
    metrics = script.main([
        "--dataset", dataset, "--run-dir", run, "--arch", "hf_dr_cnn_tiny", "--in-chans", "3", "--image-size", "16",
        "--output-dir", str(tmp_path), "--no-progress", "--epochs", "2", "--batch-size", "16",
        "--recipe", "resnet50-cifar100-plus"])  # no warmup: the recipe applies as is at 2 epochs
    [args] = made
    assert args.learning_rate == pytest.approx(0.002 * 16 / 256)  # Table 23's lr for 256, at a batch of 16
    assert (args.lr_scheduler_type.value, args.warmup_steps, args.num_train_epochs) == ("cosine_with_min_lr", 0, 2)
    assert metrics["train"]["epoch"] == 2 and metrics["train"]["train_loss"] > 0


def test_docs_list_every_recipe_with_its_numbers_and_source():
    text = DOCS.read_text()
    rows = {}
    for line in text[text.index("## Recipes"):].splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(RECIPES)
    for name, recipe in RECIPES.items():
        config = get_recipe(name)
        _, student, optimizer, batch, lr, warmup, decay, epochs, source = rows[name]
        assert student.strip("`") == recipe.student and optimizer.lower().startswith(config.optimizer), name
        assert (int(batch), float(lr), float(warmup), float(decay), int(epochs)) == (
            recipe.batch_size, config.lr, recipe.warmup_epochs, config.weight_decay, config.epochs), name
        assert source == recipe.source.split(";")[0], name
