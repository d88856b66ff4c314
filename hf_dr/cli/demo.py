"""Dataset reinforcement end to end on Fashion-MNIST, on a CPU, offline: train a teacher ensemble on the 60k training
images (one-time cost), reinforce a subset, then train the same student on the plain subset (on-the-fly augmentation),
on the reinforced subset and with online distillation, for the same number of iterations and several seeds. Prints a
table (top-1 mean +- std, NLL, ECE, wall time, one-time costs) and writes it with a plot PNG to --output-dir.

Needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or --data-root / HF_DR_FASHION_MNIST.

Example:
    hf-dr demo --output-dir runs/demo            # ~15 min on 2 CPU cores
    hf-dr demo --quick --output-dir runs/quick   # every stage in about a minute (CI)
"""

from __future__ import annotations

import argparse
import json

HELP = "train teachers, reinforce Fashion-MNIST and compare plain, reinforced and online-KD students (CPU, offline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``demo`` flags to ``parser``; unset flags keep the defaults of :class:`hf_dr.demo.run.DemoConfig`."""
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument("--quick", action="store_true", help="tiny setting for CI: every stage, meaningless numbers")
    parser.add_argument("--config", default=None, metavar="JSON", help="a demo_config.json to start from")
    parser.add_argument("--data-root", default=None, help="folder of the Fashion-MNIST idx .gz files")
    parser.add_argument("--subset-size", type=int, default=None, help="images reinforced and trained on")
    parser.add_argument("--test-size", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--num-teachers", type=int, default=None)
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--teacher-arch", default=None)
    parser.add_argument("--num-samples", type=int, default=None, help="N, stored augmentations per image")
    parser.add_argument("--topk", type=int, default=None, help="k, stored probabilities per augmentation")
    parser.add_argument("--crop-scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"))
    parser.add_argument("--student-arch", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (same for every arm)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=None, help="distillation temperature (paper: 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--kd-seeds", type=int, nargs="*", default=None, help="online-KD seeds (none: skip the arm)")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 (keeps the heavy import inside)
    """The :class:`hf_dr.demo.run.DemoConfig` the flags describe."""
    from hf_dr.demo.run import DemoConfig

    overrides = {k: v for k, v in vars(args).items()
                 if v is not None and k not in ("quick", "config", "run", "command")}
    if args.config:
        with open(args.config) as f:
            base = json.load(f)
        return DemoConfig.from_dict({**base, **overrides})
    return DemoConfig.quick(**overrides) if args.quick else DemoConfig(**overrides)


def run(args: argparse.Namespace) -> int:
    """Runs :func:`hf_dr.demo.run.run_demo` and prints its table."""
    import logging

    from hf_dr.demo.run import format_table, run_demo

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("timm", "hf_dr.generate.run", "accelerate", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = config_from_args(args)
    results = run_demo(config)
    print(format_table(results))
    print(f"\nwrote {config.output_dir}/table.md, results.json, demo.png and demo_config.json")
    return 0
