"""``hf-dr study``: the paper's broader claims measured on one reinforced subset, through the demo's stages.

One set of teachers (:func:`hf_dr.demo.run.train_teachers`) and one reinforced subset
(:func:`hf_dr.demo.run.reinforce_subset`) serve every study; each student is a
:func:`hf_dr.demo.run.train_student` run (the general flow's ``training_data`` + ``fit``) at the same iterations as
its plain counterpart:

- ``architectures``: plain vs reinforced for each of ``architectures`` (a small CNN, an MLP, timm's small ResNet by
  default), every seed;
- ``robustness``: the default architecture's plain, reinforced and online-KD students on corrupted test sets
  (:mod:`hf_dr.demo.corruptions`, each corruption at each of ``severities``): top-1 and ECE;
- ``epochs``: plain, online KD and reinforced at ``epoch_scales`` times the default epochs (the paper's Fig. 1:
  accuracy against training time);
- ``curricula``: replay by the teacher's confidence (:mod:`hf_dr.data.curriculum`, App. C.4/C.5);
- ``selection``: N' of the N stored augmentations kept by each rule of :mod:`hf_dr.generate.selection` (App. C.6),
  against N' drawn at random and all N.

Every student's record is written to ``runs/NAME.json`` as it finishes and read back by a rerun of the same
command (same ``study_config.json``), as are the teachers and the reinforced subset: a killed study resumes where it
stopped. Tables (Markdown and JSON) and plots come from :mod:`hf_dr.demo.study_report`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch

from hf_dr.data.curriculum import CURRICULA, Curriculum
from hf_dr.demo.config import DemoConfig
from hf_dr.demo.corruptions import CORRUPTIONS, corrupt_dataset
from hf_dr.demo.data import KEY, DemoData, load_demo_data
from hf_dr.errors import InvalidConfigError
from hf_dr.files import read_json, to_json_value, write_json_atomic

logger = logging.getLogger(__name__)

STUDIES = ("architectures", "robustness", "epochs", "curricula", "selection")
ARCHITECTURES = ("hf_dr_cnn_fc", "hf_dr_mlp", "test_resnet")
STUDY_CURRICULA = ("easy->all", "hard->all", "all->easy", "all->hard")
SELECTION_RULES = ("random", "min_confidence", "max_entropy", "max_loss", "kmeans")
QUICK = {"studies": list(STUDIES), "architectures": ["hf_dr_cnn_fc", "hf_dr_mlp"],
         "corruptions": ["gaussian_noise", "rotation"], "severities": [3], "epoch_scales": [0.5, 1.0],
         "curricula": ["easy->all"], "selection_rules": ["random", "max_loss"], "selection_keep": 2}


@dataclass
class StudyConfig:
    """Every setting of a study (written to ``study_config.json``).

    Args:
        demo (`DemoConfig`): the dataset, teachers, reinforcement, default student, seeds and output folder (the
            demo's settings; online KD runs for ``demo.kd_seeds``).
        studies (`list[str]`, *optional*): which of :data:`STUDIES` to run (all by default).
        architectures (`list[str]`, *optional*): timm names of the students of the architecture study.
        corruptions (`list[str]`, *optional*): of :data:`hf_dr.demo.corruptions.CORRUPTIONS` (all by default).
        severities (`list[int]`, *optional*, defaults to ``[1, 3, 5]``): of each corruption.
        epoch_scales (`list[float]`, *optional*, defaults to ``[0.25, 0.5, 1, 2]``): training lengths of the epochs
            study, in multiples of the default student's epochs.
        sweep_seeds (`list[int]`, *optional*, defaults to ``[0]``): seeds of the epochs study's other lengths.
        curricula (`list[str]`, *optional*): of :data:`hf_dr.data.curriculum.CURRICULA`.
        selection_rules (`list[str]`, *optional*): of :data:`hf_dr.generate.selection.RULES`.
        selection_keep (`int`, *optional*): N', records kept of N (a quarter of N by default: :meth:`keep_of`).

    Example:
        >>> config = StudyConfig.quick(output_dir="runs/study-quick")
        >>> config.demo.dataset, config.architectures
        ('digits', ['hf_dr_cnn_fc', 'hf_dr_mlp'])
        >>> StudyConfig.from_dict(config.to_dict()) == config
        True
    """

    demo: DemoConfig = field(default_factory=lambda: DemoConfig(dataset="digits", output_dir="runs/study"))
    studies: list[str] = field(default_factory=lambda: list(STUDIES))
    architectures: list[str] = field(default_factory=lambda: list(ARCHITECTURES))
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))
    severities: list[int] = field(default_factory=lambda: [1, 3, 5])
    epoch_scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    sweep_seeds: list[int] = field(default_factory=lambda: [0])
    curricula: list[str] = field(default_factory=lambda: list(STUDY_CURRICULA))
    selection_rules: list[str] = field(default_factory=lambda: list(SELECTION_RULES))
    selection_keep: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.demo, dict):
            self.demo = DemoConfig.from_dict(self.demo)
        from hf_dr.generate.selection import RULES

        for name, values, valid in (("studies", self.studies, STUDIES), ("corruptions", self.corruptions, CORRUPTIONS),
                                    ("curricula", self.curricula, CURRICULA),
                                    ("selection_rules", self.selection_rules, RULES)):
            unknown = sorted(set(values) - set(valid))
            if unknown:
                raise InvalidConfigError(f"unknown {name} {unknown}; valid ones are {list(valid)}")
        if self.demo.codecs:
            raise InvalidConfigError("hf-dr study reinforces with the default codec; compare codecs with hf-dr demo "
                                     "--codecs")
        if self.selection_keep is not None and not 1 <= self.selection_keep < (self.demo.num_samples or 1e9):
            raise InvalidConfigError(f"selection_keep should be between 1 and N - 1, but got {self.selection_keep} "
                                     f"(N={self.demo.num_samples})")

    def keep_of(self, num_samples: int) -> int:
        """N' of the selection study, of N = ``num_samples``: :attr:`selection_keep`, else a quarter of N."""
        return self.selection_keep or max(1, num_samples // 4)

    @classmethod
    def quick(cls, **demo_overrides: Any) -> StudyConfig:
        """Every study on digits in a few minutes, for CI (its numbers show nothing)."""
        return cls(demo=DemoConfig.quick(**{"dataset": "digits", "output_dir": "runs/study-quick", **demo_overrides}),
                   **QUICK)

    def to_dict(self) -> dict[str, Any]:
        return to_json_value({**asdict(self), "demo": self.demo.to_dict()})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudyConfig:
        names = {f.name for f in cls.__dataclass_fields__.values()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidConfigError(f"unknown study settings {unknown}; valid ones are {sorted(names)}")
        return cls(**values)


class _Runs:
    """The study's student records, each in ``runs/NAME.json`` as soon as it finishes; a rerun reads them back."""

    def __init__(self, out: Path) -> None:
        self.folder = out / "runs"
        self.records: list[dict[str, Any]] = []

    def get(self, name: str, study: str, make: Any, **tags: Any) -> dict[str, Any]:
        path = self.folder / f"{name}.json"
        if path.exists():
            record = read_json(path)
        else:
            record = {**make(name), "name": name, "study": study, **tags}
            write_json_atomic(path, record)
        self.records.append(record)
        return record


def run_study(config: StudyConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Runs the studies of ``config`` (see the module docstring); returns the results (also ``results.json``).

    Example:
        >>> results = run_study(StudyConfig.quick())  # doctest: +SKIP
        >>> sorted(results["tables"])  # doctest: +SKIP
        ['architectures', 'epochs', 'options', 'robustness']
    """
    from hf_dr.demo.run import load_ensemble, reinforce_subset, test_data, train_student, train_teachers
    from hf_dr.demo.study_report import build_tables, write_report

    config = config or StudyConfig()
    demo = config.demo
    torch.set_num_threads(demo.num_threads)
    datasets.disable_progress_bars()
    out = Path(demo.output_dir)
    _check_resume(out, config)
    start = time.perf_counter()
    data = load_demo_data(demo)
    test = test_data(demo, data)
    teachers = _teachers(demo, data, out, progress, train_teachers)
    ensemble = load_ensemble(demo, data, teachers)
    folder, cost = _reinforced(demo, data, out, teachers["spec_path"], progress, reinforce_subset)
    if "selection" in config.studies and not 1 <= config.keep_of(cost["num_samples"]) < cost["num_samples"]:
        raise InvalidConfigError(f"selection_keep should be between 1 and N - 1 = {cost['num_samples'] - 1}, but "
                                 f"got {config.keep_of(cost['num_samples'])} (--selection-keep)")
    runs = _Runs(out)

    def student(arm: str, seed: int, **options: Any) -> Any:
        return lambda name: train_student(demo, data, arm, seed, out, test, name=name, progress=progress, **options)

    robustness = _corrupted(config, data, test_data) if "robustness" in config.studies else {}
    _baseline_and_architectures(config, runs, student, folder, ensemble, robustness)
    epochs = demo.student_config(0, len(data.subset)).epochs
    if "epochs" in config.studies:
        _training_lengths(config, runs, student, folder, ensemble, epochs)
    if "curricula" in config.studies:
        for name in config.curricula:
            curriculum = Curriculum.named(name, epochs)
            for seed in demo.seeds:
                runs.get(f"curriculum-{_slug(name)}-seed{seed}", "curricula",
                         student("reinforced", seed, reinforcements=folder, curriculum=curriculum), curriculum=name)
    selections = {}
    if "selection" in config.studies:
        selections = _selected(folder, out, config.selection_rules, config.keep_of(cost["num_samples"]))
        for rule, selected in selections.items():
            for seed in demo.seeds:
                runs.get(f"selection-{rule}-seed{seed}", "selection",
                         student("reinforced", seed, reinforcements=selected["folder"]), selection=rule)
    results = {"config": config.to_dict(), "data": data.describe(), "teachers": teachers["members"],
               "ensemble": {**teachers["ensemble"], "members": sum(m["kept"] for m in teachers["members"])},
               "calibration": teachers.get("calibration"),
               "reinforcement": cost, "selections": selections, "runs": runs.records,
               "total_seconds": time.perf_counter() - start}
    results["tables"] = build_tables(results)
    write_report(out, results)
    return results


def _baseline_and_architectures(config: StudyConfig, runs: _Runs, student: Any, folder: str, ensemble: Any,
                                robustness: dict[str, Any]) -> None:
    """The default architecture's plain, reinforced and online-KD runs (every study's baseline, evaluated on the
    corrupted test sets), then plain and reinforced for each other architecture."""
    demo = config.demo
    default_arch = demo.student_arch
    for arch in dict.fromkeys([default_arch, *(config.architectures if "architectures" in config.studies else [])]):
        study, evaluations = ("baseline", robustness or None) if arch == default_arch else ("architectures", None)
        for seed in demo.seeds:
            runs.get(f"plain-{arch}-seed{seed}", study, student("plain", seed, arch=arch, evaluations=evaluations))
            runs.get(f"reinforced-{arch}-seed{seed}", study,
                     student("reinforced", seed, arch=arch, reinforcements=folder, evaluations=evaluations))
    for seed in demo.kd_seeds:
        runs.get(f"online_kd-{default_arch}-seed{seed}", "baseline",
                 student("online_kd", seed, teacher=ensemble, evaluations=robustness or None))


def _training_lengths(config: StudyConfig, runs: _Runs, student: Any, folder: str, ensemble: Any, epochs: int
                      ) -> None:
    """Plain, reinforced and online KD at each of ``epoch_scales`` times ``epochs`` (the default length is the
    baseline's)."""
    arms = [("plain", {}), ("reinforced", {"reinforcements": folder})]
    arms += [("online_kd", {"teacher": ensemble})] if config.demo.kd_seeds else []
    lengths = dict.fromkeys(max(1, round(scale * epochs)) for scale in config.epoch_scales)
    for length in (n for n in lengths if n != epochs):  # the default length is the baseline's; each length once
        for seed in config.sweep_seeds:
            for arm, options in arms:
                runs.get(f"{arm}-{length}ep-seed{seed}", "epochs", student(arm, seed, epochs=length, **options),
                         scale=length / epochs)


def _slug(name: str) -> str:
    return name.replace("->", "-to-")


def _check_resume(out: Path, config: StudyConfig) -> None:
    """Writes ``study_config.json``; a folder holding another study's runs is refused (a rerun of the same one
    resumes)."""
    path = out / "study_config.json"
    earlier = [name for name in ("runs", "teachers.json", "reinforcement.json") if (out / name).exists()]
    if earlier and (not path.exists() or read_json(path) != json.loads(json.dumps(config.to_dict()))):
        raise InvalidConfigError(f"{out} holds a study with other settings ({', '.join(earlier)}; {path}); rerun "
                                 "with those settings to resume it, or use another --output-dir")
    write_json_atomic(path, config.to_dict())


def _teachers(demo: DemoConfig, data: DemoData, out: Path, progress: bool, train: Any) -> dict[str, Any]:
    """The teachers of a previous try of this study (``teachers.json``), else newly trained ones."""
    path = out / "teachers.json"
    if path.exists() and Path(read_json(path)["spec_path"]).exists():
        return read_json(path)
    logger.info("teachers: %d x %s on %d images of %s", demo.num_teachers, demo.teacher_arch,
                len(data.teacher_rows), demo.dataset)
    teachers = train(demo, data, out, progress)
    write_json_atomic(path, teachers)
    return teachers


def _reinforced(demo: DemoConfig, data: DemoData, out: Path, spec_path: str, progress: bool, reinforce: Any
                ) -> tuple[str, dict[str, Any]]:
    """The reinforced subset of a previous try (``reinforcement.json`` and a finished run), else a new one."""
    path = out / "reinforcement.json"
    if path.exists() and (Path(read_json(path)["folder"]) / "manifest.json").exists():
        cost = read_json(path)
        return cost["folder"], cost
    folder, cost = reinforce(demo, data, out, spec_path, progress)
    write_json_atomic(path, cost)
    return folder, cost


def _corrupted(config: StudyConfig, data: DemoData, test_data: Any) -> dict[str, Any]:
    """Each corruption at each severity of the test rows, ready to evaluate: ``{"NAME-SEVERITY": data}``."""
    demo = config.demo
    return {f"{name}-{severity}": test_data(demo, data, corrupt_dataset(
                data.test, name, severity, image_column=demo.image_column, key_column=KEY, seed=demo.seed,
                image_mode=data.image_mode))
            for name in config.corruptions for severity in config.severities}


def _selected(folder: str, out: Path, rules: list[str], keep: int) -> dict[str, dict[str, Any]]:
    """The selected runs of every rule (:func:`hf_dr.generate.selection.select_samples`), made once."""
    from hf_dr.demo.run import parquet_bytes
    from hf_dr.generate.selection import select_samples

    selections = {}
    for rule in rules:
        target = out / f"selected-{rule}"
        if not (target / "manifest.json").exists():
            select_samples(folder, str(target), keep, rule, overwrite=True)
        selections[rule] = {"folder": str(target), "keep": keep, "bytes": parquet_bytes(target)}
    return selections

