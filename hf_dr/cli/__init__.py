"""The ``hf-dr`` command line: one subcommand per module of :mod:`hf_dr.cli`, listed in :data:`COMMANDS`.

A subcommand module defines ``HELP`` (one line, the same as its entry in :data:`COMMANDS`),
``add_arguments(parser)`` and ``run(args) -> int``, and imports heavy libraries (datasets, torch, timm,
transformers) inside ``run`` only. ``hf-dr CMD ...`` imports the module of ``CMD`` alone, and ``hf-dr --help``
none, so both answer at once.

One vocabulary (:data:`FLAGS`): a concept has one flag in every subcommand and in ``scripts/``; the old spellings
still parse (hidden from ``--help``) so existing command lines keep working.

| concept | flag | old spellings, still parsed (hidden) |
|---|---|---|
| source dataset (Hub id, local folder, Parquet file) | `--dataset` | `--source` (verify, show) |
| its split; a held-out split | `--split`; `--eval-split` | |
| its revision (branch, tag or commit) | `--revision` | `--source-revision` (push) |
| the pushed repo's branch; a pull request instead (push, push-model) | `--branch`; `--create-pr` | |
| its configuration name | `--dataset-config` | `--name` (reinforce, finetune-teacher) |
| image, label and key columns | `--image-column`, `--label-column`, `--key-column` | |
| Fashion-MNIST idx folder | `--data-root` | |
| a recipe (`hf-dr builders`) | `--builder` | |
| the first K rows only | `--limit`; `--eval-limit` | |
| the run folder being written | `--output-dir` | `--output` (reinforce, finetune-teacher) |
| the run folder being read | `--run-dir` | positional `DIR` (push, verify, show); `--reinforcements` (scripts) |
| an output file | `--output-file`, `-o` | `--output` (eval, show) |
| a checkpoint to read; to start from | `--checkpoint`; `--init-from` | |
| timm architecture | `--arch` (`--teacher-arch`, `--student-arch` in demo) | `--model` (eval, scripts) |
| input resolution in pixels | `--image-size` | `--size` (eval, show, scripts) |
| normalisation; input channels; classes | `--mean`, `--std`; `--in-chans`; `--num-classes` | |
| teacher members; teacher spec file | `--teacher` (repeat); `--teacher-spec` | |
| augmentation policy | `--policy` | |
| N stored augmentations; top-k kept | `--num-samples`; `--topk` | |
| (sample, reinforcement) pairs verify checks | `--num-pairs` | `--samples` (verify) |
| seed; one seed per run or member | `--seed`; `--seeds` | |
| batch size; DataLoader workers | `--batch-size`; `--num-workers` | |
| torch threads (`torch.set_num_threads`) | `--num-threads` | `--threads` (scripts/train.py) |
| no progress bars | `--no-progress` | |

"scripts" are `scripts/train.py` and `scripts/train_trainer.py`; `scripts/reinforce.py` and
`scripts/finetune_teacher.py` take the flags of their subcommand.

Every ``--help`` shows the defaults; ``hf-dr --version`` prints the version. A mistake (a missing file, a typo in a
JSON file, a count out of range, an unknown name) is one line ``hf-dr CMD: error: ...`` naming the input and the fix,
with exit status 1; ``--debug`` (or ``HF_DR_DEBUG=1``) shows its traceback (:mod:`hf_dr.cli._boundary`). Logging is
configured once (:data:`hf_dr.cli._options.LOG_FORMAT`, timestamped) and long stages show tqdm bars with rate and ETA.

Example:
    >>> build_parser().parse_args(["reinforce", "--dataset", "d", "--teacher", "t", "--output-dir", "o"]).command
    'reinforce'
    >>> build_parser("verify").parse_args(["verify", "--source", "d", "runs/r"]).dataset
    'd'
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hf_dr.cli._boundary import DEBUG_EPILOG, ArgumentParser, check_numbers, run_main
from hf_dr.cli._options import HelpFormatter, configure_logging, set_num_threads

# name -> (module, the one-line help of ``hf-dr --help``: the module's ``HELP``, checked by tests/test_cli.py)
COMMANDS: dict[str, tuple[str, str]] = {
    "builders": ("hf_dr.cli.builders",
                 "list the reinforced-dataset recipes (ImageNet+, CIFAR-100+, ...) usable with `hf-dr reinforce "
                 "--builder`"),
    "demo": ("hf_dr.cli.demo",
             "train teachers, reinforce a dataset (Fashion-MNIST by default) and compare plain, reinforced and "
             "online-KD students (CPU, offline)"),
    "eval": ("hf_dr.cli.eval", "top-1, NLL and ECE of a checkpoint on a dataset split"),
    "finetune-teacher": ("hf_dr.cli.finetune_teacher",
                         "fine-tune M seeds of a pretrained timm model on a dataset and save them as a teacher spec "
                         "for reinforce"),
    "push": ("hf_dr.cli.push", "upload a finished reinforcement run to a Hub dataset repo with its dataset card"),
    "push-model": ("hf_dr.cli.push_model",
                   "upload a trained student checkpoint to a Hub model repo that timm.create_model('hf-hub:...') "
                   "loads"),
    "reinforce": ("hf_dr.cli.reinforce",
                  "run a teacher over N stored augmentations of every image; write params and top-k as Parquet "
                  "shards"),
    "show": ("hf_dr.cli.show", "draw a sample's replayed reinforcements in a captioned grid (PNG)"),
    "study": ("hf_dr.cli.study",
              "measure reinforced vs plain students across architectures, corruptions, training lengths, curricula "
              "and sample selection (CPU, offline)"),
    "verify": ("hf_dr.cli.verify", "replay stored augmentations, rerun the teacher, compare with the stored soft "
                                   "labels"),
}

# concept (the argparse destination) -> its one flag, in every subcommand and script (tests/test_cli.py checks it)
FLAGS: dict[str, str] = {
    "dataset": "--dataset", "split": "--split", "eval_split": "--eval-split", "revision": "--revision",
    "dataset_config": "--dataset-config", "image_column": "--image-column", "label_column": "--label-column",
    "key_column": "--key-column", "data_root": "--data-root", "builder": "--builder", "limit": "--limit",
    "eval_limit": "--eval-limit", "output_dir": "--output-dir", "run_dir": "--run-dir",
    "output_file": "--output-file", "checkpoint": "--checkpoint", "init_from": "--init-from", "arch": "--arch",
    "image_size": "--image-size", "mean": "--mean", "std": "--std", "in_chans": "--in-chans",
    "num_classes": "--num-classes", "teacher": "--teacher", "teacher_spec": "--teacher-spec", "policy": "--policy",
    "num_samples": "--num-samples", "topk": "--topk", "num_pairs": "--num-pairs", "seed": "--seed",
    "seeds": "--seeds", "batch_size": "--batch-size", "num_workers": "--num-workers", "num_threads": "--num-threads",
    "no_progress": "--no-progress",
}

EPILOG = """\
The same flag means the same thing in every command: --dataset (source data), --split, --revision,
--dataset-config, --image-column/--label-column/--key-column, --output-dir (the run folder written), --run-dir
(the run folder read), --output-file (a file written), --arch, --image-size, --teacher/--teacher-spec, --seed,
--batch-size, --num-workers, --num-threads, --limit, --builder. See `hf-dr COMMAND --help`.

