"""scripts/train.py and scripts/train_trainer.py end to end on a small reinforced digits set, including the
"pretrain, then fine-tune from the checkpoint" flow and `hf-dr eval` on what they write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hf_dr.models.checkpoints import checkpoint_metadata, load_classifier, save_checkpoint
from hf_dr.train.evaluation import evaluate_checkpoint
from hf_dr.train.inputs import student
from tests.utils_scripts import load_script, saved_digits_run

pytestmark = pytest.mark.usefixtures("one_thread")



def _script(name: str):
    return load_script(name)


@pytest.fixture(scope="module")
def reinforced_digits(tmp_path_factory) -> tuple[str, str]:
    """A digits dataset saved to disk and its reinforcement run (hf_dr.reinforce, a tiny local teacher)."""
    return saved_digits_run(tmp_path_factory.mktemp("scripts"))


def _common(dataset: str, out: Path) -> list[str]:
    return ["--dataset", dataset, "--arch", "hf_dr_cnn_tiny", "--in-chans", "3", "--image-size", "16", "--epochs", "2",
            "--batch-size", "16", "--output-dir", str(out), "--no-progress"]


def test_train_script_pretrains_on_reinforced_data_then_fine_tunes_from_the_checkpoint(reinforced_digits, tmp_path):
    dataset, reinforcements = reinforced_digits
    train = _script("train")
    result = train.main(_common(dataset, tmp_path / "pre") + ["--run-dir", reinforcements, "--preload",
                                                               "--eval-split", "train", "--lr", "0.05"])
    assert result["steps"] == 2 * (64 // 16) and result["metrics"]["num_samples"] == 64
    checkpoint = tmp_path / "pre" / "model.safetensors"
    assert checkpoint_metadata(checkpoint)["architecture"] == "hf_dr_cnn_tiny"
    assert json.loads((tmp_path / "pre" / "train_config.json").read_text())["train_config"]["lr"] == 0.05
    fine = train.main(_common(dataset, tmp_path / "fine") + ["--init-from", str(checkpoint), "--policy", "rrc"])
    assert fine["steps"] == 8
    metrics = evaluate_checkpoint(str(tmp_path / "fine" / "model.safetensors"), dataset=dataset, split="train")
    assert metrics["num_samples"] == 64 and 0.0 <= metrics["top1"] <= 1.0


def test_train_script_reads_other_columns_and_the_runs_policy_file(reinforced_digits, tmp_path):
    """Issue #14: scripts/train.py had no --label-column/--key-column and took --policy as a registered name only,
    so a plain baseline could neither read another dataset's columns nor use the reinforced run's crop scale."""
    dataset, reinforcements = reinforced_digits
    import datasets

    renamed = datasets.load_from_disk(dataset).rename_columns({"image": "img", "label": "target", "key": "id"})
    renamed.save_to_disk(str(tmp_path / "renamed"))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(json.loads((Path(reinforcements) / "reinforce_config.json").read_text())["policy"]))
    result = _script("train").main(_common(str(tmp_path / "renamed"), tmp_path / "plain") + [
        "--image-column", "img", "--label-column", "target", "--key-column", "id", "--policy", str(policy),
        "--eval-split", "train"])
    assert result["steps"] == 8 and result["metrics"]["num_samples"] == 64


def test_train_script_replays_with_a_confidence_curriculum(reinforced_digits, tmp_path):
    dataset, reinforcements = reinforced_digits
    train = _script("train")
    result = train.main(_common(dataset, tmp_path / "easy") + ["--run-dir", reinforcements, "--curriculum",
                                                                "easy->all"])
    assert result["steps"] == 8
    assert json.loads((tmp_path / "easy" / "train_config.json").read_text())["augment"]["curriculum"] == "easy->all"
    from hf_dr.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="--run-dir"):  # a plain run has no stored views to order
        train.main(_common(dataset, tmp_path / "plain") + ["--curriculum", "easy->all"])
    with pytest.raises(InvalidConfigError, match="unknown curriculum 'easy'"):
        train.main(_common(dataset, tmp_path / "bad") + ["--run-dir", reinforcements, "--curriculum", "easy"])


def test_train_trainer_script_with_timm_wrapper(reinforced_digits, tmp_path):
    """Also the old spellings (--model, --size, --reinforcements, --output_dir): hidden, they still parse."""
    dataset, reinforcements = reinforced_digits
    old_spellings = ["--dataset", dataset, "--model", "hf_dr_cnn_tiny", "--in-chans", "3", "--size", "16",
                     "--epochs", "2", "--batch-size", "16", "--output_dir", str(tmp_path / "t")]
    metrics = _script("train_trainer").main(old_spellings + [
        "--reinforcements", reinforcements, "--timm-wrapper", "--gradient-accumulation-steps", "2",
        "--eval-split", "train", "--no-progress"])
    assert {"eval_top1", "eval_nll", "eval_ece"} <= set(metrics["eval"])
    model, data_config = load_classifier(tmp_path / "t" / "model.safetensors")
    assert data_config["input_size"] == (3, 16, 16)
    evaluated = evaluate_checkpoint(str(tmp_path / "t" / "model.safetensors"), dataset=dataset, split="train")
    assert evaluated["top1"] == pytest.approx(metrics["eval"]["eval_top1"], abs=1e-6)


def test_fine_tuning_keeps_the_body_and_resets_a_head_of_another_class_count(tmp_path):
    pretrained = student("hf_dr_cnn_tiny", 10, in_chans=3)
    path = save_checkpoint(pretrained, tmp_path / "pre.safetensors")
    fine = student("hf_dr_cnn_tiny", 5, in_chans=3, init_from=str(path))
    assert torch.equal(fine.features[0].weight, pretrained.features[0].weight)
    assert fine.head.weight.shape == (5, fine.num_features)
