"""List the recipes of reinforced datasets (the ``builders`` package), one line each, or show one in full.

Example:
    hf-dr builders
    hf-dr builders cifar100_plus        # the recipe, what differs from the paper, and the commands that run it
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hf_dr.generate.builder import Builder

HELP = "list the reinforced-dataset recipes (ImageNet+, CIFAR-100+, ...) usable with `hf-dr reinforce --builder`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``builders`` arguments to ``parser``."""
    parser.add_argument("name", nargs="?", default=None, metavar="NAME", help="show this recipe in full")
    parser.add_argument("--json", action="store_true", help="print the recipe(s) as JSON")


def run(args: argparse.Namespace) -> int:
    """Prints one line per recipe, or the named recipe with its card notes and commands."""
    from hf_dr.builders import get_builder, list_builders

    names = [args.name] if args.name else list_builders()
    recipes = [get_builder(name) for name in names]
    if args.json:
        print(json.dumps([_public(b.to_dict()) for b in recipes], indent=2))
    elif args.name:
        print(_details(recipes[0]))
    else:
        for builder in recipes:
            print(builder.summary())
    return 0


def _public(values: dict) -> dict:
    names = values.pop("class_names") or []
    return {**values, "num_class_names": len(names)}


def _details(builder: Builder) -> str:
    run_dir = f"reinforced/{builder.name}"
    steps = []
    if builder.needs_finetuned_teacher:
        steps.append(builder.finetune_command())
        spec = f" --teacher-spec {builder.default_teacher_dir}/teacher_spec.json"
    else:
        spec = ""
    steps += [f"hf-dr reinforce --builder {builder.name}{spec} --output-dir {run_dir}",
              builder.push_command(run_dir)]
    return "\n".join([builder.summary(), "", builder.card_notes(), "Run it:", *[f"    {s}" for s in steps]])
