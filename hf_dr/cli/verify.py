"""Check that a reinforced dataset replays what its teacher saw: replay M random stored augmentations, run the
teacher again and compare with the stored top-k. Exits 1, naming the likely cause, when agreement is too low.

Example:
    hf-dr verify --run-dir reinforced/ --num-pairs 200
    hf-dr verify --run-dir reinforced/ --teacher resnet50=other.safetensors    # check against another teacher
"""

from __future__ import annotations

import argparse

from hf_dr.cli._options import add_num_threads, add_option, add_recorded_source, required_run_dir

HELP = "replay stored augmentations, rerun the teacher, compare with the stored soft labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``verify`` flags to ``parser`` (old spellings, hidden: the run folder as positional, ``--source``,
    ``--samples``)."""
    add_recorded_source(parser)
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
    """Loads the run and its source images, runs :func:`hf_dr.verify` and prints its report; 1 when it fails."""
    from hf_dr.generate.teacher import create_teacher, load_teacher_spec
    from hf_dr.generate.verify import verify
    from hf_dr.hub.run_inspection import load_target

    reinforcements, images, config = load_target(required_run_dir(args), args.dataset, args.split, args.revision)
    members = list(args.teacher) + (load_teacher_spec(args.teacher_spec) if args.teacher_spec else [])
    teacher = create_teacher(members) if members else None
    report = verify(reinforcements, images, config, teacher=teacher, num_pairs=args.num_pairs, seed=args.seed,
                    min_agreement=args.min_agreement, prob_tolerance=args.prob_tolerance)
    print(report.summary())
    return 0 if report.passed else 1
