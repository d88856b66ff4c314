"""Draw a sample's original image and M replayed reinforcements in a grid, each captioned with its ops and the
teacher's top-3 classes.

Example:
    hf-dr show --run-dir reinforced/ --index 0 --count 7 -o grid.png
    hf-dr show --run-dir reinforced/ --key n01440764_10026 --image-size 160 -o grid.png
"""

from __future__ import annotations

import argparse

from hf_dr.cli._options import add_num_threads, add_option, add_recorded_source, required_run_dir
from hf_dr.errors import InvalidConfigError

HELP = "draw a sample's replayed reinforcements in a captioned grid (PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``show`` flags to ``parser`` (old spellings, hidden: the run folder as positional, ``--source``,
    ``--size``, ``--output``)."""
    add_recorded_source(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--key", default=None, help="the sample's key (default: the one at --index)")
    which.add_argument("--index", type=int, default=0, help="the sample's row in the reinforcement table")
    parser.add_argument("--count", type=int, default=7, help="reinforcements to draw (M)")
    add_option(parser, "--image-size", hidden=("--size",), type=int, default=160,
               help="size of each panel in pixels")
    parser.add_argument("--columns", type=int, default=4, help="panels per row")
    add_option(parser, "-o", "--output-file", hidden=("--output",), required=True, metavar="FILE",
               help="the PNG file to write")
    add_num_threads(parser)


def run(args: argparse.Namespace) -> int:
    """Loads the run and its source images, draws the grid and writes it."""
    from hf_dr.data.view_grid import save_grid
    from hf_dr.generate.run_inspection import load_target, sample_grid

    run_dir = required_run_dir(args)
    reinforcements, images, config = load_target(run_dir, args.dataset, args.split, args.revision)
    check_index(args.index if args.key is None else None, len(reinforcements), run_dir)
    grid = sample_grid(reinforcements, images, config, key=args.key, index=args.index, count=args.count,
                       size=args.image_size, columns=args.columns)
    print(f"wrote {save_grid(grid, args.output_file)} ({grid.width}x{grid.height})")
    return 0


def check_index(index: int | None, num_rows: int, run_dir: str) -> None:
    """Refuses an ``--index`` that is not a row of the run's ``num_rows`` (None: a ``--key`` was given).

    Example:
        >>> check_index(32, 32, "runs/r")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: --index 32 is out of range: the run runs/r has 32 samples; pass --index ...
    """
    if index is not None and not 0 <= index < num_rows:
        raise InvalidConfigError(f"--index {index} is out of range: the run {run_dir} has {num_rows} samples; pass "
                                 f"--index between 0 and {num_rows - 1}, or --key KEY")
