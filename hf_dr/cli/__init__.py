"""The ``hf-dr`` command line: one subcommand per module in :mod:`hf_dr.cli`.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Every such
module in :mod:`hf_dr.cli` is found by :func:`commands` (``hf_dr/cli/foo_bar.py`` is ``hf-dr foo-bar``);
:data:`COMMANDS` adds or renames entries explicitly. Modules are imported when the parser is built, so they should
import heavy libraries inside ``run``.

Example:
    >>> build_parser().parse_args(["reinforce", "--dataset", "d", "--teacher", "t", "--output-dir", "o"]).command
    'reinforce'
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from hf_dr.errors import HfDrError

COMMANDS: dict[str, str] = {
    "reinforce": "hf_dr.cli.reinforce",
    "push": "hf_dr.cli.push",
}


def commands() -> dict[str, str]:
    """Subcommand name -> module path: the modules of :mod:`hf_dr.cli` that follow the contract, then
    :data:`COMMANDS`, sorted by name.

    Example:
        >>> "reinforce" in commands()
        True
    """
    import hf_dr.cli as package

    found = {name.replace("_", "-"): f"{package.__name__}.{name}"
             for _, name, _ in pkgutil.iter_modules(package.__path__) if not name.startswith("_")}
    return dict(sorted({**found, **COMMANDS}.items()))


def build_parser() -> argparse.ArgumentParser:
    """The ``hf-dr`` parser with every subcommand of :func:`commands`."""
    parser = argparse.ArgumentParser(prog="hf-dr", description="Dataset Reinforcement for Hugging Face datasets.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_path in commands().items():
        module = importlib.import_module(module_path)
        if not all(hasattr(module, attribute) for attribute in ("HELP", "add_arguments", "run")):
            continue  # a helper module, not a subcommand
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-dr``: parses ``argv`` and runs the subcommand; hf_dr errors exit with status 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("hf_dr").setLevel(logging.INFO)
    try:
        return int(args.run(args) or 0)
    except HfDrError as err:
        print(f"hf-dr {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
