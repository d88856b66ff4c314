"""Fine-tune M copies of a timm architecture (one seed each) from a pretrained checkpoint on a dataset, evaluate each
and their ensemble, and save member-{i}.safetensors, teacher_spec.json (for `hf-dr reinforce --teacher-spec`) and
finetune_metrics.json. This builds the teachers of CIFAR-100+, Flowers-102+ and Food-101+ (paper Sec. 2.3), or of
your own dataset.

Example:
    hf-dr finetune-teacher --builder cifar100_plus --output-dir teachers/cifar100_plus
    hf-dr reinforce --builder cifar100_plus --teacher-spec teachers/cifar100_plus/teacher_spec.json
    hf-dr finetune-teacher --dataset ./my_imagefolder --eval-split test --arch resnet50.a1_in1k \\
        --num-members 4 --epochs 20 --output-dir teachers/mine
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from hf_dr.augment.defaults import PLAIN_POLICY
from hf_dr.cli._options import add_num_threads, add_option, apply_recipe, first_rows, load_builder, pick

if TYPE_CHECKING:
    from hf_dr.generate.builder import Builder

HELP = "fine-tune M seeds of a pretrained timm model on a dataset and save them as a teacher spec for reinforce"

DEFAULTS = {"split": "train", "image_column": "image", "label_column": "label"}
NUM_MEMBERS, EPOCHS = 4, 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``finetune-teacher`` flags to ``parser`` (old spellings, hidden: ``--name``, ``--output``)."""
    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--builder", default=None, metavar="NAME",
                        help="a recipe (hf-dr builders): its source, columns, base checkpoint, seeds and resolution "
                             "are the defaults (default: none)")
    _add_data_arguments(parser.add_argument_group("data"))
    _add_member_arguments(parser.add_argument_group("members"))
    _add_training_arguments(parser.add_argument_group("training"))
    add_option(parser, "--output-dir", hidden=("--output",), default=None, metavar="DIR",
               help="the folder to write the members and teacher_spec.json to (default with --builder: "
                    "teachers/NAME)")


def _add_data_arguments(data: argparse._ArgumentGroup) -> None:
    data.add_argument("--dataset", default=None,
                      help="Hub id, local folder or Parquet file (default: the builder's source)")
    data.add_argument("--split", default=None, help="training split (default: the builder's, else train)")
    data.add_argument("--eval-split", default=None,
                      help="held-out split for the metrics (default: the builder's, else none)")
    data.add_argument("--calibration-split", default=None,
                      help="held-out split (not --eval-split, not the rows you reinforce) to fit the ensemble's "
                           "temperature on; the spec records it (default: none, uncalibrated)")
    add_option(data, "--dataset-config", hidden=("--name",), default=None, metavar="NAME",
               help="dataset configuration name (default: the builder's, else none)")
    data.add_argument("--revision", default=None,
                      help="dataset revision on the Hub (default: the builder's, else main)")
    data.add_argument("--image-column", default=None, help="(default: the builder's, else image)")
    data.add_argument("--label-column", default=None, help="a ClassLabel column (default: the builder's, else label)")
    data.add_argument("--key-column", default=None,
                      help="unique key column (default: the builder's, else a hash of the image bytes)")
    data.add_argument("--limit", type=int, default=None, metavar="K",
                      help="train on the first K rows only (default: every row)")
    data.add_argument("--eval-limit", type=int, default=None, metavar="K",
                      help="evaluate on the first K rows only (default: every row)")


def _add_member_arguments(model: argparse._ArgumentGroup) -> None:
    model.add_argument("--arch", default=None,
                       help="timm name with a pretrained tag, e.g. resnet152.tv2_in1k (default: the builder's)")
    model.add_argument("--weights", default=None, metavar="FILE",
                       help="local pretrained weights, offline (default: the Hub weights of --arch)")
    model.add_argument("--random-init", action="store_true",
                       help="start from random weights (no pretrained checkpoint reachable, e.g. offline; ablations)")
    model.add_argument("--num-members", type=int, default=None,
                       help="M, ensemble size (default: the builder's, else 4)")
    model.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="one seed per member (default: the builder's, else 0..M-1)")
    model.add_argument("--member-tolerance", type=float, default=0.05, metavar="T",
                       help="with --eval-split: leave out a member more than T (and 3 standard errors) below the best "
                            "member's top-1 (default 0.05; a negative value keeps every member)")
    model.add_argument("--image-size", type=int, default=None,
                       help="resolution in pixels (default: the builder's, else the checkpoint's)")
    model.add_argument("--mean", type=float, nargs="+", default=None,
                       help="input normalisation mean, in training and in the teacher spec (default: the "
                            "checkpoint's, ImageNet's for most timm models)")
    model.add_argument("--std", type=float, nargs="+", default=None, help="input normalisation std (default: the "
                       "checkpoint's)")


def _add_training_arguments(train: argparse._ArgumentGroup) -> None:
    train.add_argument("--epochs", type=int, default=None, help="(default: the builder's, else 10)")
    train.add_argument("--batch-size", type=int, default=64, help="images per step")
    train.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd", help="SGD (Nesterov) or AdamW")
    train.add_argument("--lr", type=float, default=0.01, help="peak learning rate (warmup, then cosine)")
    train.add_argument("--weight-decay", type=float, default=5e-4, help="not applied to norms and biases")
    train.add_argument("--warmup-fraction", type=float, default=0.05, help="linear warmup, a fraction of the steps")
    train.add_argument("--label-smoothing", type=float, default=0.1, help="of the cross-entropy")
    train.add_argument("--clip-grad-norm", type=float, default=None,
                       help="clip each step's gradient norm (default: none)")
    train.add_argument("--policy", default=PLAIN_POLICY, help="augmentation policy without mixing")
    train.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    add_num_threads(train)
    train.add_argument("--channels-last", action="store_true", help="channels-last inputs and weights")
    train.add_argument("--preload", action="store_true", help="decode the images once (small datasets)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (rate and ETA) while training")


