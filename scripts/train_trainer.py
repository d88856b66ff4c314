"""Train on reinforced data with ``transformers.Trainer``: no subclassing, the loss is ``compute_loss_func``.

Students: a timm architecture (wrapped so that the Trainer can call it, or built inside transformers with
``--timm-wrapper``), or a transformers image-classification checkpoint folder (``--model path/with/config.json``).
``--init-from`` starts from an hf_dr checkpoint (a head of another class count is re-initialised), so "pretrain on
X+, fine-tune on Y+" is two commands:

    python scripts/train_trainer.py --dataset fashion-mnist --reinforcements runs/demo/reinforced \\
        --model hf_dr_cnn_small --epochs 30 --temperature 2 --output-dir runs/trainer-student
    python scripts/train_trainer.py --dataset ./other_set --reinforcements other+ --model hf_dr_cnn_small \\
        --init-from runs/trainer-student/model.safetensors --epochs 10 --lr 0.01 --output-dir runs/finetuned

The recipe is the one of ``scripts/train.py`` (SGD Nesterov or AdamW from :func:`hf_dr.train.loop.build_optimizer`,
warmup then cosine). Writes the Trainer's outputs plus ``model.safetensors`` for ``hf-dr eval``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from hf_dr.train.checkpoints import checkpoint_model_metadata, load_checkpoint, save_checkpoint
from hf_dr.train.inputs import DataConfig, class_count, eval_data, load_image_dataset, student, training_data
from hf_dr.train.loop import TrainConfig, build_optimizer
from hf_dr.train.models import model_num_classes
from hf_dr.train.trainer import reinforced_trainer, reinforced_training_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="'fashion-mnist', a Hub id, a local folder or a Parquet file")
    parser.add_argument("--split", default="train")
    parser.add_argument("--eval-split", default=None, help="Trainer.evaluate on this split at the end")
    parser.add_argument("--reinforcements", required=True, help="folder of an hf-dr reinforce run")
    parser.add_argument("--data-root", default=None, help="Fashion-MNIST idx folder")
    parser.add_argument("--model", required=True, help="timm architecture or a transformers checkpoint folder")
    parser.add_argument("--timm-wrapper", action="store_true", help="build the timm model as "
                        "transformers' TimmWrapperForImageClassification")
    parser.add_argument("--in-chans", type=int, default=None)
    parser.add_argument("--init-from", default=None, help="hf_dr checkpoint to start from (fine-tuning)")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--mean", type=float, nargs="+", default=None)
    parser.add_argument("--std", type=float, nargs="+", default=None)
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--warmup-fraction", type=float, default=0.05)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--output-dir", required=True)
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace, num_classes: int) -> torch.nn.Module:
    if (Path(args.model) / "config.json").exists():
        from transformers import AutoModelForImageClassification

        return AutoModelForImageClassification.from_pretrained(args.model, num_labels=num_classes,
                                                               ignore_mismatched_sizes=True)
    if not args.timm_wrapper:
        return student(args.model, num_classes, args.in_chans, args.init_from)
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    model_args = {"in_chans": args.in_chans} if args.in_chans else {}
    model = TimmWrapperForImageClassification(TimmWrapperConfig(architecture=args.model, num_labels=num_classes,
                                                                model_args=model_args))
    if args.init_from:
        load_checkpoint(model.timm_model, args.init_from, ignore_mismatched_sizes=True)
    return model


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    train = load_image_dataset(args.dataset, args.split, args.data_root)
    num_classes = class_count(train)
    model = build_model(args, num_classes)
    data = DataConfig.resolve(model, args.size, args.mean, args.std)
    data.in_chans = args.in_chans or data.in_chans
    train_ds, _ = training_data(train, data, args.reinforcements, seed=args.seed)
    evaluation = eval_data(load_image_dataset(args.dataset, args.eval_split, args.data_root), data) \
        if args.eval_split else None
    recipe = TrainConfig(optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay)
    training_args = reinforced_training_args(
        args.output_dir, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=256, gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=args.warmup_fraction,
        dataloader_num_workers=args.num_workers, seed=args.seed, logging_steps=50, save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = reinforced_trainer(model, training_args, train_ds, eval_dataset=evaluation,
                                 temperature=args.temperature, channels_last=args.channels_last,
                                 optimizers=(build_optimizer(model, recipe), None))
    output = trainer.train()
    metrics = {"train": output.metrics}
    if evaluation is not None:
        metrics["eval"] = trainer.evaluate()
    inner = getattr(model, "timm_model", model)
    architecture = args.model if not (Path(args.model) / "config.json").exists() else None
    if architecture is not None:
        metadata = checkpoint_model_metadata(inner, architecture, {"input_size": (data.in_chans, *data.size),
                                                                  "mean": data.mean, "std": data.std})
        metadata["num_classes"] = model_num_classes(model)
        save_checkpoint(inner, Path(args.output_dir) / "model.safetensors", metadata)
    else:
        trainer.save_model(args.output_dir)
    (Path(args.output_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logging.info("done: %s", metrics)
    return metrics


if __name__ == "__main__":
    main()
