"""Evaluate a checkpoint on a split: top-1 accuracy, negative log-likelihood and expected calibration error (15 bins).

The checkpoint is a ``.safetensors`` file written by hf_dr (architecture and preprocessing are read from it), a
Trainer output folder (``model.safetensors``), or any timm weights file with --model. Transformers checkpoints (a
folder with ``config.json``) load with ``from_pretrained``.

Example:
    hf-dr eval --checkpoint runs/demo/students/reinforced-seed0.safetensors --dataset fashion-mnist --split test
    hf-dr eval --checkpoint out/ --model resnet18 --dataset ./imagefolder --split validation --size 224
"""

from __future__ import annotations

import argparse
import json

HELP = "top-1, NLL and ECE of a checkpoint on a dataset split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``eval`` flags to ``parser``."""
    parser.add_argument("--checkpoint", required=True, help="hf_dr .safetensors file, Trainer or transformers folder")
    parser.add_argument("--model", default=None, help="timm architecture (default: read from the checkpoint)")
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="'fashion-mnist' (Debian files), a Hub id, a local folder or a Parquet file")
    parser.add_argument("--split", default="test")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--num-classes", type=int, default=None, help="default: the label column's class count")
    parser.add_argument("--in-chans", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="input resolution (default: the model's)")
    parser.add_argument("--mean", type=float, nargs="+", default=None)
    parser.add_argument("--std", type=float, nargs="+", default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N rows only")
    parser.add_argument("--output", default=None, help="also write the metrics as JSON here")


def run(args: argparse.Namespace) -> int:
    """Loads the model and the split, runs :func:`hf_dr.evaluate_checkpoint` and prints the metrics as JSON."""
    from hf_dr.train.evaluation import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint, dataset=args.dataset, split=args.split, model=args.model, image_column=args.image_column,
        label_column=args.label_column, num_classes=args.num_classes, in_chans=args.in_chans, size=args.size,
        mean=args.mean, std=args.std, batch_size=args.batch_size, num_workers=args.num_workers, limit=args.limit,
    )
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0
