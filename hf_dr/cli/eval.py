"""Evaluate a checkpoint on a split: top-1 accuracy, negative log-likelihood and expected calibration error (15 bins).

The checkpoint is a ``.safetensors`` file written by hf_dr (architecture and preprocessing are read from it), a
Trainer output folder (``model.safetensors``), or any timm weights file with --arch. Transformers checkpoints (a
folder with ``config.json``) load with ``from_pretrained``.

Example:
    hf-dr eval --checkpoint runs/demo/students/reinforced-seed0.safetensors --dataset fashion-mnist --split test
    hf-dr eval --checkpoint out/ --arch resnet18 --dataset ./imagefolder --split validation --image-size 224
"""

from __future__ import annotations

import argparse
import json
import logging

from hf_dr.cli._options import add_num_threads, add_option

logger = logging.getLogger(__name__)
HELP = "top-1, NLL and ECE of a checkpoint on a dataset split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``eval`` flags to ``parser`` (old spellings, hidden: ``--model``, ``--size``, ``--output``)."""
    parser.add_argument("--checkpoint", required=True, help="hf_dr .safetensors file, Trainer or transformers folder")
    add_option(parser, "--arch", hidden=("--model",), default=None,
               help="timm architecture (default: the one the checkpoint records)")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True,
                      help="the dataset to evaluate on: 'fashion-mnist' (Debian files), a Hub id (of a reinforced "
                           "dataset: the source it records), a local folder or a Parquet file (required: a default "
                           "would evaluate any checkpoint on Fashion-MNIST)")
    data.add_argument("--split", default="test", help="the split to evaluate")
    data.add_argument("--image-column", default="image", help="image column")
    data.add_argument("--label-column", default="label", help="label column")
    data.add_argument("--limit", type=int, default=None, metavar="K",
                      help="evaluate on the first K rows only (default: every row)")
    model = parser.add_argument_group("model inputs")
    model.add_argument("--num-classes", type=int, default=None, help="(default: the label column's class count)")
    model.add_argument("--in-chans", type=int, default=None, help="(default: the checkpoint's, else the model's)")
    add_option(model, "--image-size", hidden=("--size",), type=int, default=None,
               help="input resolution in pixels (default: the checkpoint's, else the model's)")
    model.add_argument("--mean", type=float, nargs="+", default=None, help="(default: the checkpoint's)")
    model.add_argument("--std", type=float, nargs="+", default=None, help="(default: the checkpoint's)")
    execution = parser.add_argument_group("execution")
    execution.add_argument("--batch-size", type=int, default=256, help="images per forward")
    execution.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    add_num_threads(execution)
    add_option(parser, "-o", "--output-file", hidden=("--output",), default=None, metavar="FILE",
               help="also write the metrics as JSON here (default: print them only)")


def run(args: argparse.Namespace) -> int:
    """Loads the model and the split, runs :func:`hf_dr.evaluate_checkpoint` and prints the metrics as JSON."""
    import os

    from hf_dr.errors import WeightsNotFoundError
    from hf_dr.hub.named import find_reinforced, plain_images
    from hf_dr.train.evaluation import evaluate_checkpoint

    if not os.path.exists(args.checkpoint):
        raise WeightsNotFoundError(f"--checkpoint {args.checkpoint!r} does not exist; pass an hf_dr .safetensors file "
                                   "(scripts/train.py's model.safetensors), a Trainer output folder or a transformers "
                                   "folder")
    rows, reinforced = find_reinforced(args.dataset, args.split)
    if rows is None:  # a reinforced Hub repo: its images are those of the source it records
        rows = plain_images(reinforced, args.split)
        logger.info("evaluating on split %r of %s, the dataset %s was made from", args.split,
                    reinforced.source()[0], args.dataset)
    metrics = evaluate_checkpoint(
        args.checkpoint, dataset=rows, split=args.split, model=args.arch, image_column=args.image_column,
        label_column=args.label_column, num_classes=args.num_classes, in_chans=args.in_chans, size=args.image_size,
        mean=args.mean, std=args.std, batch_size=args.batch_size, num_workers=args.num_workers, limit=args.limit,
    )
    metrics["dataset"] = args.dataset
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output_file:
        from hf_dr.files import write_text_atomic

        write_text_atomic(args.output_file, text + "\n")
    return 0
