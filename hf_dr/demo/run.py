"""``hf-dr demo``: dataset reinforcement end to end on any image-classification dataset, on a CPU, with no network.

The paper's setting at small scale: a teacher ensemble that learned from far more data than the reinforced set, and
every stage the general flow's own library call (``hf-dr finetune-teacher`` -> ``hf-dr reinforce`` ->
``scripts/train.py`` -> ``hf-dr eval``), so what the demo shows is what a user's run does.

1. Teachers (the one-time cost): :func:`hf_dr.train.finetune.finetune_teacher` trains ``num_teachers`` members from
   random weights on the training split (:mod:`hf_dr.demo.data`), on views of the reinforcement's policy, reports
   each member's and the ensemble's top-1 and calibration (ECE) and leaves a member far below the others out.
2. Reinforcement (one-time): :func:`hf_dr.reinforce` runs the ensemble over ``num_samples`` stored augmentations of
   each image of a ``subset_size`` subset and keeps the top-``topk`` probabilities.
3. Students, the same architecture and hyperparameters, the same number of iterations, ``seeds`` each
   (:func:`hf_dr.train.inputs.training_data` and :func:`hf_dr.train.loop.fit`, as ``scripts/train.py``): *plain*
   (the subset with on-the-fly augmentation of the same policy and cross-entropy), *reinforced* (replay of the stored
   augmentations, KL to the stored labels) and *online KD* (the ensemble runs on every batch).
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
import torch

from hf_dr.augment.registry import create_policy
from hf_dr.data.codec import RecordCodec
from hf_dr.demo.config import DemoConfig
from hf_dr.demo.data import KEY, DemoData, load_demo_data
from hf_dr.demo.report import format_table, plot_results, summarize
from hf_dr.files import write_json_atomic, write_text_atomic
from hf_dr.models.checkpoints import load_checkpoint, save_checkpoint
from hf_dr.models.students import ProbabilityEnsemble, create_model
from hf_dr.train.inputs import DataConfig, eval_data, training_data
from hf_dr.train.loop import fit

__all__ = ["DemoConfig", "format_table", "plot_results", "run_demo", "summarize"]

logger = logging.getLogger(__name__)


# -- stages --------------------------------------------------------------------------------------------------------
def demo_policy(config: DemoConfig) -> Any:
    """The one augmentation policy of the teachers' training, the reinforcement and the plain students."""
    return create_policy(config.policy, crop={"scale": config.crop_scale})


def data_config(config: DemoConfig, data: DemoData) -> DataConfig:
    """The resolution and normalisation every teacher and student reads the images with."""
    return DataConfig(size=(config.image_size, config.image_size), mean=data.mean, std=data.std,
                      in_chans=data.in_chans)


def train_teachers(config: DemoConfig, data: DemoData, out: Path, progress: bool = False) -> dict[str, Any]:
    """Stage 1, :func:`hf_dr.train.finetune.finetune_teacher` from random weights: the kept members' spec path,
    every member's report (top-1, ECE, kept) and the ensemble's metrics and wall time."""
    from hf_dr.train.finetune import FinetuneConfig, finetune_teacher

    finetune = FinetuneConfig(
        config.teacher_arch, num_members=config.num_teachers, pretrained=False, image_size=config.image_size,
        seeds=tuple(config.teacher_seed(m) for m in range(config.num_teachers)), mean=data.mean, std=data.std,
        policy=demo_policy(config).config(), member_tolerance=config.member_tolerance,
        train=config.teacher_config(train_rows=len(data.teacher_rows)),
        preload=True)
    start = time.perf_counter()
    result = finetune_teacher(data.teacher_rows, finetune, str(out / "teachers"), eval_dataset=data.test,
                              image_column=config.image_column, label_column=config.label_column, key_column=KEY,
                              progress=progress, calibration_dataset=data.calibration)
    seconds = time.perf_counter() - start
    members = [{"member": i, "seed": m["seed"], "top1": m["metrics"]["top1"], "ece": m["metrics"]["ece"],
                "nll": m["metrics"]["nll"], "kept": m["kept"], "wall_time": m["train"]["wall_time"],
                "path": m["spec"]["weights"]} for i, m in enumerate(result.members)]
    for m in members:
        logger.info("teacher %d/%d: top-1 %.2f%%, ECE %.2f%%, %.0f s%s", m["member"] + 1, len(members),
                    100 * m["top1"], 100 * m["ece"], m["wall_time"], "" if m["kept"] else " (left out)")
    return {"spec_path": result.spec_path, "members": members, "calibration": result.calibration,
            "ensemble": {**result.ensemble, "train_seconds": seconds}}


