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
and students' checkpoints and the reinforcement run, each file written atomically (:mod:`hf_dr.files`). The settings
are :class:`hf_dr.demo.config.DemoConfig`; the table and the plot come from :mod:`hf_dr.demo.report`.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from hf_dr.augment.functional import normalize
from hf_dr.augment.registry import create_policy
from hf_dr.data.codec import RecordCodec
from hf_dr.data.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist_arrays, load_fashion_mnist
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.transforms import AugmentTransform, EvalTransform
from hf_dr.demo.config import IMAGE_SIZE, NUM_CLASSES, DemoConfig
from hf_dr.demo.report import format_table, plot_results, summarize
from hf_dr.files import write_json_atomic, write_text_atomic
from hf_dr.train.checkpoints import load_checkpoint, save_checkpoint
from hf_dr.train.evaluation import evaluate
from hf_dr.train.loop import fit
from hf_dr.train.models import ProbabilityEnsemble, create_model

__all__ = ["DemoConfig", "format_table", "plot_results", "run_demo", "summarize"]

logger = logging.getLogger(__name__)


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
        pixels = normalize(self.images[index], FASHION_MNIST_MEAN, FASHION_MNIST_STD)
        flip = torch.rand(len(index), generator=generator) < 0.5
        pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
        return [{"pixel_values": p, "labels": y} for p, y in zip(pixels, self.labels[index], strict=True)]


def _subset_indices(config: DemoConfig, total: int) -> np.ndarray:
    return np.sort(np.random.default_rng(config.seed).permutation(total)[: config.subset_size])


def _load_data(config: DemoConfig) -> tuple[PreloadedDataset, datasets.Dataset]:
    """The test set, ready for :func:`hf_dr.evaluate`, and the training subset that is reinforced."""
    test_rows = range(config.test_size) if config.test_size else None
    test = PreloadedDataset(load_fashion_mnist("test", test_rows, config.data_root),
                            EvalTransform(IMAGE_SIZE, FASHION_MNIST_MEAN, FASHION_MNIST_STD))
    subset = load_fashion_mnist("train", _subset_indices(config, 60_000), config.data_root)
    return test, subset


def _checkpoint_metadata(arch: str) -> dict[str, Any]:
    return {"architecture": arch, "num_classes": NUM_CLASSES, "in_chans": 1, "input_size": [1, IMAGE_SIZE, IMAGE_SIZE],
            "mean": list(FASHION_MNIST_MEAN), "std": list(FASHION_MNIST_STD), "dataset": "fashion-mnist"}


# -- stages --------------------------------------------------------------------------------------------------------
def _train_teachers(config: DemoConfig, out: Path, test: Any, progress: bool = False
                    ) -> tuple[list[str], list[dict[str, Any]], float]:
    """Trains the members on the (full) training split; returns the specs of those kept, every member's report and
    the wall time."""
    images, labels = fashion_mnist_arrays("train", config.data_root)
    if config.teacher_train_size:
        rows = np.random.default_rng(config.seed + 1).permutation(len(labels))[: config.teacher_train_size]
        images, labels = images[rows], labels[rows]
    start, reports = time.perf_counter(), []
    for member in range(config.num_teachers):
        train_config = config.teacher_config(member)
        torch.manual_seed(train_config.seed)
        model = create_model(config.teacher_arch, NUM_CLASSES, in_chans=1)
        result = fit(model, _ArrayImages(images, labels, train_config.seed), train_config, eval_dataset=test,
                     progress=progress)
        path = save_checkpoint(model, out / "teachers" / f"teacher-{member}.safetensors",
                               _checkpoint_metadata(config.teacher_arch))
        reports.append({"member": member, "seed": train_config.seed, "top1": result.metrics["top1"],
                        "ece": result.metrics["ece"], "wall_time": result.wall_time, "path": str(path)})
        logger.info("teacher %d/%d: top-1 %.2f%% in %.0f s", member + 1, config.num_teachers,
                    100 * result.metrics["top1"], result.wall_time)
    kept = _keep_strong(reports)
    return [f"{config.teacher_arch}={r['path']}" for r in kept], reports, time.perf_counter() - start


