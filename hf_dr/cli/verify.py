"""Check that a reinforced dataset replays what its teacher saw: replay M random stored augmentations, run the
teacher again and compare with the stored top-k. Exits 1, naming the likely cause, when agreement is too low.

Example:
    hf-dr verify reinforced/ --samples 200
    hf-dr verify reinforced/ --teacher resnet50=other.safetensors    # check against another teacher
"""

from __future__ import annotations

import argparse

HELP = "replay stored augmentations, rerun the teacher, compare with the stored soft labels"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that locate a reinforced dataset and its source images (shared with ``show``)."""
    parser.add_argument("target", help="a reinforce output folder")
    parser.add_argument("--source", default=None,
                        help="source images (Hub id or local path); default: the one recorded in the run's config")
    parser.add_argument("--split", default=None, help="split of --source (default: the recorded one)")
    parser.add_argument("--revision", default=None, help="revision of --source (default: the recorded one)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--samples", type=int, default=64, help="(sample, reinforcement) pairs to check")
    parser.add_argument("--seed", type=int, default=0, help="which pairs to check")
    parser.add_argument("--teacher", action="append", default=[], metavar="MEMBER",
                        help="verify against these members instead of the recorded ones (repeat for an ensemble)")
    parser.add_argument("--min-agreement", type=float, default=0.98)
    parser.add_argument("--prob-tolerance", type=float, default=None)


def run(args: argparse.Namespace) -> int:
    from hf_dr.generate.teacher import create_teacher
    from hf_dr.generate.verify import verify
    from hf_dr.hub.local_run import load_target

    reinforcements, images, config = load_target(args.target, args.source, args.split, args.revision)
    teacher = create_teacher(args.teacher) if args.teacher else None
    report = verify(reinforcements, images, config, teacher=teacher, samples=args.samples, seed=args.seed,
                    min_agreement=args.min_agreement, prob_tolerance=args.prob_tolerance)
    print(report.summary())
    return 0 if report.passed else 1
