"""``hf-dr study --quick`` on the bundled digits: every study runs through the demo's stages and reports its table
and plots; a rerun resumes from the recorded runs without training; other settings in the same folder are refused."""

from __future__ import annotations

import json

import pytest

from hf_dr.cli import main as cli_main
from hf_dr.demo.config import DemoConfig
from hf_dr.demo.study import STUDIES, StudyConfig
from hf_dr.errors import InvalidConfigError

SECTIONS = ("### Architectures", "### Robustness", "### Training length", "### Curricula and sample selection")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("study") / "quick"
    assert cli_main(["study", "--quick", "--output-dir", str(out), "--no-progress", "--num-threads", "2"]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_every_study_reports_its_rows(study):
    out, results = study
    quick = StudyConfig.quick()
    text = (out / "tables.md").read_text()
    assert all(section in text for section in SECTIONS)
    tables = results["tables"]
    assert [r["arch"] for r in tables["architectures"]] == quick.architectures
    assert {r["corruption"] for r in tables["robustness"]} == {"clean", "mean", *quick.corruptions}
    assert all(r[f"{arm}_top1"]["n"] for r in tables["robustness"] for arm in ("plain", "reinforced", "online_kd"))
    base = quick.demo.student_config(0, results["data"]["subset_rows"]).epochs
    assert {r["epochs"] for r in tables["epochs"]} == {round(s * base) for s in quick.epoch_scales}
    options = {r["option"] for r in tables["options"]}
    assert options == {"plain", "reinforced", "curriculum:easy->all", "selection:random", "selection:max_loss"}
    steps = {r["steps"] for r in results["runs"] if r["study"] != "epochs"}
    assert len(steps) == 1  # every arm, architecture, curriculum and selection at the same iterations
    for rule, selected in results["selections"].items():
        config = json.loads((out / f"selected-{rule}" / "reinforce_config.json").read_text())
        assert config["num_samples"] == selected["keep"] == quick.selection_keep
        assert config["selection"] == {"rule": rule, "from": results["reinforcement"]["num_samples"]}
    for name in ("epochs.png", "robustness.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "runs").glob("*.json"))) == len(results["runs"])


@pytest.mark.slow
def test_a_rerun_resumes_without_training_and_other_settings_are_refused(study, monkeypatch, capsys):
    out, results = study
    import hf_dr.demo.run as demo_run
    import hf_dr.train.finetune as finetune

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed study trained again")

    monkeypatch.setattr(demo_run, "train_student", refuse)
    monkeypatch.setattr(finetune, "finetune_teacher", refuse)
    assert cli_main(["study", "--quick", "--output-dir", str(out), "--no-progress", "--num-threads", "2"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["tables"] == results["tables"]
    assert cli_main(["study", "--quick", "--output-dir", str(out), "--seeds", "7", "--no-progress"]) == 1
    assert "holds a study with other settings" in capsys.readouterr().err


def test_study_settings_are_checked_and_round_trip():
    config = StudyConfig.quick()
    assert StudyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert StudyConfig().studies == list(STUDIES)
    with pytest.raises(InvalidConfigError, match="unknown curricula"):
        StudyConfig(curricula=["easy->medium"])
    with pytest.raises(InvalidConfigError, match="selection_keep"):
        StudyConfig(demo=DemoConfig(num_samples=10), selection_keep=10)
    assert StudyConfig().keep_of(143) == 35
    with pytest.raises(InvalidConfigError, match="unknown study settings"):
        StudyConfig.from_dict({"studys": []})