def _keep_strong(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members within 5 points of the best top-1 (a collapsed member would flatten the labels); marks each
    report ``kept``."""
    best = max(r["top1"] for r in reports)
    kept = [r for r in reports if r["top1"] >= best - 0.05]
    for r in reports:
        r["kept"] = r in kept
        if not r["kept"]:
            logger.warning("dropping teacher %d (top-1 %.2f%%, best %.2f%%)", r["member"], 100 * r["top1"], 100 * best)
    return kept


def _load_ensemble(config: DemoConfig, specs: list[str]) -> ProbabilityEnsemble:
    """The kept teachers as one classifier averaging their probabilities (the teacher's rule)."""
    members = [create_model(config.teacher_arch, NUM_CLASSES, in_chans=1) for _ in specs]
    for member, spec in zip(members, specs, strict=True):
        load_checkpoint(member, spec.split("=", 1)[1])
    return ProbabilityEnsemble(members).eval()


def _reinforce(config: DemoConfig, out: Path, subset: datasets.Dataset, specs: list[str], progress: bool = False,
               codec: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The reinforced subset (with the record codec ``codec``, a :meth:`RecordCodec.parse` name; the default when
    None) and its cost: seconds, bytes and bytes per reinforcement of its Parquet shards."""
    from hf_dr.generate.loading import load_reinforcements
    from hf_dr.generate.run import reinforce

    policy = create_policy(config.policy, crop={"scale": config.crop_scale})
    record_codec = RecordCodec.parse(codec, config.student.temperature) if codec else RecordCodec()
    folder = out / ("reinforced" if codec is None else f"reinforced-{record_codec.name.replace('/', '-')}")
    start = time.perf_counter()
    reinforce(subset, specs, policy, num_samples=config.num_samples, topk=config.topk, seed=config.seed,
              output_dir=str(folder), key_column="key", batch_size=256, num_workers=0, channels_last=True,
              overwrite=True, progress=progress, codec=record_codec,
              source={"id": "fashion-mnist (Debian dataset-fashion-mnist)",
                      "split": f"train[{config.subset_size} random rows]"})
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
    cost = {"seconds": seconds, "bytes": size, "images": config.subset_size, "num_samples": config.num_samples,
            "topk": config.topk, "codec": record_codec.name,
            "bytes_per_reinforcement": size / (config.subset_size * config.num_samples)}
    return load_reinforcements(str(folder), keep_in_memory=True), cost


def _student(config: DemoConfig, arm: str, seed: int, train: PreloadedDataset, test: Any,
             teacher: torch.nn.Module | None, out: Path, progress: bool = False) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = create_model(config.student_arch, NUM_CLASSES, in_chans=1)
    result = fit(model, train, config.student_config(seed), eval_dataset=test, teacher=teacher,
                 num_classes=NUM_CLASSES, progress=progress)
    save_checkpoint(model, out / "students" / f"{arm}-seed{seed}.safetensors",
                    _checkpoint_metadata(config.student_arch))
    logger.info("%s seed %d: top-1 %.2f%%, ECE %.2f%%, %.0f s", arm, seed, 100 * result.metrics["top1"],
                100 * result.metrics["ece"], result.wall_time)
    return {"arm": arm, "seed": seed, **result.metrics, "wall_time": result.wall_time, "steps": result.steps}


def _train_students(config: DemoConfig, out: Path, subset: datasets.Dataset, reinforced_sets: dict[str, Any],
                    test: Any, ensemble: torch.nn.Module, progress: bool = False) -> list[dict[str, Any]]:
    """Every arm's runs: plain and reinforced (from each codec's reinforcements in ``reinforced_sets``) for each of
    ``seeds``, online KD for each of ``kd_seeds``."""
    policy = create_policy(config.policy, crop={"scale": config.crop_scale})

    def plain(seed: int) -> PreloadedDataset:
        return PreloadedDataset(subset, AugmentTransform(policy, IMAGE_SIZE, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                                                         seed=seed))

    runs = []
    for seed in config.seeds:
        runs.append(_student(config, "plain", seed, plain(seed), test, None, out, progress))
        for codec, reinforcements in reinforced_sets.items():
            reinforced = PreloadedDataset(subset, ReinforcedTransform(
                reinforcements, policy=policy, num_classes=NUM_CLASSES, size=IMAGE_SIZE, mean=FASHION_MNIST_MEAN,
                std=FASHION_MNIST_STD, seed=seed))
            arm = "reinforced" if codec == _default_codec(reinforced_sets) else f"reinforced[{codec}]"
            runs.append({**_student(config, arm, seed, reinforced, test, None, out, progress), "codec": codec})
    for seed in config.kd_seeds:
        runs.append(_student(config, "online_kd", seed, plain(seed), test, ensemble, out, progress))
    return runs


# -- the run -------------------------------------------------------------------------------------------------------
def run_demo(config: DemoConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Runs the demo (see the module docstring) and returns its results (also written to ``results.json``);
    ``progress`` shows a bar with rate and ETA for every teacher, the reinforcement and every student.

    Example:
        >>> results = run_demo(DemoConfig.quick(output_dir="runs/demo-quick"))  # doctest: +SKIP
        >>> sorted(results["summary"])  # doctest: +SKIP
        ['online_kd', 'plain', 'reinforced']
    """
    config = config or DemoConfig()
    torch.set_num_threads(config.num_threads)
    datasets.disable_progress_bars()
    out = _start_output(config)
    total_start = time.perf_counter()
    test, subset = _load_data(config)

    logger.info("stage 1/3: training %d teachers on the full training split", config.num_teachers)
    specs, teachers, teacher_seconds = _train_teachers(config, out, test, progress)
    ensemble = _load_ensemble(config, specs)
    ensemble_metrics = evaluate(ensemble, test)

    logger.info("stage 2/3: reinforcing %d images (N=%d, k=%d)", config.subset_size, config.num_samples, config.topk)
    reinforced_sets, costs = {}, {}
    for codec in config.codecs or [None]:
        reinforcements, cost = _reinforce(config, out, subset, specs, progress, codec)
        reinforced_sets[cost["codec"]], costs[cost["codec"]] = reinforcements, cost

    logger.info("stage 3/3: students (%s), %d epochs each", config.student_arch, config.student.epochs)
    runs = _train_students(config, out, subset, reinforced_sets, test, ensemble, progress)
    results = {
        "config": config.to_dict(),
        "teachers": teachers,
        "ensemble": {**ensemble_metrics, "members": len(specs), "train_seconds": teacher_seconds},
        "reinforcement": next(iter(costs.values())),
        "codecs": costs,
        "runs": runs,
        "summary": summarize(runs),
        "total_seconds": time.perf_counter() - total_start,
    }
    _write_report(out, results)
    return results


def _default_codec(reinforced_sets: dict[str, Any]) -> str:
    """The codec whose students form the ``reinforced`` arm: the first one (the others are arms of the codec table)."""
    return next(iter(reinforced_sets))


def _start_output(config: DemoConfig) -> Path:
    """The output folder without a previous run's checkpoints, holding this run's ``demo_config.json``."""
    out = Path(config.output_dir)
    for stale in ("teachers", "students"):
        shutil.rmtree(out / stale, ignore_errors=True)
    write_json_atomic(out / "demo_config.json", config.to_dict())
    return out


def _write_report(out: Path, results: dict[str, Any]) -> None:
    """``results.json``, ``table.md`` and ``demo.png``, each written atomically."""
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", format_table(results) + "\n")
    plot_results(results, out / "demo.png")
