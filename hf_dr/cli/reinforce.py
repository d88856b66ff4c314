"""Run a teacher (ensemble) once over N random augmentations of every image and store the augmentation params with
the teacher's top-k probabilities as Parquet shards. Resumable (rerun the same command); for several processes or
GPUs: accelerate launch scripts/reinforce.py ... (or torchrun --nproc_per_node K scripts/reinforce.py ...).

Example:
    hf-dr reinforce --dataset ./my_imagefolder --teacher resnet50=teacher.safetensors \\
        --policy rrc+ra_re --num-samples 100 --topk 10 --output-dir reinforced
    hf-dr reinforce --builder imagenet_plus_small --limit 1000   # a recipe (hf-dr builders); flags override it
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from hf_dr.cli._options import add_num_threads, add_option, apply_recipe, first_rows, load_builder
from hf_dr.generate.settings import ReinforceSettings  # light: its defaults are the flags' defaults

if TYPE_CHECKING:
    from hf_dr.generate.builder import Builder

HELP = "run a teacher over N stored augmentations of every image; write params and top-k as Parquet shards"
SETTINGS = ReinforceSettings()  # the defaults of reinforce(), the one source of the flags' defaults
RECIPE_SETTINGS = ("image_column", "label_column", "policy", "num_samples", "topk", "seed")  # a builder fills them
DEFAULTS = {"split": "train", **{name: getattr(SETTINGS, name) for name in RECIPE_SETTINGS}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``reinforce`` flags to ``parser`` (old spellings, hidden: ``--name``, ``--output``)."""
    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--builder", default=None, metavar="NAME",
                        help="a recipe (hf-dr builders) whose values are the defaults of the other flags "
                             "(default: none)")
    recipe.add_argument("--limit", type=int, default=None, metavar="K",
                        help="reinforce only the first K rows (default: every row)")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default=None,
                      help="Hub id, local folder (imagefolder, Parquet, save_to_disk) or a Parquet file (default: the "
                           "builder's source)")
    data.add_argument("--split", default=None, help="split to reinforce (default: the builder's, else train)")
    add_option(data, "--dataset-config", hidden=("--name",), default=None, metavar="NAME",
               help="dataset configuration name (default: the builder's, else none)")
    data.add_argument("--revision", default=None,
                      help="dataset revision (branch, tag or commit) on the Hub (default: the builder's, else main)")
    _add_column_options(data)
    _add_image_options(data)
    teacher = parser.add_argument_group("teacher")
    teacher.add_argument("--teacher", action="append", default=[], metavar="MEMBER",
                         help="timm name (Hub weights), hf-hub:ORG/NAME[@REVISION] (a model repo, recorded at its "
                              "commit), ARCH=weights.safetensors or local-dir:DIR; repeat for an ensemble (default: "
                              "the builder's members)")
    teacher.add_argument("--teacher-spec", default=None, metavar="FILE",
                         help="JSON list of members {arch, weights, num_classes, input_size, interpolation, mean, "
                              "std, crop_pct, temperature}, as `hf-dr finetune-teacher` writes; relative weights "
                              "paths are read next to the file (docs/teachers.md; default: none)")
    run = parser.add_argument_group("reinforcement")
    run.add_argument("--policy", default=None,
                     help="policy name (hf_dr.list_policies()) or a JSON config file (default: the builder's, else "
                          f"{SETTINGS.policy})")
    run.add_argument("--num-samples", type=int, default=None,
                     help=f"N, augmentations per image (default: the builder's, else {SETTINGS.num_samples})")
    run.add_argument("--topk", type=int, default=None,
                     help=f"k, probabilities kept per augmentation (default: the builder's, else {SETTINGS.topk})")
    run.add_argument("--seed", type=int, default=None, help=f"(default: the builder's, else {SETTINGS.seed})")
    _add_codec_options(run)
    output = parser.add_argument_group("output")
    add_option(output, "--output-dir", hidden=("--output",), default=None, metavar="DIR",
               help="the run folder to write (default with --builder: reinforced/NAME)")
    output.add_argument("--shard-size", type=int, default=SETTINGS.shard_size, help="rows per shard; the resume unit")
    output.add_argument("--overwrite", action="store_true", help="delete a previous run in --output-dir first")
    execution = parser.add_argument_group("execution")
    execution.add_argument("--batch-size", type=int, default=SETTINGS.batch_size, help="views per teacher forward")
    execution.add_argument("--num-workers", type=int, default=None,
                           help="DataLoader workers decoding and augmenting (default: 0 on CPU, else half the CPU "
                                "cores, at most 8)")
    add_num_threads(execution)
    execution.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=SETTINGS.precision,
                           help="the teacher's compute precision")
    execution.add_argument("--channels-last", action="store_true", help="channels-last inputs and weights")
    execution.add_argument("--no-progress", action="store_true", help="no progress bar (rate and ETA)")


def _add_column_options(data: argparse._ArgumentGroup) -> None:
    """The source's columns and how its rows are keyed."""
    data.add_argument("--image-column", default=None,
                      help=f"image column (default: the builder's, else {SETTINGS.image_column})")
    data.add_argument("--label-column", default=None,
                      help="label column; '' for unlabelled data (default: the builder's, else "
                           f"{SETTINGS.label_column})")
    data.add_argument("--key-column", default=None,
                      help="unique key column (default: the builder's, else a hash of the image bytes)")
    add_option(data, "--key-from", choices=["content", "path"], default=None,
               help="key rows without --key-column by: content (a hash of the image bytes; identical images are "
                    "refused) or path (the image file's name as datasets stores it, e.g. n01440764_10026.JPEG on the "
                    "Hub's ImageNet) (default: the builder's, else content)")


