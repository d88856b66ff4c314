"""Train a timm student on reinforced data (or plainly, for the baseline) with plain PyTorch + Accelerate.

The paper's recipe shape: SGD (Nesterov) or AdamW, linear warmup, cosine decay; keep the same hyperparameters for
the plain and the reinforced run. ``--init-from`` starts from a checkpoint, so "pretrain on X+, fine-tune on Y+" is
two commands (a head of another class count is re-initialised):

    python scripts/train.py --dataset fashion-mnist --run-dir runs/demo/reinforced \\
        --arch hf_dr_cnn_small --epochs 30 --temperature 2 --output-dir runs/student
    python scripts/train.py --dataset fashion-mnist --policy rrc --arch hf_dr_cnn_small --epochs 30 \\
        --output-dir runs/plain                                          # the baseline, same hyperparameters
    python scripts/train.py --dataset org/cifar100-plus --arch resnet18 --epochs 30 \\
        --eval-split test --output-dir runs/hub   # a pushed reinforced dataset trains reinforced (--plain: baseline)
    python scripts/train.py --dataset ./other_set --run-dir other+ --init-from runs/student/model.safetensors \\
        --arch hf_dr_cnn_small --epochs 10 --lr 0.01 --output-dir runs/finetuned
    python scripts/train.py --dataset org/imagenet-plus --arch resnet50 --recipe resnet50-imagenet-plus \\
        --batch-size 256 --report-to tensorboard --output-dir runs/rn50  # the paper's recipe, lr for batch 256

Several processes: ``accelerate launch scripts/train.py ...``. Writes ``model.safetensors`` (architecture and
preprocessing in its header, for ``hf-dr eval``), ``train_config.json`` and ``result.json``. The flags are those of
``hf-dr`` (see ``--help``); the recipe flags are :class:`hf_dr.TrainConfig`'s fields, and ``--recipe NAME`` starts
them from one of the paper's recipes (:data:`hf_dr.train.recipes.RECIPES`; flags given override it). The student's
input channels default to the data's recorded image mode ("L": 1, "RGB": 3). A mistake is one line and exit status 1
(``--debug`` or ``HF_DR_DEBUG=1``: the traceback).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from hf_dr.cli._boundary import run_main
from hf_dr.cli._options import configure_logging, set_num_threads
from hf_dr.cli.training_scripts import (
    AugmentArguments,
    DataArguments,
    ModelArguments,
    RecipeArguments,
    RunArguments,
    ScriptArgumentParser,
    prepare_training,
    recipe_config,
)
from hf_dr.data.curriculum import Curriculum
from hf_dr.errors import InvalidConfigError
from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint
from hf_dr.train.inputs import student
from hf_dr.train.loop import TrainConfig, fit
from hf_dr.train.tracking import check_report_to

logger = logging.getLogger("hf_dr.scripts.train")
ARGUMENTS = (DataArguments, ModelArguments, AugmentArguments, TrainConfig, RecipeArguments, RunArguments)


def build_parser() -> ScriptArgumentParser:
    """The script's flags: the dataclasses of :data:`ARGUMENTS`, TrainConfig's fields being the recipe."""
    return ScriptArgumentParser(ARGUMENTS, prog=Path(__file__).name, description=__doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    data_args, model_args, augment, config, recipe, run = parser.parse(argv)
    configure_logging()
    config = recipe_config(parser, argv, recipe, config)
    check_report_to(config.report_to, run.output_dir)  # a missing tracker: refused before the data is read
    set_num_threads(run.num_threads)
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if augment.curriculum and config.max_steps:
        raise InvalidConfigError("--curriculum moves its window over the epochs: pass --epochs, not --max-steps")
    curriculum = Curriculum.named(augment.curriculum, config.epochs) if augment.curriculum else None

    def build_model(num_classes: int, in_chans: int | None, image_mode: str | None, source: str):
        return student(model_args.arch, num_classes, in_chans, model_args.init_from, image_mode=image_mode,
                       source=source)

    inputs = prepare_training(data_args, model_args, build_model, config.seed, augment.policy, curriculum)
    model, data = inputs.model, inputs.data
    arguments = {"data": asdict(data_args), "model": asdict(model_args), "augment": asdict(augment),
                 "recipe": recipe.recipe, "run": asdict(run), "train_config": config.to_dict()}
    (out / "train_config.json").write_text(json.dumps(arguments, indent=2))
    result = fit(model, inputs.train, config, eval_dataset=inputs.evaluation, num_classes=inputs.num_classes,
                 progress=not run.no_progress, output_dir=str(out))  # --save-every N: checkpoints, resumed
    metadata = checkpoint_model_metadata(model, model_args.arch, {"input_size": (data.in_chans, *data.size),
                                                                 "mean": data.mean, "std": data.std})
    save_checkpoint(model, out / "model.safetensors", metadata)
    if result.ema_model is not None:  # --ema-decay: the averaged weights too, for hf-dr eval / push-model
        save_checkpoint(result.ema_model, out / "model_ema.safetensors", metadata)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    logger.info("%d steps in %.0f s; metrics %s", result.steps, result.wall_time, result.metrics)
    return result.to_dict()


if __name__ == "__main__":
    status = run_main(main)  # a mistake: one line on stderr and status 1 (--debug: the traceback)
    if status:  # success returns normally, so that runpy (tests/test_docs.py) goes on
        sys.exit(status)