def run(args: argparse.Namespace) -> int:
    """Loads the splits, runs :func:`hf_dr.train.finetune.finetune_teacher`, prints metrics and the next command."""
    from hf_dr.data.sources import load_source
    from hf_dr.errors import InvalidConfigError
    from hf_dr.train.finetune import FinetuneConfig, finetune_teacher, finetune_train_config

    builder = load_builder(args.builder)
    _apply_builder(args, builder)
    config = FinetuneConfig(
        args.arch, num_members=args.num_members, seeds=args.seeds, weights=args.weights,
        pretrained=not args.random_init, image_size=args.image_size, mean=args.mean, std=args.std,
        policy=args.policy, preload=args.preload,
        member_tolerance=args.member_tolerance if args.member_tolerance >= 0 else None,
        train=finetune_train_config(
            epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
            weight_decay=args.weight_decay, warmup_fraction=args.warmup_fraction,
            label_smoothing=args.label_smoothing, channels_last=args.channels_last, num_workers=args.num_workers,
            clip_grad_norm=args.clip_grad_norm,
        ),
    )
    train = first_rows(load_source(args.dataset, args.split, args.dataset_config, args.revision), args.limit)
    evaluation = None
    if args.eval_split:
        evaluation = load_source(args.dataset, args.eval_split, args.dataset_config, args.revision)
        evaluation = first_rows(evaluation, args.eval_limit, "--eval-limit")
    calibration = None
    if args.calibration_split and args.calibration_split in (args.split or "train", args.eval_split):
        raise InvalidConfigError(f"--calibration-split {args.calibration_split!r} is also the training or eval split: "
                                 "fit the temperature on rows the members and the evaluation do not use")
    if args.calibration_split:
        calibration = load_source(args.dataset, args.calibration_split, args.dataset_config, args.revision)
    result = finetune_teacher(train, config, args.output_dir, evaluation, image_column=args.image_column,
                              label_column=args.label_column, key_column=args.key_column,
                              progress=not args.no_progress, calibration_dataset=calibration)
    for index, member in enumerate(result.members):
        top1 = member.get("metrics", {}).get("top1")
        state = "" if member.get("kept", True) else " (left out: far below the best member)"
        print(f"member {index} (seed {member['seed']}): "
              + (f"top-1 {top1:.4f}" if top1 is not None else "trained") + state)
    if result.ensemble is not None:
        print(f"ensemble of {result.ensemble['members']}: top-1 {result.ensemble['top1']:.4f}, "
              f"ECE {result.ensemble['ece']:.4f}")
    if result.calibration is not None and "skipped" in result.calibration:
        print(f"uncalibrated: {result.calibration['skipped']}")
    elif result.calibration is not None:
        print(f"temperature {result.calibration['temperature']:.3f} (calibration NLL "
              f"{result.calibration['nll_before']:.4f} -> {result.calibration['nll_after']:.4f})")
    print(f"teacher spec -> {result.spec_path}\nnext: hf-dr reinforce {_next_flags(args, builder)}--teacher-spec "
          f"{result.spec_path}")
    return 0


def _next_flags(args: argparse.Namespace, builder: Builder | None) -> str:
    """The flags of the ``hf-dr reinforce`` command that follows: the same data, and an output folder."""
    if builder is not None:
        return f"--builder {builder.name} "
    name = os.path.basename(os.path.normpath(args.dataset)) or "dataset"
    flags = [f"--dataset {args.dataset}", f"--output-dir {name}-plus"]
    given = (("--split", args.split, "train"), ("--image-column", args.image_column, "image"),
             ("--label-column", args.label_column, "label"), ("--key-column", args.key_column, None))
    for flag, value, default in given:
        if value and value != default:
            flags.append(f"{flag} {value}")
    return " ".join(flags) + " "


def _apply_builder(args: argparse.Namespace, builder: Builder | None) -> None:
    """Fills the flags left out from the recipe, then from :data:`DEFAULTS`; refuses what is still missing."""
    from hf_dr.errors import InvalidConfigError

    apply_recipe(args, builder, DEFAULTS)
    if builder is not None:
        args.eval_split = pick(args.eval_split, builder, "eval_split")
        args.arch = args.arch or builder.teacher_base
        args.image_size = pick(args.image_size, builder, "teacher_input_size")
        args.output_dir = args.output_dir or builder.default_teacher_dir
    args.epochs = pick(args.epochs, builder, "teacher_epochs", EPOCHS)
    _resolve_seeds(args, list(builder.teacher_seeds) if builder is not None else [])
    missing = [flag for flag, value in [("--dataset", args.dataset), ("--arch", args.arch),
                                        ("--output-dir", args.output_dir)] if not value]
    if missing:
        raise InvalidConfigError(f"pass {', '.join(missing)} (or --builder NAME of a recipe with a teacher to "
                                 "fine-tune; see `hf-dr builders`)")


def _resolve_seeds(args: argparse.Namespace, recipe_seeds: list[int]) -> None:
    """--seeds wins; else the first --num-members of the recipe's seeds (0..M-1 beyond them); M defaults to the
    recipe's member count, else 4."""
    if args.seeds is not None:
        args.num_members = args.num_members or len(args.seeds)
        return
    args.num_members = args.num_members or len(recipe_seeds) or NUM_MEMBERS
    enough = len(recipe_seeds) >= args.num_members
    args.seeds = recipe_seeds[: args.num_members] if enough else list(range(args.num_members))