def _add_image_options(data: argparse._ArgumentGroup) -> None:
    """``--image-mode`` and ``--on-bad-image``: how images are converted, and what an undecodable one does."""
    add_option(data, "--image-mode", choices=["RGB", "L"], default=None,
               help="the mode every image is converted to, for the teacher and the replay (16-bit rescaled, "
                    "transparency dropped, CMYK and palettes to RGB) (default: L for a teacher reading one channel, "
                    "else RGB)")
    add_option(data, "--on-bad-image", choices=["raise", "skip"], default=SETTINGS.on_bad_image,
               help="an image that cannot be decoded: raise stops naming its row, key and file; skip gives its row "
                    "no records and lists it under 'skipped' in manifest.json; rerun with skip to resume a stopped "
                    f"run (default: {SETTINGS.on_bad_image})")


def _add_codec_options(run: argparse._ArgumentGroup) -> None:
    """How records store params and labels (hf_dr.data.codec)."""
    run.add_argument("--param-mode", choices=["stored", "seeded"], default="stored",
                     help="stored keeps every record's params; seeded keeps a 32-bit checksum and draws them again at "
                          "replay (refused if the draws differ, e.g. after a numpy change) (default: stored)")
    run.add_argument("--label-codec", choices=["fp16-topk", "q8-topk", "q8-topk-set", "sampled"],
                     default="fp16-topk",
                     help="fp16-topk: top-k ids + float16 probabilities; q8-topk: 8-bit log-coded probabilities "
                          "(within 2.76%%, the top-1's distance to 0 or 1 within 5.3%%); q8-topk-set: also ids "
                          "against each image's class set; sampled: --label-draws classes drawn from the teacher, "
                          "with counts (unbiased) (default: fp16-topk)")
    run.add_argument("--label-draws", type=int, default=None,
                     help="sampled: classes drawn per record, at most 255 (default: --topk)")
    run.add_argument("--label-temperature", type=float, default=None,
                     help="sampled: the teacher temperature the classes are drawn at; train students at it "
                          "(default: 1)")


def run(args: argparse.Namespace) -> int:
    """Loads the dataset and runs :func:`hf_dr.generate.run.reinforce` with the parsed flags."""
    from hf_dr.data.sources import load_source
    from hf_dr.errors import InvalidConfigError
    from hf_dr.generate.run import default_accelerator, reinforce
    from hf_dr.models.teacher import load_teacher_spec

    builder = load_builder(args.builder)
    _apply_builder(args, builder)
    members = list(args.teacher) + (load_teacher_spec(args.teacher_spec) if args.teacher_spec else [])
    if not members and builder is not None:
        members = builder.teacher_members()  # a recipe whose teacher must be fine-tuned names the command
    if not members:
        raise InvalidConfigError("no teacher: pass --teacher MEMBER (repeat for an ensemble) or --teacher-spec FILE")
    accelerator = default_accelerator()
    with accelerator.main_process_first():
        dataset = load_source(args.dataset, split=args.split, name=args.dataset_config,
                              revision=args.revision)
    dataset = first_rows(dataset, args.limit)
    reinforce(dataset, members, config=settings_from(args, builder), accelerator=accelerator)
    if accelerator.is_main_process:
        print(f"reinforced {len(dataset)} rows x {args.num_samples} augmentations -> {args.output_dir}")
        if builder is not None:
            print(f"publish it with: {builder.push_command(args.output_dir)}")
    return 0


def _apply_builder(args: argparse.Namespace, builder: Builder | None) -> None:
    """Fills the flags left out: from the builder's recipe, else from :data:`DEFAULTS`; refuses a missing source."""
    from hf_dr.errors import InvalidConfigError

    explicit_key_column = args.key_column
    apply_recipe(args, builder, DEFAULTS)
    if builder is not None and args.key_from is None and explicit_key_column is None:
        args.key_from = getattr(builder, "key_from", None)  # an explicit --key-column replaces the recipe's keys
    if builder is not None:
        args.output_dir = args.output_dir or os.path.join("reinforced", builder.name)
    if not args.dataset or not args.output_dir:
        raise InvalidConfigError("pass --dataset and --output-dir, or --builder NAME (see `hf-dr builders`)")


def settings_from(args: argparse.Namespace, builder: Builder | None = None) -> ReinforceSettings:
    """The :class:`~hf_dr.generate.settings.ReinforceSettings` of the parsed flags (the recipe applied)."""
    source = {"id": args.dataset, "split": args.split, "revision": args.revision}
    if builder is not None:
        source["builder"] = builder.name
    return ReinforceSettings(
        policy=args.policy, num_samples=args.num_samples, topk=args.topk, seed=args.seed, output_dir=args.output_dir,
        image_column=args.image_column, label_column=args.label_column or None, key_column=args.key_column,
        key_from=args.key_from, image_mode=args.image_mode, on_bad_image=args.on_bad_image,
        codec={"params": args.param_mode, "labels": args.label_codec, "draws": args.label_draws,
               "temperature": args.label_temperature},
        shard_size=args.shard_size, batch_size=args.batch_size, num_workers=args.num_workers,
        precision=args.precision, channels_last=args.channels_last, overwrite=args.overwrite, source=source,
        progress=not args.no_progress,
    )
