"""benchmarks/gpu.py in its CPU smoke mode: both parts run, print their figures, and end with the headline."""

from __future__ import annotations

import math
import re
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _figure(lines: list[str], name: str) -> float:
    values = [float(line.split(": ", 1)[1]) for line in lines if line.startswith(f"{name}: ")]
    assert len(values) == 1, f"{name} printed {len(values)} times in {lines}"
    return values[0]


def test_gpu_benchmark_cpu_smoke_run_prints_both_parts_and_ends_with_the_headline(capsys):
    headline = runpy.run_path(str(BENCHMARKS / "gpu.py"))["main"](["--device", "cpu", "--tiny"])
    lines = capsys.readouterr().out.strip().splitlines()
    generation, training = _figure(lines, "generation_ratio"), _figure(lines, "train_ratio")
    for ratio in (generation, training, headline):
        assert math.isfinite(ratio) and ratio > 0
    assert lines[-1] == f"worst_ratio_over_goal: {headline:.3f}"
    assert headline == pytest.approx(min(generation / 0.9, training / 0.97), abs=2e-3)
    sweep = [line for line in lines
             if re.match(r"\[generation\] \d+ workers: pipeline [\d.]+ views/s.*forward alone [\d.]+ views/s", line)]
    assert len(sweep) == 2 and all("GPU utilisation n/a (CPU)" in line for line in sweep)
    assert "[generation] shards byte-identical across worker counts and repeats: True" in lines
    per_worker = [line for line in lines if re.search(r"fit [\d.]+ img/s .* [\d.]+ img/s per worker process", line)]
    assert [line.split()[1] for line in per_worker] == ["plain", "reinforced"]


def test_train_loop_benchmark_ends_with_the_time_ratio(capsys):
    headline = runpy.run_path(str(BENCHMARKS / "train_loop.py"))["main"](
        ["--size", "64", "--images", "32", "--train-batch-size", "8", "--train-workers", "1", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert math.isfinite(headline) and headline > 0
    assert headline == pytest.approx(1.0 / _figure(lines, "train_ratio"), rel=2e-3)
    assert lines[-1] == f"fit_time_reinforced_over_plain: {headline:.3f}"


def test_loader_overhead_benchmark_prints_cpu_per_sample_and_ends_with_the_headline(capsys):
    headline = runpy.run_path(str(BENCHMARKS / "loader_overhead.py"))["main"](
        ["--images", "8", "--small-images", "8", "--num-samples", "2", "--batch-size", "4", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    ratios = [_figure(lines, f"fast_cpu_over_torchvision_{size}") for size in (224, 32)]
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    assert lines[-1] == f"loader_worst_ratio_over_goal: {headline:.3f}"
    assert headline == pytest.approx(max(ratios[0] / 0.75, ratios[1] / 1.0), abs=2e-3)
    pattern = r"\[\d+ px\] \w+ +CPU per sample: median +[\d.]+ us"
    per_sample = [line.split()[2] for line in lines if re.match(pattern, line)]
    assert per_sample == ["decode", "torchvision", "replay", "fast", "fast_nokeep", "replay_1by1", "fast_1by1",
                          "pixels"] * 2
