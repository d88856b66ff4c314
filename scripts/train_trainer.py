"""Train on reinforced data with ``transformers.Trainer``: no subclassing, the loss is ``compute_loss_func``.

Students: a timm architecture (wrapped so that the Trainer can call it, or built inside transformers with
``--timm-wrapper``), or a transformers image-classification checkpoint folder (``--arch path/with/config.json``).
``--init-from`` starts from an hf_dr checkpoint (a head of another class count is re-initialised), so "pretrain on
X+, fine-tune on Y+" is two commands:

    python scripts/train_trainer.py --dataset fashion-mnist --run-dir runs/demo/reinforced \\
        --arch hf_dr_cnn_small --epochs 30 --temperature 2 --output-dir runs/trainer-student
    python scripts/train_trainer.py --dataset ./other_set --run-dir other+ --arch hf_dr_cnn_small \\
        --init-from runs/trainer-student/model.safetensors --epochs 10 --lr 0.01 --output-dir runs/finetuned

The recipe is :class:`hf_dr.TrainConfig`, the one of ``scripts/train.py``, mapped onto ``TrainingArguments`` by
:func:`hf_dr.train.trainer.trainer_arguments` (SGD Nesterov or AdamW from :func:`hf_dr.train.optim.build_optimizer`,
warmup then cosine, the schedule of ``fit``; ``--recipe NAME``: one of the paper's). Writes the Trainer's outputs
plus ``model.safetensors`` for ``hf-dr eval``. The student's input channels default to the data's recorded image mode
("L": 1, "RGB": 3). A mistake is one line and exit status 1 (``--debug`` or ``HF_DR_DEBUG=1``: the traceback).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import torch

from hf_dr.augment.functional import MODE_CHANNELS
from hf_dr.cli._boundary import run_main
from hf_dr.cli._options import configure_logging, set_num_threads
from hf_dr.cli.training_scripts import (
    RecipeArguments,
    RunArguments,
    ScriptArgumentParser,
    TrainerDataArguments,
    TrainerModelArguments,
    prepare_training,
    recipe_config,
)
from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint
from hf_dr.models.students import check_input_channels, model_num_classes
from hf_dr.train.inputs import initialise_from, student
from hf_dr.train.loop import TrainConfig
from hf_dr.train.optim import build_optimizer
from hf_dr.train.tracking import check_report_to
from hf_dr.train.trainer import reinforced_trainer, trainer_arguments

logger = logging.getLogger("hf_dr.scripts.train_trainer")
ARGUMENTS = (TrainerDataArguments, TrainerModelArguments, TrainConfig, RecipeArguments, RunArguments)  # as fit's


def build_parser() -> ScriptArgumentParser:
    """The script's flags: the dataclasses of :data:`ARGUMENTS` (soft labels required: a reinforced --dataset or
    --run-dir)."""
    return ScriptArgumentParser(ARGUMENTS, prog=Path(__file__).name, description=__doc__.splitlines()[0])


def build_model(args: TrainerModelArguments, num_classes: int, image_mode: str | None = None,
                source: str = "the data") -> torch.nn.Module:
    """The student: a transformers folder, a timm model, or a timm model inside transformers (``--timm-wrapper``);
    its input channels default to ``image_mode``'s and must match them (``source`` names the data)."""
    if (Path(args.arch) / "config.json").exists():
        from transformers import AutoModelForImageClassification

        model = AutoModelForImageClassification.from_pretrained(args.arch, num_labels=num_classes,
                                                                ignore_mismatched_sizes=True)
        check_input_channels(model, image_mode, source)
        return model
    if not args.timm_wrapper:
        return student(args.arch, num_classes, args.in_chans, args.init_from, image_mode=image_mode, source=source)
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    in_chans = args.in_chans or MODE_CHANNELS.get(image_mode or "")
    model_args = {"in_chans": in_chans} if in_chans else {}
    model = TimmWrapperForImageClassification(TimmWrapperConfig(architecture=args.arch, num_labels=num_classes,
                                                                model_args=model_args))
    check_input_channels(model, image_mode, source)
    if args.init_from:
        initialise_from(model.timm_model, args.init_from)
    return model


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    data_args, model_args, recipe, named, run = parser.parse(argv)
    configure_logging()
    recipe = recipe_config(parser, argv, named, recipe)
    check_report_to(recipe.report_to, run.output_dir)  # a missing tracker: refused before the data is read
    set_num_threads(run.num_threads)
    inputs = prepare_training(data_args, model_args, lambda num_classes, in_chans, image_mode, source: build_model(
        dataclasses.replace(model_args, in_chans=in_chans), num_classes, image_mode, source), recipe.seed)
    model, data, train_ds, evaluation = inputs.model, inputs.data, inputs.train, inputs.evaluation
    training_args = trainer_arguments(recipe, run.output_dir, per_device_eval_batch_size=256,
                                      use_cpu=not torch.cuda.is_available(), disable_tqdm=run.no_progress)
    trainer = reinforced_trainer(model, training_args, train_ds, eval_dataset=evaluation,
                                 temperature=recipe.temperature, channels_last=recipe.channels_last,
                                 optimizers=(build_optimizer(model, recipe), None))
    output = trainer.train()
    metrics = {"train": output.metrics}
    if evaluation is not None:
        metrics["eval"] = trainer.evaluate()
    inner = getattr(model, "timm_model", model)
    architecture = model_args.arch if not (Path(model_args.arch) / "config.json").exists() else None
    if architecture is not None:
        metadata = checkpoint_model_metadata(inner, architecture, {"input_size": (data.in_chans, *data.size),
                                                                  "mean": data.mean, "std": data.std})
        metadata["num_classes"] = model_num_classes(model)
        save_checkpoint(inner, Path(run.output_dir) / "model.safetensors", metadata)
    else:
        trainer.save_model(run.output_dir)
    (Path(run.output_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.info("done: %s", metrics)
    return metrics


if __name__ == "__main__":
    status = run_main(main)  # a mistake: one line on stderr and status 1 (--debug: the traceback)
    if status:  # success returns normally, so that runpy (tests/test_docs.py) goes on
        sys.exit(status)
