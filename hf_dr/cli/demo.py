"""Dataset reinforcement end to end on any image-classification dataset (Fashion-MNIST by default), on a CPU,
offline: train a teacher ensemble on the training split (one-time cost), reinforce a subset, then train the same
student on the plain subset (on-the-fly augmentation), on the reinforced subset and with online distillation, for
the same number of iterations and several seeds. Prints a table (top-1 mean +- std, NLL, ECE, wall time, one-time
costs) and writes it with a plot PNG to --output-dir.

The default, Fashion-MNIST, needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or --data-root /
HF_DR_FASHION_MNIST; digits and shapes ship with hf-dr.

Example:
    hf-dr demo --output-dir runs/demo            # ~16 min on 2 CPU cores
    hf-dr demo --quick --output-dir runs/quick   # every stage in about a minute (CI)
    hf-dr demo --dataset digits --output-dir runs/digits
    hf-dr demo --dataset ./my_imagefolder --test-split validation --output-dir runs/mine
"""

from __future__ import annotations

import argparse

from hf_dr.cli._options import add_num_threads

HELP = ("train teachers, reinforce a dataset (Fashion-MNIST by default) and compare"
        " plain, reinforced and online-KD students (CPU, offline)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``demo`` flags to ``parser``; unset flags keep the defaults of :class:`hf_dr.demo.run.DemoConfig`
    (or of ``--quick``, or of ``--config``), which their help gives as "default: DEMO; --quick: QUICK"."""
    parser.add_argument("--output-dir", default="runs/demo", metavar="DIR", help="the folder to write everything to")
    parser.add_argument("--quick", action="store_true", help="tiny setting for CI: every stage, meaningless numbers")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (rate, ETA) on the stages")
    parser.add_argument("--config", default=None, metavar="JSON",
                        help="a demo_config.json to start from (default: none)")
    _add_data_arguments(parser.add_argument_group("data"))
    _add_teacher_arguments(parser.add_argument_group("teachers"))
    _add_reinforcement_arguments(parser.add_argument_group("reinforcement"))
    _add_student_arguments(parser.add_argument_group("students"))
    add_num_threads(parser, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the subset, the teachers and the reinforcement (default: 0)")


def _add_data_arguments(group: argparse._ArgumentGroup) -> None:
    """The dataset, its columns and splits."""
    group.add_argument("--dataset", default=None, metavar="NAME_OR_PATH",
                       help="any image-classification dataset: a bundled one (fashion-mnist, digits, shapes), a Hub "
                            "id, a local folder (imagefolder, Parquet, save_to_disk) or a Parquet file (default: "
                            "fashion-mnist)")
    group.add_argument("--train-split", default=None, help="(default: train)")
    group.add_argument("--test-split", default=None,
                       help="(default: test; a dataset without one holds out 20%% of the training rows)")
    group.add_argument("--image-column", default=None, help="(default: image)")
    group.add_argument("--label-column", default=None, help="a ClassLabel column (default: label)")
    group.add_argument("--key-column", default=None,
                       help="a column of unique sample keys (default: none, a hash of the image bytes)")
    group.add_argument("--image-size", type=int, default=None,
                       help="resolution of teachers and students (default: 28)")
    group.add_argument("--data-root", default=None, metavar="DIR",
                       help="folder of the Fashion-MNIST idx .gz files (default: $HF_DR_FASHION_MNIST, else "
                            "/usr/share/datasets/fashion-mnist)")
    group.add_argument("--subset-size", type=int, default=None,
                       help="images reinforced and trained on (default: 2500, at most a fifth of the training rows; "
                            "--quick: 512)")
    group.add_argument("--test-size", type=int, default=None, help="test images (default: all 10,000; --quick: 1000)")


def _add_teacher_arguments(group: argparse._ArgumentGroup) -> None:
    """The teacher ensemble: members, training, screening and calibration."""
    group.add_argument("--num-teachers", type=int, default=None, help="ensemble members (default: 4; --quick: 2)")
    group.add_argument("--teacher-epochs", type=int, default=None, help="(default: 4; --quick: 1)")
    group.add_argument("--teacher-arch", default=None, help="timm name of each teacher (default: hf_dr_cnn_fc)")
    group.add_argument("--teacher-train-size", type=int, default=None,
                       help="training images the teachers learn from (default: all; --quick: 4096)")
    group.add_argument("--teacher-lr", type=float, default=None, help="(default: 0.1; --quick: 0.02)")
    group.add_argument("--min-teacher-steps", type=int, default=None,
                       help="more teacher epochs on a small training split, up to this many steps (default: 1000)")
    group.add_argument("--member-tolerance", type=float, default=None,
                       help="leave out a teacher member further than this (and 3 standard errors) below the best "
                            "one's top-1 (default: 0.05)")


def _add_reinforcement_arguments(group: argparse._ArgumentGroup) -> None:
    """The stored augmentations and labels."""
    group.add_argument("--num-samples", type=int, default=None,
                       help="N, stored augmentations per image (default: the student epochs, at least 20, so each "
                            "stored view is replayed about once; --quick: 3)")
    group.add_argument("--calibration-size", type=int, default=None,
                       help="held-out training rows to fit the teacher's temperature on (default: 20%%, at most "
                            "2,000)")
    group.add_argument("--no-calibration", dest="calibrate_teacher", action="store_false", default=None,
                       help="leave the teacher ensemble uncalibrated")
    group.add_argument("--topk", type=int, default=None, help="k, stored probabilities per augmentation (default: 5)")
    group.add_argument("--crop-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                       help="random-resized-crop area range (default: 0.6 1.0)")


def _add_student_arguments(group: argparse._ArgumentGroup) -> None:
    """The students, the same for every arm."""
    group.add_argument("--student-arch", default=None, help="timm name of the students (default: hf_dr_cnn_fc)")
    group.add_argument("--epochs", type=int, default=None,
                       help="student epochs, the same for every arm (default: 60, more on a small subset: see "
                            "--min-student-steps; --quick: 2)")
    group.add_argument("--min-student-steps", type=int, default=None,
                       help="more student epochs on a small subset, up to this many steps (default: 1000)")
    group.add_argument("--lr", type=float, default=None, help="student peak learning rate (default: 0.05)")
    group.add_argument("--warmup-fraction", type=float, default=None,
                       help="students' linear warmup, a fraction of the steps (default: 0.2)")
    group.add_argument("--optimizer", default=None, choices=("sgd", "adamw"), help="students' (default: sgd)")
    group.add_argument("--batch-size", type=int, default=None,
                       help="student batch size, halved on small subsets until an epoch has 4 steps (default: 128)")
    group.add_argument("--temperature", type=float, default=None,
                       help="distillation temperature (default: 1, the paper's)")
    group.add_argument("--codecs", nargs="+", default=None, metavar="CODEC",
                       help="record codecs to compare, [PARAMS/]LABELS[:DRAWS] each (e.g. fp16-topk "
                            "seeded/q8-topk-set seeded/sampled:10), on the same teachers and subset (default: "
                            "fp16-topk only)")
    group.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="student seeds of every arm (default: 0 1 2; --quick: 0 1)")
    group.add_argument("--kd-seeds", type=int, nargs="*", default=None,
                       help="online-KD seeds; none skips the arm (default: 0 1 2; --quick: 0)")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 (keeps the heavy import inside)
    """The :class:`hf_dr.demo.run.DemoConfig` the flags describe."""
    from hf_dr.demo.run import DemoConfig

    overrides = {k: v for k, v in vars(args).items()
                 if v is not None and k not in ("quick", "config", "run", "command", "no_progress")}
    return demo_config(overrides, args.config, DemoConfig.quick() if args.quick else DemoConfig())


def demo_config(overrides: dict, config_file: str | None, defaults):  # noqa: ANN001, ANN201 (heavy import inside)
    """``defaults`` with the settings of ``config_file`` (a ``demo_config.json``) and then ``overrides``."""
    from hf_dr.demo.run import DemoConfig

    if config_file:
        from hf_dr.files import read_json

        settings = read_json(config_file, what="--config file", fix="a demo_config.json that hf-dr demo wrote")
        return DemoConfig.from_dict({**settings, **overrides})
    return DemoConfig.from_dict(overrides, defaults=defaults)


def run(args: argparse.Namespace) -> int:
    """Runs :func:`hf_dr.demo.run.run_demo` and prints its table."""
    import logging

    from hf_dr.demo.run import format_table, run_demo

    logging.getLogger("hf_dr.generate.run").setLevel(logging.WARNING)  # per-process shard notes; the demo logs stages
    config = config_from_args(args)
    results = run_demo(config, progress=not args.no_progress)
    print(format_table(results))
    print(f"\nwrote {config.output_dir}/table.md, results.json, demo.png and demo_config.json")
    return 0
