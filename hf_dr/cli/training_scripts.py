"""The declared flags of ``scripts/train.py`` and ``scripts/train_trainer.py`` (a helper module, not a subcommand).

Each script parses dataclasses with :class:`ScriptArgumentParser`, a ``transformers.HfArgumentParser`` that speaks
the vocabulary of ``hf-dr`` (:data:`hf_dr.cli.FLAGS`): one dashed flag per field (``--output-dir``; the underscore
spelling and the old ones, declared as ``aliases``, parse but stay out of ``--help``), each field's help taken from
its class docstring (HF style), defaults shown, counts, sizes, seeds and std checked as they are parsed
(:func:`hf_dr.cli._boundary.check_numbers`), and hf_dr's configuration errors reported as usage errors: one line at the
error boundary (:func:`hf_dr.cli._boundary.run_main`, which every script's ``__main__`` runs in).

Example:
    >>> data, model, run = ScriptArgumentParser((DataArguments, ModelArguments, RunArguments)).parse(
    ...     ["--dataset", "d", "--model", "resnet18", "--size", "32", "--output_dir", "out"])
    >>> model.arch, model.image_size, run.output_dir
    ('resnet18', 32, 'out')
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser

from hf_dr.augment.defaults import PLAIN_POLICY
from hf_dr.cli._boundary import DEBUG_EPILOG, check_numbers, usage_error
from hf_dr.cli._options import HelpFormatter
from hf_dr.errors import HfDrError

logger = logging.getLogger("hf_dr.scripts")
_ENTRY = re.compile(r"^ {4}(\w+) \(.*?\): (.*)$")


def docstring_help(cls: type) -> dict[str, str]:
    """The ``Args:`` entries of the HF-style docstrings of ``cls`` and its bases, by name, as plain text (the type
    and the default left out; a subclass's entry wins).

    Example:
        >>> docstring_help(RunArguments)["output_dir"]
        'the folder to write the checkpoint and the metrics to'
    """
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        name = None
        for line in inspect.cleandoc(klass.__doc__ or "").splitlines() if "__doc__" in vars(klass) else []:
            match = _ENTRY.match(line)
            if match:
                name = match.group(1)
                helps[name] = match.group(2)
            elif name and line.startswith(" " * 8):
                helps[name] += " " + line.strip()
            else:
                name = None
    return {name: text.replace("``", "").rstrip(".") for name, text in helps.items()}


class ScriptArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` over ``dataclass_types`` with hf-dr's vocabulary and :class:`HelpFormatter`."""

    def __init__(self, dataclass_types: Iterable[type], **kwargs: Any) -> None:
        dataclass_types = list(dataclass_types)
        super().__init__(dataclass_types, formatter_class=HelpFormatter, **{"epilog": DEBUG_EPILOG, **kwargs})
        helps = {name: text for dtype in dataclass_types for name, text in docstring_help(dtype).items()}
        for action in self._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            action.help = action.help or helps.get(action.dest)
            if action.const is True:  # HF's bool: --flag alone is true; --flag false also parses
                action.metavar = "BOOL"
            canonical = "--" + action.dest.replace("_", "-")
            keep = [canonical] if canonical in action.option_strings else [
                s for s in action.option_strings if "_" not in s]
            action.hidden_aliases = tuple(s for s in action.option_strings if s not in keep)
            action.option_strings[:] = keep  # the parser still maps every spelling to the action
        check_numbers(self)

    def error(self, message: str) -> None:  # type: ignore[override]
        """A usage error: :class:`~hf_dr.errors.InvalidConfigError` (one line at the boundary), not exit status 2."""
        raise usage_error(self.prog, message)

    def parse(self, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
        """One instance per dataclass; unknown flags and invalid values (hf_dr errors) raise usage errors."""
        try:
            *outputs, remaining = self.parse_args_into_dataclasses(
                args=argv, return_remaining_strings=True, look_for_args_file=False)
        except HfDrError as err:
            if getattr(err, "usage", False):
                raise
            self.error(str(err))
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        return tuple(outputs)

    def given(self, argv: Sequence[str] | None, dtype: type) -> set[str]:
        """The fields of the dataclass ``dtype`` that the command line ``argv`` sets (any spelling), not defaults."""
        names = {f.name for f in dataclasses.fields(dtype)}
        actions = [action for action in self._actions if action.dest in names]
        defaults = [action.default for action in actions]
        try:
            for action in actions:
                action.default = argparse.SUPPRESS  # an absent flag then leaves no attribute
            namespace, _ = self.parse_known_args(argv)
        finally:
            for action, default in zip(actions, defaults, strict=True):
                action.default = default
        return names & set(vars(namespace))


@dataclass
class DataArguments:
    """The data a script trains on.

    Args:
        dataset (`str`): ``'fashion-mnist'`` (Debian's files), a Hub id, a local folder or a Parquet file. A
            reinforced dataset (pushed by ``hf-dr push``, or saved self-contained) trains reinforced: its stored views
            and soft labels are replayed.
        split (`str`, *optional*, defaults to ``"train"``): the training split.
        eval_split (`str`, *optional*): evaluate top-1, NLL and ECE on this split at the end (default: none).
        eval_dataset (`str`, *optional*): the dataset of --eval-split (default: --dataset; for a reinforced
            --dataset, the source dataset it records).
        run_dir (`str`, *optional*): the folder an ``hf-dr reinforce`` run wrote, the soft labels to replay
            (default: none, plain training with --policy unless --dataset is reinforced).
        plain (`bool`, *optional*, defaults to `False`): train plainly (on-the-fly --policy, cross-entropy on the
            hard labels) on the images of a reinforced --dataset, ignoring its soft labels: the baseline.
        data_root (`str`, *optional*): the Fashion-MNIST idx folder (default: $HF_DR_FASHION_MNIST, else Debian's).
        preload (`bool`, *optional*, defaults to `False`): decode the images once (small datasets).
        image_column (`str`, *optional*, defaults to ``"image"``): the image column (a reinforced run reads its own).
        label_column (`str`, *optional*, defaults to ``"label"``): the integer label column (plain training, eval and
            the class count).
        key_column (`str`, *optional*, defaults to ``"key"``): the column keys are read from or computed into.
    """

    dataset: str
    split: str = "train"
    eval_split: str | None = None
    eval_dataset: str | None = None
    run_dir: str | None = field(default=None, metadata={"aliases": ["--reinforcements"], "metavar": "DIR"})
    plain: bool = False
    data_root: str | None = field(default=None, metadata={"metavar": "DIR"})
    preload: bool = False
    image_column: str = "image"
    label_column: str = "label"
    key_column: str = "key"


@dataclass
class TrainerDataArguments(DataArguments):
    """The data of ``scripts/train_trainer.py``, which trains on reinforced data only: a reinforced --dataset, or
    the images of --dataset with the soft labels of --run-dir."""


@dataclass
class ModelArguments:
    """The student.

    Args:
        arch (`str`): timm architecture.
        num_classes (`int`, *optional*): the head's classes (default: the label column's class count).
        in_chans (`int`, *optional*): input channels (default: the model's).
        init_from (`str`, *optional*): an hf_dr checkpoint to start from, for fine-tuning; a head of another class
            count is re-initialised (default: none).
        image_size (`int`, *optional*): input resolution in pixels (default: the model's).
        mean (`list[float]`, *optional*): normalisation mean (default: the model's).
        std (`list[float]`, *optional*): normalisation std (default: the model's).
    """

    arch: str = field(metadata={"aliases": ["--model"]})
    num_classes: int | None = None
    in_chans: int | None = None
    init_from: str | None = field(default=None, metadata={"metavar": "CHECKPOINT"})
    image_size: int | None = field(default=None, metadata={"aliases": ["--size"]})
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class TrainerModelArguments(ModelArguments):
    """The student of ``scripts/train_trainer.py``.

    Args:
        arch (`str`): timm architecture, or a transformers image-classification checkpoint folder (with
            ``config.json``).
        timm_wrapper (`bool`, *optional*, defaults to `False`): build the timm model as transformers'
            ``TimmWrapperForImageClassification``.
    """

    timm_wrapper: bool = False


@dataclass
class RunArguments:
    """Where a script writes, and how it runs.

    Args:
        output_dir (`str`): the folder to write the checkpoint and the metrics to.
        num_threads (`int`, *optional*): torch.set_num_threads (default: torch's choice, one per core); 1 is often
            fastest on shared or busy cores.
        no_progress (`bool`, *optional*, defaults to `False`): no progress bars.
    """

    output_dir: str = field(metadata={"metavar": "DIR"})
    num_threads: int | None = field(default=None, metadata={"aliases": ["--threads"], "metavar": "N"})
    no_progress: bool = False


@dataclass
class RecipeArguments:
    """A named training recipe (the paper's; docs/training.md, Recipes).

    Args:
        recipe (`str`, *optional*): the optimizer, lr, total batch, warmup, weight decay and epochs of one of the
            paper's students (``hf_dr.train.recipes.RECIPES``); the training flags given override it, and without
            --lr its lr follows the run's total batch (linear for SGD, square root for AdamW) (default: none).
    """

    recipe: str | None = field(default=None, metadata={"metavar": "NAME"})


def recipe_config(parser: ScriptArgumentParser, argv: Sequence[str] | None, recipe: RecipeArguments,
                  config: Any) -> Any:
    """The script's :class:`~hf_dr.TrainConfig`: ``config`` as parsed without ``--recipe``; with it, the recipe's
    values under the training flags ``argv`` gives explicitly, split over the launched processes (``WORLD_SIZE``)."""
    from hf_dr.train.loop import TrainConfig
    from hf_dr.train.recipes import RECIPES, get_recipe

    if not recipe.recipe:
        return config
    given = parser.given(argv, TrainConfig)
    config = get_recipe(recipe.recipe, num_processes=int(os.environ.get("WORLD_SIZE", "1")),
                        **{name: getattr(config, name) for name in given})
    chosen = RECIPES[recipe.recipe]
    taken = {k: getattr(config, k) for k in (*chosen.settings, "batch_size", "warmup_fraction") if k not in given}
    logger.info("recipe %s (%s, for %s%s): %s", recipe.recipe, chosen.source, chosen.student,
                f"; {chosen.notes}" if chosen.notes else "", taken)
    return config


@dataclass
class AugmentArguments:
    """On-the-fly augmentation, for a plain run (no ``--run-dir``), and the replay's curriculum for a reinforced one.

    Args:
        policy (`str`, *optional*, defaults to ``"rrc"``): the augmentation policy (``hf_dr.list_policies()``) or a
            JSON policy file (e.g. the reinforced run's, for a fair baseline).
        curriculum (`str`, *optional*): with ``--run-dir``, replay each sample's stored views by the teacher's
            confidence, ``FROM->TO`` with each ``easy``, ``all`` or ``hard`` (e.g. ``easy->all``; paper App. C.4;
            default: none, uniform).
    """

    policy: str = PLAIN_POLICY
    curriculum: str | None = None


@dataclass
class TrainingInputs:
    """What a training script trains: the student, its data config, the training dataset with its transform, the
    evaluation dataset (or None) and the class count. ``reinforced`` names where the soft labels come from (a run
    folder or a reinforced dataset), None for plain training. Made by :func:`prepare_training`."""

    model: Any
    data: Any
    train: Any
    transform: Any
    evaluation: Any
    num_classes: int
    reinforced: str | None


def prepare_training(data_args: DataArguments, model_args: ModelArguments, build_model: Any, seed: int = 0,
                     policy: str | None = None, curriculum: Any = None) -> TrainingInputs:
    """The inputs of ``scripts/train.py`` and ``scripts/train_trainer.py`` from their flags.

    A reinforced ``--dataset`` (a Hub repo pushed by hf-dr, or rows carrying a run description) trains reinforced, its
    class count and channels taken from what the run recorded; ``--plain`` trains on its images with ``policy`` and
    hard labels instead, and says so in the log. ``policy=None`` (the Trainer script) refuses plain training.
    ``build_model(num_classes, in_chans, image_mode, source)`` makes the student: its channels default to the image
    mode the reinforced data recorded (a reinforced --dataset or --run-dir; ``source`` names it), and a student
    that contradicts it is refused (:func:`hf_dr.models.students.check_input_channels`). ``--num-classes`` is checked
    against the soft labels or the label column before training.
    """
    from hf_dr.hub.named import find_reinforced, reinforced_training_data
    from hf_dr.models.students import check_model_num_classes
    from hf_dr.train.inputs import DataConfig, class_count, eval_data, recorded_image_mode, training_data

    train, named = find_reinforced(data_args.dataset, data_args.split, data_args.data_root)
    _refuse_contradictions(data_args, named, policy)
    plain = named is None and not data_args.run_dir
    key_column = data_args.key_column
    if data_args.plain:
        logger.warning("PLAIN training on the images of the reinforced dataset %s (--plain): on-the-fly %r and "
                       "cross-entropy on the hard labels; its stored views and soft labels are NOT used.",
                       data_args.dataset, policy)
        train, key_column = _plain_rows(named, key_column)
    elif plain:
        logger.info("plain training on %s: on-the-fly %r augmentation, cross-entropy on the hard labels (no "
                    "--run-dir, and the dataset is not reinforced)", data_args.dataset, policy)
    reinforce = named is not None and not data_args.plain
    recorded_columns = named.description.columns if named is not None else None  # the data describes itself
    image_column = recorded_columns.image if recorded_columns else data_args.image_column
    label_column = (recorded_columns and recorded_columns.label) or data_args.label_column
    recorded = named.description.num_classes if named is not None else None
    num_classes = model_args.num_classes or recorded or class_count(train, label_column)
    in_chans = model_args.in_chans or (named.in_chans if named is not None else None)
    image_mode, data_source = None, None  # plain training converts the images to the student's channels
    if reinforce:
        image_mode, data_source = named.description.image_mode, f"the reinforced dataset {data_args.dataset}"
    elif data_args.run_dir:
        image_mode, data_source = recorded_image_mode(data_args.run_dir), f"the run {data_args.run_dir}"
    model = build_model(num_classes, in_chans, image_mode, data_source or "the data")
    data = DataConfig.resolve(model, model_args.image_size, model_args.mean, model_args.std)
    data.in_chans = in_chans or data.in_chans
    if reinforce:
        train_ds, transform = reinforced_training_data(named, data.size, data.mean, data.std, seed,
                                                        data_args.preload, curriculum=curriculum)
    else:
        train_ds, transform = training_data(
            train, data, data_args.run_dir, policy or PLAIN_POLICY, seed, data_args.preload, key_column=key_column,
            image_column=image_column, label_column=label_column, curriculum=curriculum)
    data_classes = getattr(transform, "num_classes", None) or (
        class_count(train, label_column) if train is not None else None)
    if data_classes:  # --num-classes against the soft labels, or the label column's classes
        check_model_num_classes(model, data_classes)
    evaluation = None
    if data_args.eval_split:
        evaluation = eval_data(_evaluation_rows(data_args, named), data, data_args.preload, image_column,
                               label_column)
    source = data_args.dataset if reinforce else data_args.run_dir
    return TrainingInputs(model, data, train_ds, transform, evaluation, num_classes, source)


def _refuse_contradictions(data_args: DataArguments, named: Any, policy: str | None) -> None:
    """Soft labels from two places, ``--plain`` without a reinforced dataset, or no soft labels for the Trainer
    script (``policy=None``): one line naming the flags and the fix."""
    from hf_dr.errors import InvalidConfigError

    if named is not None and data_args.run_dir:
        raise InvalidConfigError(f"--dataset {data_args.dataset!r} is a reinforced dataset, which carries its soft "
                                 f"labels; --run-dir {data_args.run_dir!r} names others. Pass one of the two.")
    if data_args.plain and (named is None or policy is None):
        raise InvalidConfigError(
            "--plain trains plainly on the images of a reinforced --dataset, and "
            + (f"{data_args.dataset!r} is not one: leave --plain out (without --run-dir training is plain)"
               if policy is not None else "this script trains on soft labels only: use scripts/train.py --plain"))
    if policy is None and named is None and not data_args.run_dir:
        raise InvalidConfigError(f"--dataset {data_args.dataset!r} carries no soft labels: pass a reinforced dataset "
                                 "(a Hub id pushed by hf-dr push) or the images with --run-dir (an hf-dr reinforce "
                                 "folder); plain training is scripts/train.py.")


def _plain_rows(named: Any, key_column: str) -> tuple[Any, str]:
    """The images of a reinforced dataset, keyed as the run keyed them (the plain augmentation draws per key), and
    the key column."""
    from hf_dr.data.source_keys import keyed
    from hf_dr.hub.named import plain_images

    columns = named.description.columns
    key_column = columns.key or key_column  # computed keys go to key_column
    rows, _ = keyed(plain_images(named), columns.image, columns.key, columns.key_source, key_column)
    return rows, key_column


def _evaluation_rows(data_args: DataArguments, named: Any) -> Any:
    """The rows of ``--eval-split``: of ``--eval-dataset``, else of the source a reinforced ``--dataset`` records,
    else of ``--dataset``."""
    from hf_dr.hub.named import plain_images
    from hf_dr.train.inputs import load_image_dataset

    if data_args.eval_dataset is None and named is not None:
        logger.info("evaluating on split %r of %s, the dataset %s was made from", data_args.eval_split,
                    named.source()[0], data_args.dataset)
        return plain_images(named, data_args.eval_split)
    return load_image_dataset(data_args.eval_dataset or data_args.dataset, data_args.eval_split, data_args.data_root)
