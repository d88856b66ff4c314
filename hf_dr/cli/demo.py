"""Dataset reinforcement end to end on any image-classification dataset (Fashion-MNIST by default), on a CPU,
offline: train a teacher ensemble on the training split (one-time cost), reinforce a subset, then train the same
student on the plain subset (on-the-fly augmentation), on the reinforced subset and with online distillation, for
the same number of iterations and several seeds. Prints a table (top-1 mean +- std, NLL, ECE, wall time, one-time
costs) and writes it with a plot PNG to --output-dir.

Needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or --data-root / HF_DR_FASHION_MNIST.

Example:
    hf-dr demo --output-dir runs/demo            # ~15 min on 2 CPU cores
    hf-dr demo --quick --output-dir runs/quick   # every stage in about a minute (CI)
    hf-dr demo --dataset digits --output-dir runs/digits
    hf-dr demo --dataset ./my_imagefolder --test-split validation --output-dir runs/mine
"""

from __future__ import annotations

import argparse
import json

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
    parser.add_argument("--dataset", default=None, metavar="NAME_OR_PATH",
                        help="any image-classification dataset: a bundled one (fashion-mnist, digits, shapes), a Hub "
                             "id, a local folder (imagefolder, Parquet, save_to_disk) or a Parquet file (default: "
                             "fashion-mnist)")
    parser.add_argument("--train-split", default=None, help="(default: train)")
    parser.add_argument("--test-split", default=None,
                        help="(default: test; a dataset without one holds out 20%% of the training rows)")
    parser.add_argument("--image-column", default=None, help="(default: image)")
    parser.add_argument("--label-column", default=None, help="a ClassLabel column (default: label)")
    parser.add_argument("--key-column", default=None,
                        help="a column of unique sample keys (default: none, a hash of the image bytes)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="resolution of teachers and students (default: 28)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder of the Fashion-MNIST idx .gz files (default: $HF_DR_FASHION_MNIST, else "
                             "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--subset-size", type=int, default=None,
                        help="images reinforced and trained on (default: 2500, at most a fifth of the training rows; "
                             "--quick: 512)")
    parser.add_argument("--test-size", type=int, default=None, help="test images (default: all 10,000; --quick: 1000)")
    parser.add_argument("--num-teachers", type=int, default=None, help="ensemble members (default: 4; --quick: 2)")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="(default: 4; --quick: 1)")
    parser.add_argument("--teacher-arch", default=None, help="timm name of each teacher (default: hf_dr_cnn_fc)")
    parser.add_argument("--teacher-train-size", type=int, default=None,
                        help="training images the teachers learn from (default: all; --quick: 4096)")
    parser.add_argument("--teacher-lr", type=float, default=None, help="(default: 0.1; --quick: 0.02)")
    parser.add_argument("--member-tolerance", type=float, default=None,
                        help="leave out a teacher member further than this below the best one's top-1 (default: "
                             "0.05)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="N, stored augmentations per image (default: 20; --quick: 3)")
    parser.add_argument("--topk", type=int, default=None, help="k, stored probabilities per augmentation (default: 5)")
    parser.add_argument("--crop-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="random-resized-crop area range (default: 0.6 1.0)")
    parser.add_argument("--student-arch", default=None, help="timm name of the students (default: hf_dr_cnn_fc)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="student epochs, the same for every arm (default: 60; --quick: 2)")
    parser.add_argument("--lr", type=float, default=None, help="student peak learning rate (default: 0.1)")
    parser.add_argument("--optimizer", default=None, choices=("sgd", "adamw"), help="students' (default: sgd)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="student batch size, halved on small subsets until an epoch has 8 steps (default: 128)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="distillation temperature (default: 1, the paper's)")
    parser.add_argument("--codecs", nargs="+", default=None, metavar="CODEC",
                        help="record codecs to compare, [PARAMS/]LABELS[:DRAWS] each (e.g. fp16-topk "
                             "seeded/q8-topk-set seeded/sampled:10), on the same teachers and subset (default: "
                             "fp16-topk only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="student seeds of every arm (default: 0 1 2; --quick: 0 1)")
    parser.add_argument("--kd-seeds", type=int, nargs="*", default=None,
                        help="online-KD seeds; none skips the arm (default: 0 1 2; --quick: 0)")
    add_num_threads(parser, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the subset, the teachers and the reinforcement (default: 0)")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 (keeps the heavy import inside)
    """The :class:`hf_dr.demo.run.DemoConfig` the flags describe."""
    from hf_dr.demo.run import DemoConfig

    overrides = {k: v for k, v in vars(args).items()
                 if v is not None and k not in ("quick", "config", "run", "command", "no_progress")}
    if args.config:
        with open(args.config) as f:
            base = json.load(f)
        return DemoConfig.from_dict({**base, **overrides})
    return DemoConfig.quick(**overrides) if args.quick else DemoConfig.from_dict(overrides)


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
