"""Check that a reinforced dataset replays what its teacher saw: replay M random stored augmentations, run the
teacher again and compare with the stored top-k. Exits 1, naming the likely cause, when agreement is too low.

A run folder (``--run-dir``) is verified against its recorded source (or ``--dataset``); a pushed reinforced dataset
(``--dataset org/x-plus`` without ``--run-dir``) against its own images or recorded source, with the teacher it
recorded fetched from the Hub at the pinned commits (a teacher that was a local file is refused, naming the fix).

Example:
    hf-dr verify --run-dir reinforced/ --num-pairs 200
    hf-dr verify --dataset me/digits-plus --split train                       # a pushed dataset, on any machine
    hf-dr verify --run-dir reinforced/ --teacher resnet50=other.safetensors    # check against another teacher
"""

from __future__ import annotations

import argparse

from hf_dr.cli._options import add_num_threads, add_option
from hf_dr.errors import InvalidConfigError

HELP = "replay stored augmentations, rerun the teacher, compare with the stored soft labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``verify`` flags to ``parser`` (old spellings, hidden: the run folder as positional, ``--source``,
    ``--samples``). ``--dataset`` without ``--run-dir`` names a pushed reinforced dataset."""
    parser.add_argument("--run-dir", default=None, metavar="DIR",
                        help="the folder `hf-dr reinforce` wrote (required, unless --dataset names a pushed dataset)")
    parser.add_argument("run_dir", nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_option(parser, "--dataset", hidden=("--source",), default=None,
               help="without --run-dir: a reinforced dataset pushed to the Hub, verified with the teacher it "
                    "recorded; with --run-dir: the source images (default: the ones the run recorded)")
    parser.add_argument("--split", default=None, help="split of --dataset (default: the recorded one; train for a "
                                                      "pushed dataset)")
    parser.add_argument("--revision", default=None, help="revision of --dataset (default: the recorded one; the "
                                                         "default branch of a pushed dataset)")
    add_option(parser, "--num-pairs", hidden=("--samples",), type=int, default=64, metavar="M",
               help="(sample, reinforcement) pairs to check")
    parser.add_argument("--seed", type=int, default=0, help="which pairs to check")
    teacher = parser.add_argument_group("teacher (default: the members the run recorded)")
    teacher.add_argument("--teacher", action="append", default=[], metavar="MEMBER",
                         help="verify against these members instead (repeat for an ensemble; default: none)")
    teacher.add_argument("--teacher-spec", default=None, metavar="FILE",
                         help="verify against the members of this JSON spec instead (default: none)")
    parser.add_argument("--min-agreement", type=float, default=0.98,
                        help="least top-1 agreement that passes")
    parser.add_argument("--prob-tolerance", type=float, default=None,
                        help="largest stored-probability difference that passes (default: 0.005 for a run "
                             "labelled in fp32, 0.05 in bf16/fp16)")
    add_num_threads(parser)


def run(args: argparse.Namespace) -> int:
    """Loads the run (a folder, or a pushed dataset) and its images, runs :func:`hf_dr.verify` and prints its report;
    1 when it fails."""
    from hf_dr.generate.verify import recorded_members, verify
    from hf_dr.models.teacher import create_teacher, load_teacher_spec

    if not args.run_dir and not args.dataset:
        raise InvalidConfigError("pass --run-dir DIR, the folder `hf-dr reinforce --output-dir` wrote, or --dataset "
                                 "ORG/NAME, a reinforced dataset pushed to the Hub")
    if args.run_dir:
        from hf_dr.generate.run_inspection import load_target

        reinforcements, images, config = load_target(args.run_dir, args.dataset, args.split, args.revision)
        where = None
    else:
        from hf_dr.hub.pushed_run import load_pushed_run

        reinforcements, images, config = load_pushed_run(args.dataset, args.split or "train", args.revision)
        where = f"the reinforced dataset {args.dataset!r}"
    members = list(args.teacher) + (load_teacher_spec(args.teacher_spec) if args.teacher_spec else [])
    teacher = create_teacher(members or recorded_members(config, where))
    report = verify(reinforcements, images, config, teacher=teacher, num_pairs=args.num_pairs, seed=args.seed,
                    min_agreement=args.min_agreement, prob_tolerance=args.prob_tolerance)
    print(report.summary())
    return 0 if report.passed else 1
