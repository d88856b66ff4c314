"""``hf-dr demo``: the quick setting runs every stage end to end on real Fashion-MNIST and its table has every row;
the Fashion-MNIST reader. The reporting logic on fixed numbers is in test_report.py."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hf_dr.data.fashion_mnist import CLASS_NAMES, DEFAULT_ROOT, fashion_mnist_arrays, load_fashion_mnist
from hf_dr.demo.run import DemoConfig
from hf_dr.train.loop import TrainConfig
from tests.test_files import RenameLog

HAVE_FASHION_MNIST = (DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz").exists()
needs_data = pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="apt-get install dataset-fashion-mnist")
TABLE_ROWS = ("Plain", "Reinforced", "Online KD", "Teacher ensemble", "Reinforcement (N=")


def _cli(argv: list[str]) -> int:
    """``hf-dr ARGV`` through the real entry point (subcommands are discovered in :mod:`hf_dr.cli`)."""
    from hf_dr.cli import main

    return main(argv)


@needs_data
@pytest.mark.slow
def test_demo_quick_runs_every_stage_and_reports_every_row(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    renamed = RenameLog(monkeypatch)
    assert _cli(["demo", "--quick", "--output-dir", str(out), "--num-threads", "2"]) == 0
    written = {os.path.abspath(os.path.join(root, name)) for root, _, names in os.walk(out) for name in names}
    assert written <= set(renamed.targets) and renamed.others == []  # every file, JSON to PNG, written atomically
    printed = capsys.readouterr().out
    table = (out / "table.md").read_text()
    for row in TABLE_ROWS:
        assert row in table and row in printed, row
    results = json.loads((out / "results.json").read_text())
    quick = DemoConfig.quick()
    summary = results["summary"]
    assert summary["plain"]["runs"] == summary["reinforced"]["runs"] == len(quick.seeds)
    assert summary["online_kd"]["runs"] == len(quick.kd_seeds)
    steps = {r["steps"] for r in results["runs"]}
    subset = results["data"]["subset_rows"]
    student = quick.student_config(0, subset)
    assert steps == {student.epochs * (subset // student.batch_size)}  # the same for every arm
    spec = json.loads((out / "teachers" / "teacher_spec.json").read_text())
    assert all(m["mean"] == results["data"]["mean"] and m["std"] == results["data"]["std"] for m in spec)
    assert {m.get("temperature", 1.0) for m in spec} == {results["calibration"]["temperature"]}
    assert {"top1_points", "exceeds_2_std", "ece_points"} <= set(summary["gain"])
    assert results["reinforcement"]["bytes"] > 0 and results["ensemble"]["members"] >= 1
    assert DemoConfig.from_dict(json.loads((out / "demo_config.json").read_text())) == replace(
        quick, output_dir=str(out), num_threads=2)
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "reinforced" / "manifest.json").exists()

    # the reinforced subset names its source and verifies against it (it was keyed by the demo's own column)
    assert _cli(["verify", "--run-dir", str(out / "reinforced"), "--dataset", "fashion-mnist", "--split", "train",
                 "--num-pairs", "4"]) == 0

    # a student checkpoint evaluates with `hf-dr eval` to the number in the table
    student = next(r for r in results["runs"] if r["arm"] == "reinforced")
    checkpoint = out / "students" / f"reinforced-seed{student['seed']}.safetensors"
    metrics_path = tmp_path / "eval.json"
    assert _cli(["eval", "--checkpoint", str(checkpoint), "--dataset", "fashion-mnist",
                 "--limit", str(quick.test_size), "--output", str(metrics_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert metrics["top1"] == pytest.approx(student["top1"], abs=1e-6)
    assert metrics["ece"] == pytest.approx(student["ece"], abs=1e-6)


# The settings the demo's students and teachers train with (the students': SGD at 0.05 with 20% warmup, measured
# stable on datasets nobody tuned them to; issue 14).
FLAT_STUDENT = {"epochs": 60, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4,
                "warmup_fraction": 0.2, "temperature": 1.0, "channels_last": True, "log_every": 10_000}
FLAT_TEACHER = {"epochs": 4, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "channels_last": True,
                "log_every": 10_000}
# docs/demo_config.json before the nesting (flat layout), as the earlier full runs wrote it
FLAT_RECORD = {"output_dir": "/tmp/ml5/final", "data_root": "/usr/share/datasets/fashion-mnist", "subset_size": 2500,
               "test_size": None, "teacher_arch": "hf_dr_cnn_fc", "num_teachers": 4, "teacher_train_size": None,
               "teacher_epochs": 4, "teacher_lr": 0.1, "policy": "rrc", "crop_scale": [0.6, 1.0], "num_samples": 20,
               "topk": 5, "student_arch": "hf_dr_cnn_fc", "epochs": 60, "batch_size": 128, "optimizer": "sgd",
               "lr": 0.1, "weight_decay": 0.0005, "warmup_fraction": 0.05, "temperature": 1.0, "seeds": [0, 1, 2],
               "kd_seeds": [0, 1, 2], "num_threads": 2, "seed": 0}


@pytest.mark.parametrize("quick", [False, True])
def test_demo_trains_with_the_hyperparameters_of_its_config(quick):
    from hf_dr.cli import build_parser
    from hf_dr.cli.demo import config_from_args

    config = DemoConfig.quick() if quick else DemoConfig()
    student = {**FLAT_STUDENT, "epochs": 2} if quick else FLAT_STUDENT
    teacher = {**FLAT_TEACHER, "epochs": 1, "lr": 0.02} if quick else FLAT_TEACHER
    assert [config.student_config(s) for s in config.seeds + config.kd_seeds] == [
        TrainConfig(**student, seed=s) for s in config.seeds + config.kd_seeds]
    assert [config.teacher_config(m) for m in range(config.num_teachers)] == [
        TrainConfig(**teacher, seed=1000 + 17 * m) for m in range(config.num_teachers)]
    assert (config.teacher.to_dict(), config.student.to_dict()) == (TrainConfig(**teacher).to_dict(),
                                                                   TrainConfig(**student).to_dict())
    args = build_parser().parse_args(["demo", *(["--quick"] if quick else [])])
    assert config_from_args(args) == config  # what `hf-dr demo` runs


def test_small_datasets_get_enough_steps_and_batches_that_drop_few_images():
    """Issue 14: on 240 images a batch of 128 with drop_last took one step per epoch, and 4 teacher epochs of 1,297
    digits were 40 steps; the batch halves to at least 4 steps an epoch and the epochs grow to 1000 steps."""
    config = DemoConfig()
    assert (config.student_batch_size(240), config.student_batch_size(2500)) == (32, 128)
    small = config.student_config(0, 240)
    assert small.epochs * (240 // small.batch_size) >= config.min_student_steps
    assert config.student_config(0, 2500).epochs == 60  # Fashion-MNIST's subset already takes 1,140 steps
    assert config.teacher_config(0, train_rows=1297).epochs * (1297 // 128) >= config.min_teacher_steps
    assert config.teacher_config(0, train_rows=60_000).epochs == 4
    assert config.student_config(0, 240, epochs=3).epochs == 3  # an explicit length wins


def test_the_record_of_the_last_full_run_reads_to_the_default_config():
    """docs/demo_config.json holds the default settings; earlier flat records still read."""
    path = Path(__file__).resolve().parents[2] / "docs" / "demo_config.json"
    recorded = DemoConfig.from_dict(json.loads(path.read_text()))
    default = DemoConfig()
    assert replace(recorded, output_dir=default.output_dir, data_root=default.data_root) == default
    flat = DemoConfig.from_dict(FLAT_RECORD)
    assert (flat.student.lr, flat.student.warmup_fraction, flat.teacher.lr, flat.subset_size) == (0.1, 0.05, 0.1, 2500)
    overridden = DemoConfig.from_dict({**FLAT_RECORD, "epochs": 5, "teacher_lr": 0.3, "student_batch_size": 64})
    assert (overridden.student.epochs, overridden.teacher.lr, overridden.student.batch_size) == (5, 0.3, 64)
    assert (overridden.teacher.epochs, overridden.teacher.batch_size, overridden.student.lr) == (4, 128, 0.1)
    nested = DemoConfig.from_dict({"student": {"epochs": 7}, "epochs": 9})
    assert nested.student.epochs == 9 and nested.student.lr == 0.05  # flat names win, nested ones keep defaults


def test_demo_config_round_trips_and_refuses_unknown_settings():
    config = DemoConfig.quick(seeds=[3])
    assert DemoConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    from hf_dr.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="unknown demo settings"):
        DemoConfig.from_dict({"subset": 10})
    with pytest.raises(InvalidConfigError, match="subset_size"):
        DemoConfig(subset_size=0)


@needs_data
def test_fashion_mnist_reader():
    images, labels = fashion_mnist_arrays("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10
    dataset = load_fashion_mnist("test", indices=[0, 5])
    assert dataset["key"] == ["test-00000", "test-00005"]
    assert dataset.features["label"].names == list(CLASS_NAMES)
    row = dataset[1]
    assert row["image"].size == (28, 28) and row["image"].mode == "L"
    assert np.array_equal(np.asarray(row["image"]), images[5]) and row["label"] == labels[5]
    from hf_dr.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="split"):
        fashion_mnist_arrays("validation")