def load_ensemble(config: DemoConfig, data: DemoData, teachers: dict[str, Any]) -> ProbabilityEnsemble:
    """The kept members as one classifier averaging their probabilities (the teacher's rule, at its calibrated
    temperature), for online KD."""
    members = []
    for m in teachers["members"]:
        if m["kept"]:
            member = create_model(config.teacher_arch, data.num_classes, in_chans=data.in_chans)
            load_checkpoint(member, m["path"])
            members.append(member)
    temperature = (teachers.get("calibration") or {}).get("temperature", 1.0)
    return ProbabilityEnsemble(members, temperature).eval()


def reinforce_subset(config: DemoConfig, data: DemoData, out: Path, spec_path: str, progress: bool = False,
                     codec: str | None = None) -> tuple[str, dict[str, Any]]:
    """Stage 2: the reinforced subset's folder (with the record codec ``codec``, a :meth:`RecordCodec.parse` name;
    the default when None) and its cost: seconds, bytes and bytes per reinforcement of its Parquet shards."""
    from hf_dr.generate.run import reinforce
    from hf_dr.models.teacher import load_teacher_spec

    record_codec = RecordCodec.parse(codec, config.student.temperature) if codec else RecordCodec()
    folder = out / ("reinforced" if codec is None else f"reinforced-{record_codec.name.replace('/', '-')}")
    start = time.perf_counter()
    num_samples = config.num_samples_for(len(data.subset))
    # keyed as the source is (its key column, else the image bytes), not by the demo's own column: the run then
    # verifies against the dataset it names (hf-dr verify --dataset DATASET --split TRAIN_SPLIT)
    reinforce(data.subset, load_teacher_spec(spec_path), demo_policy(config), num_samples=num_samples,
              topk=config.topk, seed=config.seed, output_dir=str(folder), image_column=config.image_column,
              label_column=config.label_column, key_column=config.key_column, batch_size=256, num_workers=0,
              channels_last=True, overwrite=True, progress=progress, codec=record_codec,
              source={"id": config.dataset, "split": f"{config.train_split}[{len(data.subset)} random rows]"})
    seconds = time.perf_counter() - start
    size = parquet_bytes(folder)
    cost = {"seconds": seconds, "bytes": size, "images": len(data.subset), "num_samples": num_samples,
            "topk": config.topk, "codec": record_codec.name,
            "bytes_per_reinforcement": size / (len(data.subset) * num_samples), "folder": str(folder)}
    return str(folder), cost


