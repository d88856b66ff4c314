"""Draw a sample's original image and M replayed reinforcements in a grid, each captioned with its ops and the
teacher's top-3 classes.

Example:
    hf-dr show reinforced/ --index 0 --count 7 -o grid.png
    hf-dr show reinforced/ --key n01440764_10026 --size 160 -o grid.png
"""

from __future__ import annotations

import argparse

from hf_dr.cli.verify import add_target_arguments

HELP = "draw a sample's replayed reinforcements in a captioned grid (PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--key", default=None, help="the sample's key")
    which.add_argument("--index", type=int, default=0, help="the sample's row in the reinforcement table")
    parser.add_argument("--count", type=int, default=7, help="reinforcements to draw (M)")
    parser.add_argument("--size", type=int, default=160, help="panel size in pixels")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")


def run(args: argparse.Namespace) -> int:
    from hf_dr.hub.local_run import load_target, sample_grid
    from hf_dr.hub.show import save_grid

    reinforcements, images, config = load_target(args.target, args.source, args.split, args.revision)
    grid = sample_grid(reinforcements, images, config, key=args.key, index=args.index, count=args.count,
                       size=args.size, columns=args.columns)
    print(f"wrote {save_grid(grid, args.output)} ({grid.width}x{grid.height})")
    return 0
