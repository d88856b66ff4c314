"""The paper's broader claims on one reinforced subset (digits by default), on a CPU, offline: train a teacher
ensemble and reinforce a subset once (the demo's stages and settings), then compare plain, reinforced and online-KD
students across architectures, on corrupted test sets, over training lengths, with confidence curricula and with
sample selection at generation time. Writes tables.md, results.json, epochs.png and robustness.png to --output-dir;
a rerun of the same command resumes a killed study (every finished student is kept in runs/).

Example:
    hf-dr study --output-dir runs/study-digits                      # digits, every study (~30 min on 2 cores)
    hf-dr study --dataset shapes --subset-size 600 --teacher-train-size 4000 --output-dir runs/study-shapes
    hf-dr study --quick --output-dir runs/study-quick               # every study in a few minutes (CI)
    hf-dr study --studies architectures --architectures hf_dr_cnn_fc test_vit --output-dir runs/vit
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from hf_dr.cli import demo as demo_cli

HELP = ("measure reinforced vs plain students across architectures, corruptions, training lengths, curricula and "
        "sample selection (CPU, offline)")
STUDY_FLAGS = ("studies", "architectures", "corruptions", "severities", "epoch_scales", "sweep_seeds", "curricula",
               "selection_rules", "selection_keep")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's flags (dataset, teachers, reinforcement, default student, seeds), then the studies'."""
    demo_cli.add_arguments(parser)
    for action in parser._actions:  # runs/study, or runs/study-quick with --quick: StudyConfig's, not the demo's
        if action.dest == "output_dir":
            action.default, action.help = None, "the folder to write everything to (default: runs/study; --quick: " \
                                                 "runs/study-quick)"
    study = parser.add_argument_group("studies")
    study.add_argument("--studies", nargs="+", default=None, metavar="NAME",
                       help="which to run: architectures robustness epochs curricula selection (default: all)")
    study.add_argument("--architectures", nargs="+", default=None, metavar="ARCH",
                       help="timm names of the architecture study (default: hf_dr_cnn_fc hf_dr_mlp test_resnet)")
    study.add_argument("--corruptions", nargs="+", default=None, metavar="NAME",
                       help="test-set corruptions (default: gaussian_noise gaussian_blur contrast rotation affine)")
    study.add_argument("--severities", type=int, nargs="+", default=None, help="of each corruption (default: 1 3 5)")
    study.add_argument("--epoch-scales", type=float, nargs="+", default=None, metavar="X",
                       help="training lengths of the epochs study, times the default epochs (default: 0.25 0.5 1 2)")
    study.add_argument("--sweep-seeds", type=int, nargs="+", default=None,
                       help="seeds of the epochs study's other lengths (default: 0)")
    study.add_argument("--curricula", nargs="+", default=None, metavar="FROM->TO",
                       help="confidence curricula (default: easy->all hard->all all->easy all->hard)")
    study.add_argument("--selection-rules", nargs="+", default=None, metavar="RULE",
                       help="sample selection rules (default: random min_confidence max_entropy max_loss kmeans)")
    study.add_argument("--selection-keep", type=int, default=None, metavar="N'",
                       help="augmentations kept of N by each rule (default: N / 4)")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 (keeps the heavy import inside)
    """The :class:`hf_dr.demo.study.StudyConfig` the flags describe: ``--quick`` or the defaults (digits), with the
    demo's settings and the studies' replaced by the flags given."""
    from hf_dr.demo.study import StudyConfig

    demo_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in STUDY_FLAGS})
    demo_args.quick = False  # the study's own defaults below are the base, not the demo's
    base = StudyConfig.quick() if args.quick else StudyConfig()
    overrides = {k: v for k, v in vars(demo_args).items()
                 if v is not None and k not in ("quick", "config", "run", "command", "no_progress")}
    demo = demo_cli.demo_config(overrides, args.config, base.demo)
    return replace(base, demo=demo, **{k: getattr(args, k) for k in STUDY_FLAGS if getattr(args, k) is not None})


def run(args: argparse.Namespace) -> int:
    """Runs :func:`hf_dr.demo.study.run_study` and prints its tables."""
    import logging

    from hf_dr.demo.study import run_study
    from hf_dr.demo.study_report import format_tables

    logging.getLogger("hf_dr.generate.run").setLevel(logging.WARNING)
    config = config_from_args(args)
    results = run_study(config, progress=not args.no_progress)
    print(format_tables(results))
    print(f"\nwrote {config.demo.output_dir}/tables.md, results.json, epochs.png, robustness.png and "
          "study_config.json")
    return 0