def parquet_bytes(folder: str | Path) -> int:
    """The bytes of a run's Parquet shards (what a reinforced subset stores)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*.parquet"))


def train_student(config: DemoConfig, data: DemoData, arm: str, seed: int, out: Path, test: Any,
                  reinforcements: str | None = None, teacher: torch.nn.Module | None = None,
                  arch: str | None = None, epochs: int | None = None, progress: bool = False,
                  curriculum: Any = None, evaluations: dict[str, Any] | None = None,
                  name: str | None = None) -> dict[str, Any]:
    """One student run as ``scripts/train.py`` makes it: :func:`hf_dr.train.inputs.training_data` (replay of
    ``reinforcements``, with a ``curriculum`` when given, else plain augmentation) and :func:`hf_dr.train.loop.fit`,
    evaluated on ``test`` and on each of ``evaluations`` (``{name: data}``, under ``"evaluations"``); ``arch`` and
    ``epochs`` override the config's. The checkpoint is ``students/{name}.safetensors`` (``{arm}-seed{seed}`` by
    default)."""
    from hf_dr.train.evaluation import evaluate

    arch = arch or config.student_arch
    data_cfg = data_config(config, data)
    train, _ = training_data(data.subset, data_cfg, reinforcements, policy=demo_policy(config), seed=seed,
                             preload=True, key_column=KEY, image_column=config.image_column,
                             label_column=config.label_column, curriculum=curriculum)
    train_config = config.student_config(seed, len(data.subset), epochs)
    torch.manual_seed(seed)
    model = create_model(arch, data.num_classes, in_chans=data.in_chans, **_size_kwargs(arch, config.image_size))
    result = fit(model, train, train_config, eval_dataset=test, teacher=teacher, num_classes=data.num_classes,
                 progress=progress)
    save_checkpoint(model, out / "students" / f"{name or f'{arm}-seed{seed}'}.safetensors",
                    {"architecture": arch, "num_classes": data.num_classes, "in_chans": data.in_chans,
                     "input_size": [data.in_chans, config.image_size, config.image_size], "mean": list(data.mean),
                     "std": list(data.std), "dataset": config.dataset})
    logger.info("%s %s seed %d: top-1 %.2f%%, ECE %.2f%%, %.0f s", arm, arch, seed, 100 * result.metrics["top1"],
                100 * result.metrics["ece"], result.wall_time)
    record = {"arm": arm, "seed": seed, "arch": arch, **result.metrics, "wall_time": result.wall_time,
              "steps": result.steps, "epochs": train_config.epochs,
              "params": sum(p.numel() for p in model.parameters())}
    if evaluations:
        model.eval()
        record["evaluations"] = {key: evaluate(model, rows) for key, rows in evaluations.items()}
    return record


def _size_kwargs(arch: str, image_size: int) -> dict[str, Any]:
    """timm's ``img_size`` for architectures built for one input size (ViTs, the flattening CNN); ViTs on small
    images (under 64 pixels) take 4-pixel patches (a 28x28 image is 49 tokens, not one)."""
    if arch.startswith(("vit", "deit", "test_vit")):
        return {"img_size": image_size, **({"patch_size": 4} if image_size < 64 else {})}
    if arch.startswith("hf_dr_mlp"):
        return {"input_size": image_size * image_size}
    return {"img_size": image_size} if arch.startswith("hf_dr_cnn_fc") else {}


def test_data(config: DemoConfig, data: DemoData, rows: datasets.Dataset | None = None) -> Any:
    """``rows`` (the test set by default) ready for :func:`hf_dr.evaluate`."""
    return eval_data(data.test if rows is None else rows, data_config(config, data), preload=True,
                     image_column=config.image_column, label_column=config.label_column)


def _train_students(config: DemoConfig, data: DemoData, out: Path, folders: dict[str, str], test: Any,
                    ensemble: torch.nn.Module, progress: bool = False) -> list[dict[str, Any]]:
    """Every arm's runs: plain and reinforced (from each codec's folder in ``folders``) for each of ``seeds``,
    online KD for each of ``kd_seeds``."""
    runs = []
    for seed in config.seeds:
        runs.append(train_student(config, data, "plain", seed, out, test, progress=progress))
        for codec, folder in folders.items():
            arm = "reinforced" if codec == next(iter(folders)) else f"reinforced[{codec}]"
            runs.append({**train_student(config, data, arm, seed, out, test, folder, progress=progress),
                         "codec": codec})
    for seed in config.kd_seeds:
        runs.append(train_student(config, data, "online_kd", seed, out, test, teacher=ensemble, progress=progress))
    return runs


# -- the run -------------------------------------------------------------------------------------------------------
def run_demo(config: DemoConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Runs the demo (see the module docstring) and returns its results (also written to ``results.json``);
    ``progress`` shows a bar with rate and ETA for every teacher, the reinforcement and every student.

    Example:
        >>> results = run_demo(DemoConfig.quick(dataset="digits", output_dir="runs/demo-quick"))  # doctest: +SKIP
        >>> sorted(results["summary"])  # doctest: +SKIP
        ['gain', 'online_kd', 'plain', 'reinforced']
    """
    config = config or DemoConfig()
    torch.set_num_threads(config.num_threads)
    datasets.disable_progress_bars()
    out = _start_output(config)
    total_start = time.perf_counter()
    data = load_demo_data(config)
    test = test_data(config, data)

    logger.info("stage 1/3: training %d teachers on %d images of %s", config.num_teachers, len(data.teacher_rows),
                config.dataset)
    teachers = train_teachers(config, data, out, progress)
    ensemble = load_ensemble(config, data, teachers)

    logger.info("stage 2/3: reinforcing %d images (N=%d, k=%d)", len(data.subset),
                config.num_samples_for(len(data.subset)), config.topk)
    folders, costs = {}, {}
    for codec in config.codecs or [None]:
        folder, cost = reinforce_subset(config, data, out, teachers["spec_path"], progress, codec)
        folders[cost["codec"]], costs[cost["codec"]] = folder, cost

    student = config.student_config(config.seed, len(data.subset))
    logger.info("stage 3/3: students (%s), %d epochs of batch %d each", config.student_arch, student.epochs,
                student.batch_size)
    runs = _train_students(config, data, out, folders, test, ensemble, progress)
    results = {
        "config": config.to_dict(),
        "data": data.describe(),
        "teachers": teachers["members"],
        "ensemble": {**teachers["ensemble"], "members": sum(m["kept"] for m in teachers["members"])},
        "calibration": teachers["calibration"],
        "reinforcement": next(iter(costs.values())),
        "codecs": costs,
        "runs": runs,
        "summary": summarize(runs),
        "total_seconds": time.perf_counter() - total_start,
    }
    _write_report(out, results)
    return results


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
