"""The pieces of a training run built from names, shared by ``scripts/train.py`` and ``scripts/train_trainer.py``:
the image dataset, the training transform (reinforced replay or plain augmentation) and the student.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import torch

from hf_dr.augment.defaults import PLAIN_POLICY
from hf_dr.augment.functional import IMAGENET_MEAN, IMAGENET_STD
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.transforms import AugmentTransform, EvalTransform
from hf_dr.errors import InvalidConfigError

logger = logging.getLogger(__name__)


def load_image_dataset(name: str, split: str, data_root: str | None = None) -> datasets.Dataset:
    """:func:`hf_dr.data.sources.load_source` of ``split``: a bundled dataset (``"fashion-mnist"`` from ``data_root``
    or Debian's files, ``"digits"``, ``"shapes"``: :mod:`hf_dr.data.bundled`), a Hub id, a local folder
    (imagefolder, Parquet, ``save_to_disk``) or a Parquet file."""
    from hf_dr.data.sources import load_source

    return load_source(name, split=split, data_root=data_root)


def class_count(dataset: datasets.Dataset, label_column: str = "label") -> int | None:
    """:func:`hf_dr.data.columns.class_count` of ``label_column`` (``"label"`` by default, the scripts' column)."""
    from hf_dr.data.columns import class_count as source_class_count

    return source_class_count(dataset, label_column)


@dataclass
class DataConfig:
    """Input resolution and normalisation of a student: ``size`` (height, width), ``mean``, ``std``."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int

    @property
    def image_mode(self) -> str:
        """The image mode the student reads: "L" for one input channel, else "RGB" (plain and evaluation data)."""
        return "L" if self.in_chans == 1 else "RGB"

    @classmethod
    def resolve(cls, model: torch.nn.Module, size: int | None = None, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None) -> DataConfig:
        """The model's timm data config, with any of ``size``/``mean``/``std`` overridden; ``in_chans`` is the
        model's own (its first convolution, :func:`hf_dr.models.students.model_in_chans`), else the config's."""
        import timm

        from hf_dr.models.students import model_in_chans

        inner = getattr(model, "timm_model", model)
        config = timm.data.resolve_model_data_config(inner) if hasattr(inner, "pretrained_cfg") else {}
        channels, height, width = config.get("input_size", (3, 224, 224))
        return cls(size=(size, size) if size else (int(height), int(width)),
                   mean=tuple(mean or config.get("mean", IMAGENET_MEAN)),
                   std=tuple(std or config.get("std", IMAGENET_STD)), in_chans=model_in_chans(inner) or int(channels))


def training_data(
    dataset: datasets.Dataset,
    data: DataConfig,
    run_dir: str | None = None,
    policy: str | dict[str, Any] = PLAIN_POLICY,
    seed: int = 0,
    preload: bool = False,
    key_column: str = "key",
    verify_images: str = "sample",
    image_column: str = "image",
    label_column: str = "label",
    curriculum: Any = None,
) -> tuple[Any, Any]:
    """The training dataset and its transform: replay of the reinforcement run in the folder ``run_dir``, or
    on-the-fly augmentation with ``policy`` and hard labels. ``preload`` decodes the images once
    (:class:`hf_dr.data.preloaded.PreloadedDataset`); otherwise the transform is set on ``dataset`` (in place).

    A run's rows are joined by key, recomputed as the run made them (its ``columns["key_source"]``; computed keys go
    to column ``key_column``), and the image digests it stored are compared with ``dataset``'s images of the same
    keys: ``verify_images`` ``"sample"`` (64 rows drawn at random up front, and every row the first time a process
    replays it), ``"full"`` (every row up front) or ``"off"`` (see :func:`hf_dr.load_reinforced`).
    ``image_column`` and ``label_column`` name a plain run's columns (a reinforced run reads those it recorded).
    ``curriculum`` (a :class:`hf_dr.data.curriculum.Curriculum`) orders each sample's replayed records by the
    teacher's confidence (paper App. C.4); refused without ``run_dir``."""
    if curriculum is not None and not run_dir:
        raise InvalidConfigError("a curriculum orders stored reinforcements: pass the reinforced run's folder too "
                                 "(--run-dir)")
    if run_dir:
        from hf_dr.generate.loading import open_run_records
        from hf_dr.generate.opening import recorded_source, reinforced_images
        from hf_dr.generate.run_config import ReinforceConfig
        from hf_dr.models.students import check_input_channels

        run = ReinforceConfig.load(run_dir)
        if run is None:
            raise InvalidConfigError(f"{run_dir} holds no reinforcement run (no reinforce_config.json)")
        check_input_channels(data.in_chans, run.image_mode, f"the run {run_dir}")  # the student reads them
        rows, records = open_run_records(run_dir)  # records decoded by row group when first needed
        fix = (f"Load the dataset that was reinforced ({run.dataset.get('id')!r}, split {run.dataset.get('split')!r}, "
               f"revision {run.dataset.get('revision')!r}); verify_images='full' checks every row up front, 'off' "
               "accepts changed images.")
        dataset, transform = reinforced_images(
            dataset, rows, recorded_source(run), run.columns.key or key_column, records=records,
            verify_source=False, verify_images=verify_images, missing="warn", where="the training dataset", fix=fix,
            **run.replay_options(rows), size=data.size, mean=data.mean, std=data.std, seed=seed,
            curriculum=curriculum)
    else:
        transform = AugmentTransform(policy, size=data.size, mean=data.mean, std=data.std, seed=seed,
                                     image_column=image_column, label_column=label_column, key_column=key_column,
                                     image_mode=data.image_mode)
    if preload:
        return PreloadedDataset(dataset, transform), transform
    return transform.attach(dataset.with_format(None)), transform


def eval_data(dataset: datasets.Dataset, data: DataConfig, preload: bool = False, image_column: str = "image",
              label_column: str = "label") -> Any:
    """``dataset`` prepared for :func:`hf_dr.evaluate` (resize, normalise, integer labels)."""
    transform = EvalTransform(size=data.size, mean=data.mean, std=data.std, image_column=image_column,
                              label_column=label_column, image_mode=data.image_mode)
    return PreloadedDataset(dataset, transform) if preload else transform.attach(dataset.with_format(None))


def student(architecture: str, num_classes: int, in_chans: int | None = None, init_from: str | None = None,
            image_mode: str | None = None, source: str = "the data", **kwargs: Any) -> torch.nn.Module:
    """A timm student with a ``num_classes`` head; ``init_from`` loads a checkpoint first (pretrain on X+, fine-tune
    on Y+): tensors of another shape, such as a head for another class count, keep their fresh initialisation.

    ``image_mode`` is the mode of the images it will read (a reinforcement run's recorded mode, see
    :func:`recorded_image_mode`): without ``in_chans`` the student gets its channels ("L": 1, "RGB": 3), and a student
    whose channels contradict it is refused before any training (:func:`hf_dr.models.students.check_input_channels`;
    ``source`` names the data in the message).

    Example:
        >>> from hf_dr.models.students import model_in_chans
        >>> model_in_chans(student("hf_dr_cnn_tiny", 10, image_mode="RGB"))
        3
        >>> student("hf_dr_cnn_tiny", 10, in_chans=3, image_mode="L", source="run runs/r")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: the student reads 3 input channels but run runs/r holds images of mode 'L' ...
    """
    from hf_dr.augment.functional import MODE_CHANNELS
    from hf_dr.models.students import check_input_channels, create_model

    in_chans = in_chans or MODE_CHANNELS.get(image_mode or "")
    model = create_model(architecture, num_classes, **({"in_chans": in_chans} if in_chans else {}), **kwargs)
    check_input_channels(model, image_mode, source)
    if init_from:
        initialise_from(model, init_from)
    return model


def initialise_from(model: torch.nn.Module, checkpoint: str) -> list[str]:
    """Loads the safetensors ``checkpoint`` (``--init-from``) into ``model``, tensors of another shape (a head of
    another class count) kept fresh; returns their names. A file that is not a safetensors checkpoint is refused
    naming it."""
    from safetensors import SafetensorError

    from hf_dr.models.checkpoints import load_checkpoint

    try:
        skipped = load_checkpoint(model, checkpoint, ignore_mismatched_sizes=True)
    except SafetensorError as err:
        raise InvalidConfigError(f"--init-from {checkpoint!r} is not a safetensors checkpoint ({err}); pass a "
                                 "model.safetensors that scripts/train.py or hf-dr finetune-teacher wrote") from err
    logger.info("initialised from %s (%d tensors kept fresh: %s)", checkpoint, len(skipped), skipped[:4])
    return skipped


def recorded_image_mode(run_dir: str | None) -> str | None:
    """The image mode (``"L"`` or ``"RGB"``) the reinforcement run in the folder ``run_dir`` recorded: the
    mode its teacher saw and its replay gives; None without a folder or for a run that predates the record."""
    if not run_dir:
        return None
    from hf_dr.generate.run_config import ReinforceConfig

    run = ReinforceConfig.load(run_dir)
    return run.image_mode if run is not None else None