A mistake prints one line (hf-dr CMD: error: ...) and exits with status 1; add --debug anywhere (or set
HF_DR_DEBUG=1) to see the traceback."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``hf-dr`` parser: every subcommand of :data:`COMMANDS` is listed, but only ``only`` (every one, for
    None) gets its module imported and its arguments added."""
    from hf_dr import __version__

    parser = ArgumentParser(prog="hf-dr", description="Dataset Reinforcement for Hugging Face datasets.",
                                     epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_path, help_text) in COMMANDS.items():
        if only is not None and name != only:
            subparsers.add_parser(name, help=help_text)  # listed, not loaded: it is not the command being run
            continue
        module = importlib.import_module(module_path)
        subparser = subparsers.add_parser(name, help=help_text, description=module.__doc__, epilog=DEBUG_EPILOG,
                                          formatter_class=HelpFormatter)
        module.add_arguments(subparser)
        check_numbers(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any.

    Example:
        >>> command_of(["--version"]), command_of(["verify", "--run-dir", "r"])
        (None, 'verify')
    """
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-dr``: parses ``argv`` and runs the subcommand inside the error boundary
    (:func:`hf_dr.cli._boundary.run_main`): a user's mistake is one line on stderr and exit status 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = command_of(argv)
    return run_main(_run, argv, prog=f"hf-dr {command}" if command in COMMANDS else "hf-dr")


def _run(argv: list[str]) -> int:
    command = command_of(argv)
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    configure_logging()
    set_num_threads(getattr(args, "num_threads", None))
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
