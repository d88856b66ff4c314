"""Train a timm student on reinforced data (or plainly, for the baseline) with plain PyTorch + Accelerate.

The paper's recipe shape: SGD (Nesterov) or AdamW, linear warmup, cosine decay; keep the same hyperparameters for
the plain and the reinforced run. ``--init-from`` starts from a checkpoint, so "pretrain on X+, fine-tune on Y+" is
two commands (a head of another class count is re-initialised):

    python scripts/train.py --dataset fashion-mnist --reinforcements runs/demo/reinforced \\
        --model hf_dr_cnn_small --epochs 30 --temperature 2 --output-dir runs/student
    python scripts/train.py --dataset fashion-mnist --policy rrc --model hf_dr_cnn_small --epochs 30 \\
        --output-dir runs/plain                                          # the baseline, same hyperparameters
    python scripts/train.py --dataset ./other_set --reinforcements other+ --init-from runs/student/model.safetensors \\
        --model hf_dr_cnn_small --epochs 10 --lr 0.01 --output-dir runs/finetuned

Several processes: ``accelerate launch scripts/train.py ...``. Writes ``model.safetensors`` (architecture and
preprocessing in its header, for ``hf-dr eval``), ``train_config.json`` and ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from hf_dr.train.checkpoints import checkpoint_model_metadata, save_checkpoint
from hf_dr.train.inputs import DataConfig, class_count, eval_data, load_image_dataset, student, training_data
from hf_dr.train.loop import TrainConfig, fit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, help="'fashion-mnist', a Hub id, a local folder or a Parquet file")
    data.add_argument("--split", default="train")
    data.add_argument("--eval-split", default=None, help="evaluate top-1/NLL/ECE on this split at the end")
    data.add_argument("--reinforcements", default=None, help="folder of an hf-dr reinforce run (soft labels)")
    data.add_argument("--policy", default="rrc", help="on-the-fly augmentation without --reinforcements")
    data.add_argument("--data-root", default=None, help="Fashion-MNIST idx folder")
    data.add_argument("--preload", action="store_true", help="decode the images once (small datasets)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True, help="timm architecture")
    model.add_argument("--num-classes", type=int, default=None, help="default: the label column's class count")
    model.add_argument("--in-chans", type=int, default=None)
    model.add_argument("--init-from", default=None, help="checkpoint to start from (fine-tuning)")
    model.add_argument("--size", type=int, default=None)
    model.add_argument("--mean", type=float, nargs="+", default=None)
    model.add_argument("--std", type=float, nargs="+", default=None)
    recipe = parser.add_argument_group("recipe (TrainConfig)")
    defaults = TrainConfig()
    for name in ("epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "num_workers", "seed",
                 "log_every"):
        recipe.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "momentum", "weight_decay", "warmup_fraction", "min_lr_ratio", "temperature",
                 "label_smoothing", "clip_grad_norm"):
        recipe.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    recipe.add_argument("--optimizer", choices=["sgd", "adamw"], default=defaults.optimizer)
    recipe.add_argument("--channels-last", action="store_true")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = load_image_dataset(args.dataset, args.split, args.data_root)
    num_classes = args.num_classes or class_count(train)
    model = student(args.model, num_classes, args.in_chans, args.init_from)
    data = DataConfig.resolve(model, args.size, args.mean, args.std)
    data.in_chans = args.in_chans or data.in_chans
    train_ds, _ = training_data(train, data, args.reinforcements, args.policy, args.seed, args.preload)
    evaluation = None
    if args.eval_split:
        evaluation = eval_data(load_image_dataset(args.dataset, args.eval_split, args.data_root), data, args.preload)
    config = TrainConfig(**{f: getattr(args, f) for f in TrainConfig.__dataclass_fields__ if hasattr(args, f)})
    (out / "train_config.json").write_text(json.dumps({**vars(args), "train_config": config.to_dict()}, indent=2))
    result = fit(model, train_ds, config, eval_dataset=evaluation, num_classes=num_classes, progress=True)
    metadata = checkpoint_model_metadata(model, args.model, {"input_size": (data.in_chans, *data.size),
                                                            "mean": data.mean, "std": data.std})
    save_checkpoint(model, out / "model.safetensors", metadata)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    logging.info("%d steps in %.0f s; metrics %s", result.steps, result.wall_time, result.metrics)
    return result.to_dict()


if __name__ == "__main__":
    main()
