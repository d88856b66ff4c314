"""Train a timm student on reinforced data (or plainly, for the baseline) with plain PyTorch + Accelerate.

The paper's recipe shape: SGD (Nesterov) or AdamW, linear warmup, cosine decay; keep the same hyperparameters for
the plain and the reinforced run. ``--init-from`` starts from a checkpoint, so "pretrain on X+, fine-tune on Y+" is
two commands (a head of another class count is re-initialised):

    python scripts/train.py --dataset fashion-mnist --run-dir runs/demo/reinforced \\
        --arch hf_dr_cnn_small --epochs 30 --temperature 2 --output-dir runs/student
    python scripts/train.py --dataset fashion-mnist --policy rrc --arch hf_dr_cnn_small --epochs 30 \\
        --output-dir runs/plain                                          # the baseline, same hyperparameters
    python scripts/train.py --dataset ./other_set --run-dir other+ --init-from runs/student/model.safetensors \\
        --arch hf_dr_cnn_small --epochs 10 --lr 0.01 --output-dir runs/finetuned

Several processes: ``accelerate launch scripts/train.py ...``. Writes ``model.safetensors`` (architecture and
preprocessing in its header, for ``hf-dr eval``), ``train_config.json`` and ``result.json``. The flags are those of
``hf-dr`` (see ``--help``); the recipe flags are :class:`hf_dr.TrainConfig`'s fields. The student's input channels
default to the run's recorded image mode ("L": 1, "RGB": 3). A mistake is one line and exit status 1 (``--debug`` or
``HF_DR_DEBUG=1``: the traceback).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from hf_dr.cli._boundary import run_main
from hf_dr.cli._options import configure_logging, set_num_threads
from hf_dr.cli._scripts import AugmentArguments, DataArguments, ModelArguments, RunArguments, ScriptArgumentParser
from hf_dr.data.curriculum import Curriculum
from hf_dr.errors import InvalidConfigError
from hf_dr.train.checkpoints import checkpoint_model_metadata, save_checkpoint
from hf_dr.train.inputs import (
    DataConfig,
    class_count,
    eval_data,
    load_image_dataset,
    recorded_image_mode,
    student,
    training_data,
)
from hf_dr.train.loop import TrainConfig, fit
from hf_dr.train.models import check_model_num_classes

logger = logging.getLogger("hf_dr.scripts.train")
ARGUMENTS = (DataArguments, ModelArguments, AugmentArguments, TrainConfig, RunArguments)


def build_parser() -> ScriptArgumentParser:
    """The script's flags: the dataclasses of :data:`ARGUMENTS`, TrainConfig's fields being the recipe."""
    return ScriptArgumentParser(ARGUMENTS, prog=Path(__file__).name, description=__doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> dict:
    data_args, model_args, augment, config, run = build_parser().parse(argv)
    configure_logging()
    set_num_threads(run.num_threads)
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = load_image_dataset(data_args.dataset, data_args.split, data_args.data_root)
    num_classes = model_args.num_classes or class_count(train, data_args.label_column)
    model = student(model_args.arch, num_classes, model_args.in_chans, model_args.init_from,
                    image_mode=recorded_image_mode(data_args.run_dir), source=f"the run {data_args.run_dir}")
    data = DataConfig.resolve(model, model_args.image_size, model_args.mean, model_args.std)
    if augment.curriculum and config.max_steps:
        raise InvalidConfigError("--curriculum moves its window over the epochs: pass --epochs, not --max-steps")
    curriculum = Curriculum.named(augment.curriculum, config.epochs) if augment.curriculum else None
    train_ds, transform = training_data(train, data, data_args.run_dir, augment.policy, config.seed,
                                        data_args.preload, key_column=data_args.key_column,
                                        image_column=data_args.image_column, label_column=data_args.label_column,
                                        curriculum=curriculum)
    data_classes = getattr(transform, "num_classes", None) or class_count(train, data_args.label_column)
    if data_classes:  # --num-classes against the run's soft labels, or the label column's classes
        check_model_num_classes(model, data_classes)
    evaluation = None
    if data_args.eval_split:
        evaluation = eval_data(load_image_dataset(data_args.dataset, data_args.eval_split, data_args.data_root),
                               data, data_args.preload, data_args.image_column, data_args.label_column)
    arguments = {"data": asdict(data_args), "model": asdict(model_args), "augment": asdict(augment),
                 "run": asdict(run), "train_config": config.to_dict()}
    (out / "train_config.json").write_text(json.dumps(arguments, indent=2))
    result = fit(model, train_ds, config, eval_dataset=evaluation, num_classes=num_classes,
                 progress=not run.no_progress)
    metadata = checkpoint_model_metadata(model, model_args.arch, {"input_size": (data.in_chans, *data.size),
                                                                 "mean": data.mean, "std": data.std})
    save_checkpoint(model, out / "model.safetensors", metadata)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    logger.info("%d steps in %.0f s; metrics %s", result.steps, result.wall_time, result.metrics)
    return result.to_dict()


if __name__ == "__main__":
    status = run_main(main)  # a mistake: one line on stderr and status 1 (--debug: the traceback)
    if status:  # success returns normally, so that runpy (tests/test_docs.py) goes on
        sys.exit(status)
