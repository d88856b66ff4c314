"""``hf-dr demo``: dataset reinforcement end to end on Fashion-MNIST, on a CPU, with no network.

The paper's setting at small scale: a teacher ensemble that learned from far more data than the reinforced set.

1. Teachers (the one-time cost): ``num_teachers`` small CNNs trained on the full 60,000-image training split.
2. Reinforcement (one-time): :func:`hf_dr.reinforce` runs the ensemble over ``num_samples`` stored augmentations of
   each image of a ``subset_size`` subset and keeps the top-``topk`` probabilities.
3. Students, the same architecture and hyperparameters, the same number of iterations, ``seeds`` each:
   *plain* (the subset with on-the-fly augmentation of the same policy and cross-entropy), *reinforced* (replay of
   the stored augmentations, KL to the stored labels) and *online KD* (the ensemble runs on every batch).
4. A table (accuracy mean +- std, NLL, ECE, wall time, the one-time costs) as Markdown and JSON, and a plot PNG.

Everything lands in ``output_dir``: ``demo_config.json``, ``results.json``, ``table.md``, ``demo.png``, the teachers'
and students' checkpoints and the reinforcement run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from hf_dr.augment.registry import create_policy
from hf_dr.data.fashion_mnist import (
    DEFAULT_ROOT,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    fashion_mnist_arrays,
    load_fashion_mnist,
)
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.transforms import AugmentTransform, EvalTransform
from hf_dr.errors import InvalidConfigError
from hf_dr.train.checkpoints import load_checkpoint, save_checkpoint
from hf_dr.train.evaluation import evaluate
from hf_dr.train.loop import TrainConfig, fit
from hf_dr.train.models import ProbabilityEnsemble, create_model

logger = logging.getLogger(__name__)

NUM_CLASSES = 10
IMAGE_SIZE = 28
ARMS = ("plain", "reinforced", "online_kd")


@dataclass
class DemoConfig:
    """Every setting of the demo (written to ``demo_config.json`` next to its outputs).

    Args:
        output_dir (`str`, *optional*, defaults to ``"runs/demo"``): where everything is written.
        data_root (`str`, *optional*): folder of the Fashion-MNIST idx files (Debian's by default).
        subset_size (`int`, *optional*, defaults to 2500): images of the reinforced (and student) training set.
        test_size (`int`, *optional*): test images to evaluate on (all 10,000 when not set).
        teacher_arch (`str`, *optional*, defaults to ``"hf_dr_cnn_fc"``): timm name of each teacher.
        num_teachers (`int`, *optional*, defaults to 4): ensemble members (different seeds).
        teacher_train_size (`int`, *optional*): images the teachers learn from (all 60,000 when not set).
        teacher_epochs (`int`, *optional*, defaults to 4): teacher epochs (random flips, cross-entropy).
        teacher_lr (`float`, *optional*, defaults to 0.1): teacher peak learning rate (SGD, cosine).
        policy (`str`, *optional*, defaults to ``"rrc"``): augmentation policy of reinforcement and plain training.
        crop_scale (`tuple[float, float]`, *optional*, defaults to ``(0.6, 1.0)``): random-resized-crop area range.
        num_samples (`int`, *optional*, defaults to 20): N, stored augmentations per image.
        topk (`int`, *optional*, defaults to 5): k, stored teacher probabilities per augmentation.
        student_arch (`str`, *optional*, defaults to ``"hf_dr_cnn_fc"``): timm name of the student (the teachers'
            architecture: what the student gains is the knowledge of the 60k images, not a bigger network).
        epochs (`int`, *optional*, defaults to 60): student epochs over the subset (same for every arm).
        batch_size (`int`, *optional*, defaults to 128): student batch size.
        optimizer, lr, weight_decay, warmup_fraction: student optimisation (same for every arm).
        temperature (`float`, *optional*, defaults to 1.0): distillation temperature of the reinforced and online-KD
            arms (the paper's 1).
        seeds (`list[int]`, *optional*, defaults to ``[0, 1, 2]``): student seeds of the plain and reinforced arms.
        kd_seeds (`list[int]`, *optional*, defaults to ``[0, 1, 2]``): student seeds of the online-KD arm.
        num_threads (`int`, *optional*, defaults to 2): ``torch.set_num_threads``.
        seed (`int`, *optional*, defaults to 0): seed of the subset, the teachers and the reinforcement.
    """

    output_dir: str = "runs/demo"
    data_root: str = str(DEFAULT_ROOT)
    subset_size: int = 2500
    test_size: int | None = None
    teacher_arch: str = "hf_dr_cnn_fc"
    num_teachers: int = 4
    teacher_train_size: int | None = None
    teacher_epochs: int = 4
    teacher_lr: float = 0.1
    policy: str = "rrc"
    crop_scale: tuple[float, float] = (0.6, 1.0)
    num_samples: int = 20
    topk: int = 5
    student_arch: str = "hf_dr_cnn_fc"
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05
    temperature: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    kd_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    num_threads: int = 2
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """A setting for CI that runs every stage in about a minute (its numbers show nothing)."""
        values = dict(subset_size=512, test_size=1000, num_teachers=2, teacher_train_size=4096, teacher_epochs=1,
                      teacher_lr=0.02, num_samples=3, epochs=2, seeds=[0, 1], kd_seeds=[0])
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        self.seeds, self.kd_seeds = [int(s) for s in self.seeds], [int(s) for s in self.kd_seeds]
        if self.subset_size < self.batch_size:
            raise InvalidConfigError(f"subset_size ({self.subset_size}) should be at least batch_size "
                                     f"({self.batch_size})")
        if not self.seeds:
            raise InvalidConfigError("seeds should hold at least one seed")
        if self.num_teachers < 1:
            raise InvalidConfigError(f"num_teachers should be positive, but got {self.num_teachers} instead.")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DemoConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidConfigError(f"unknown demo settings {unknown}; valid ones are {sorted(known)}")
        return cls(**values)

    def student_config(self, seed: int) -> TrainConfig:
        """The one set of student hyperparameters every arm uses."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                           weight_decay=self.weight_decay, warmup_fraction=self.warmup_fraction,
                           temperature=self.temperature, seed=seed, channels_last=True, log_every=10_000)


# -- data ----------------------------------------------------------------------------------------------------------
class _ArrayImages(torch.utils.data.Dataset):
    """Teacher training data: normalised uint8 arrays with batched random horizontal flips (cheap on a CPU)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.images = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1)
        self.labels = torch.from_numpy(np.array(labels, dtype=np.int64))
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        index = torch.tensor(indices)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 1_009 + int(index[0]))
        pixels = _normalize(self.images[index])
        flip = torch.rand(len(index), generator=generator) < 0.5
        pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
        return [{"pixel_values": p, "labels": y} for p, y in zip(pixels, self.labels[index], strict=True)]


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0 - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0]


def _subset_indices(config: DemoConfig, total: int) -> np.ndarray:
    return np.sort(np.random.default_rng(config.seed).permutation(total)[: config.subset_size])


# -- stages --------------------------------------------------------------------------------------------------------
def _train_teachers(config: DemoConfig, out: Path, test: Any) -> tuple[list[str], list[dict[str, Any]], float]:
    images, labels = fashion_mnist_arrays("train", config.data_root)
    if config.teacher_train_size:
        rows = np.random.default_rng(config.seed + 1).permutation(len(labels))[: config.teacher_train_size]
        images, labels = images[rows], labels[rows]
    start, specs, reports = time.perf_counter(), [], []
    for member in range(config.num_teachers):
        seed = 1000 + 17 * member + config.seed
        torch.manual_seed(seed)
        model = create_model(config.teacher_arch, NUM_CLASSES, in_chans=1)
        train_config = TrainConfig(epochs=config.teacher_epochs, batch_size=128, lr=config.teacher_lr,
                                   weight_decay=5e-4, seed=seed, channels_last=True, log_every=10_000)
        result = fit(model, _ArrayImages(images, labels, seed), train_config, eval_dataset=test)
        path = save_checkpoint(model, out / "teachers" / f"teacher-{member}.safetensors",
                               _checkpoint_metadata(config.teacher_arch))
        reports.append({"member": member, "seed": seed, "top1": result.metrics["top1"], "ece": result.metrics["ece"],
                        "wall_time": result.wall_time, "path": str(path)})
        logger.info("teacher %d/%d: top-1 %.2f%% in %.0f s", member + 1, config.num_teachers,
                    100 * result.metrics["top1"], result.wall_time)
    best = max(r["top1"] for r in reports)
    kept = [r for r in reports if r["top1"] >= best - 0.05]  # a collapsed member would flatten the labels
    for r in reports:
        r["kept"] = r in kept
        if not r["kept"]:
            logger.warning("dropping teacher %d (top-1 %.2f%%, best %.2f%%)", r["member"], 100 * r["top1"], 100 * best)
    specs = [f"{config.teacher_arch}={r['path']}" for r in kept]
    return specs, reports, time.perf_counter() - start


def _checkpoint_metadata(arch: str) -> dict[str, Any]:
    return {"architecture": arch, "num_classes": NUM_CLASSES, "in_chans": 1, "input_size": [1, IMAGE_SIZE, IMAGE_SIZE],
            "mean": list(FASHION_MNIST_MEAN), "std": list(FASHION_MNIST_STD), "dataset": "fashion-mnist"}


def _reinforce(config: DemoConfig, out: Path, subset: datasets.Dataset, specs: list[str]) -> tuple[Any, float, int]:
    from hf_dr.generate.run import reinforce
    from hf_dr.generate.storage import load_reinforcements

    policy = create_policy(config.policy, crop={"scale": config.crop_scale})
    folder = out / "reinforced"
    start = time.perf_counter()
    reinforce(subset, specs, policy, num_samples=config.num_samples, topk=config.topk, seed=config.seed,
              output_dir=str(folder), key_column="key", batch_size=256, num_workers=0, channels_last=True,
              overwrite=True, progress=False, source={"id": "fashion-mnist (Debian dataset-fashion-mnist)",
                                                      "split": f"train[{config.subset_size} random rows]"})
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
    return load_reinforcements(str(folder), keep_in_memory=True), seconds, size


def _student(config: DemoConfig, arm: str, seed: int, train: PreloadedDataset, test: Any,
             teacher: torch.nn.Module | None, out: Path) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = create_model(config.student_arch, NUM_CLASSES, in_chans=1)
    result = fit(model, train, config.student_config(seed), eval_dataset=test, teacher=teacher,
                 num_classes=NUM_CLASSES)
    save_checkpoint(model, out / "students" / f"{arm}-seed{seed}.safetensors",
                    _checkpoint_metadata(config.student_arch))
    logger.info("%s seed %d: top-1 %.2f%%, ECE %.2f%%, %.0f s", arm, seed, 100 * result.metrics["top1"],
                100 * result.metrics["ece"], result.wall_time)
    return {"arm": arm, "seed": seed, **result.metrics, "wall_time": result.wall_time, "steps": result.steps}


def run_demo(config: DemoConfig | None = None) -> dict[str, Any]:
    """Runs the demo (see the module docstring) and returns its results (also written to ``results.json``).

    Example:
        >>> results = run_demo(DemoConfig.quick(output_dir="runs/demo-quick"))  # doctest: +SKIP
        >>> sorted(results["summary"])  # doctest: +SKIP
        ['online_kd', 'plain', 'reinforced']
    """
    config = config or DemoConfig()
    torch.set_num_threads(config.num_threads)
    datasets.disable_progress_bars()
    out = Path(config.output_dir)
    for stale in ("teachers", "students"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    total_start = time.perf_counter()

    test_rows = range(config.test_size) if config.test_size else None
    test = PreloadedDataset(load_fashion_mnist("test", test_rows, config.data_root),
                            EvalTransform(IMAGE_SIZE, FASHION_MNIST_MEAN, FASHION_MNIST_STD))
    subset = load_fashion_mnist("train", _subset_indices(config, 60_000), config.data_root)

    logger.info("stage 1/3: training %d teachers on the full training split", config.num_teachers)
    specs, teachers, teacher_seconds = _train_teachers(config, out, test)
    members = [create_model(config.teacher_arch, NUM_CLASSES, in_chans=1) for _ in specs]
    for member, spec in zip(members, specs, strict=True):
        load_checkpoint(member, spec.split("=", 1)[1])
    ensemble = ProbabilityEnsemble(members).eval()
    ensemble_metrics = evaluate(ensemble, test)

    logger.info("stage 2/3: reinforcing %d images (N=%d, k=%d)", config.subset_size, config.num_samples, config.topk)
    reinforcements, reinforce_seconds, reinforce_bytes = _reinforce(config, out, subset, specs)

    logger.info("stage 3/3: students (%s), %d epochs each", config.student_arch, config.epochs)
    policy = create_policy(config.policy, crop={"scale": config.crop_scale})
    runs = []
    for seed in config.seeds:
        plain = PreloadedDataset(subset, AugmentTransform(policy, IMAGE_SIZE, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                                                          seed=seed))
        reinforced = PreloadedDataset(subset, ReinforcedTransform(
            reinforcements, policy=policy, num_classes=NUM_CLASSES, size=IMAGE_SIZE, mean=FASHION_MNIST_MEAN,
            std=FASHION_MNIST_STD, seed=seed))
        runs.append(_student(config, "plain", seed, plain, test, None, out))
        runs.append(_student(config, "reinforced", seed, reinforced, test, None, out))
    for seed in config.kd_seeds:
        plain = PreloadedDataset(subset, AugmentTransform(policy, IMAGE_SIZE, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                                                          seed=seed))
        runs.append(_student(config, "online_kd", seed, plain, test, ensemble, out))

    results = {
        "config": config.to_dict(),
        "teachers": teachers,
        "ensemble": {**ensemble_metrics, "members": len(specs), "train_seconds": teacher_seconds},
        "reinforcement": {"seconds": reinforce_seconds, "bytes": reinforce_bytes, "images": config.subset_size,
                          "num_samples": config.num_samples, "topk": config.topk},
        "runs": runs,
        "summary": summarize(runs),
        "total_seconds": time.perf_counter() - total_start,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = format_table(results)
    (out / "table.md").write_text(table + "\n")
    plot_results(results, out / "demo.png")
    return results


# -- reporting -----------------------------------------------------------------------------------------------------
def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric per arm (over seeds)."""
    summary = {}
    for arm in ARMS:
        rows = [r for r in runs if r["arm"] == arm]
        if not rows:
            continue
        entry: dict[str, float] = {"runs": len(rows), "steps": rows[0]["steps"]}
        for metric in ("top1", "nll", "ece", "wall_time"):
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = _mean_std([r[metric] for r in rows])
        summary[arm] = entry
    if "plain" in summary and "reinforced" in summary:
        plain, reinforced = summary["plain"], summary["reinforced"]
        gain = reinforced["top1_mean"] - plain["top1_mean"]
        spread = max(plain["top1_std"], reinforced["top1_std"])
        summary["gain"] = {"top1_points": 100 * gain, "max_std_points": 100 * spread,
                           "exceeds_2_std": bool(gain > 2 * spread),
                           "ece_points": 100 * (reinforced["ece_mean"] - plain["ece_mean"])}
    return summary


def format_table(results: dict[str, Any]) -> str:
    """The demo's Markdown table: one row per arm, then the teacher and the one-time costs."""
    config, summary = results["config"], results["summary"]
    names = {"plain": "Plain (on-the-fly aug., CE)", "reinforced": "**Reinforced** (stored aug. + soft labels)",
             "online_kd": "Online KD (teacher every step)"}
    lines = [
        f"Student `{config['student_arch']}` on {config['subset_size']:,} Fashion-MNIST images, "
        f"{config['epochs']} epochs ({summary['plain']['steps'] if 'plain' in summary else '?'} iterations), "
        f"same hyperparameters; test set of {results['ensemble']['num_samples']:,} images.",
        "",
        "| Run | Seeds | Top-1 (%) | NLL | ECE (%) | Train time / run (s) |",
        "|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        if arm not in summary:
            continue
        s = summary[arm]
        lines.append(
            f"| {names[arm]} | {s['runs']} | {100 * s['top1_mean']:.2f} ± {100 * s['top1_std']:.2f} | "
            f"{s['nll_mean']:.3f} | {100 * s['ece_mean']:.2f} ± {100 * s['ece_std']:.2f} | "
            f"{s['wall_time_mean']:.1f} |"
        )
    ens, rein = results["ensemble"], results["reinforcement"]
    lines.append(
        f"| Teacher ensemble ({ens['members']} x `{config['teacher_arch']}`, 60k images) | – | "
        f"{100 * ens['top1']:.2f} | {ens['nll']:.3f} | {100 * ens['ece']:.2f} | "
        f"{ens['train_seconds']:.1f} (one-time) |"
    )
    lines.append(
        f"| Reinforcement (N={rein['num_samples']}, k={rein['topk']}, {rein['bytes'] / 1e6:.1f} MB) | – | – | – | – | "
        f"{rein['seconds']:.1f} (one-time) |"
    )
    if "gain" in summary:
        g = summary["gain"]
        verdict = "exceeds" if g["exceeds_2_std"] else "does not exceed"
        lines += ["", f"Reinforced − plain: {g['top1_points']:+.2f} points top-1 ({verdict} 2 x the larger std, "
                      f"{g['max_std_points']:.2f}); ECE {g['ece_points']:+.2f} points."]
    if "online_kd" in summary and "reinforced" in summary:
        kd, re_ = summary["online_kd"], summary["reinforced"]
        extra = kd["wall_time_mean"] - re_["wall_time_mean"]
        line = (f"Online KD: {100 * (kd['top1_mean'] - re_['top1_mean']):+.2f} points vs reinforced at "
                f"{kd['wall_time_mean'] / max(re_['wall_time_mean'], 1e-9):.1f}x its training time per run")
        if extra > 0:
            line += (f" (+{extra:.0f} s of teacher forward passes per run; the one-time reinforcement, "
                     f"{rein['seconds']:.0f} s, is repaid after {rein['seconds'] / extra:.1f} runs)")
        lines.append(line + ".")
    lines.append(f"Total wall time: {results['total_seconds'] / 60:.1f} min on {config['num_threads']} threads.")
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Accuracy (mean +- std over seeds) against training time per run, and ECE, per arm; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    arms = [a for a in ARMS if a in summary]
    colors = {"plain": "#7f7f7f", "reinforced": "#d62728", "online_kd": "#1f77b4"}
    labels = {"plain": "plain", "reinforced": "reinforced", "online_kd": "online KD"}
    fig, (ax_acc, ax_ece) = plt.subplots(1, 2, figsize=(10, 4))
    for arm in arms:
        s = summary[arm]
        runs = [r for r in results["runs"] if r["arm"] == arm]
        ax_acc.scatter([r["wall_time"] for r in runs], [100 * r["top1"] for r in runs], color=colors[arm], alpha=0.35)
        ax_acc.errorbar(s["wall_time_mean"], 100 * s["top1_mean"], yerr=100 * s["top1_std"], fmt="o", ms=9,
                        capsize=4, color=colors[arm], label=f"{labels[arm]} ({s['runs']} seeds)")
    ens = results["ensemble"]
    ax_acc.axhline(100 * ens["top1"], ls="--", color="black", lw=1,
                   label=f"teacher ensemble ({100 * ens['top1']:.1f}%)")
    ax_acc.set_xlabel("student training time per run (s)")
    ax_acc.set_ylabel("test top-1 (%)")
    ax_acc.set_title(f"{results['config']['student_arch']}, {summary[arms[0]]['steps']} iterations each")
    ax_acc.legend(fontsize=8, loc="lower right")
    x = np.arange(len(arms))
    ax_ece.bar(x, [100 * summary[a]["ece_mean"] for a in arms], yerr=[100 * summary[a]["ece_std"] for a in arms],
               color=[colors[a] for a in arms], capsize=4)
    ax_ece.set_xticks(x, [labels[a] for a in arms])
    ax_ece.set_ylabel("expected calibration error (%, 15 bins)")
    rein = results["reinforcement"]
    ax_ece.set_title(f"one-time: teachers {ens['train_seconds']:.0f} s, reinforcement {rein['seconds']:.0f} s")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
