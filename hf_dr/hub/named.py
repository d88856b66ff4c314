"""A reinforced dataset named where a dataset is expected (``--dataset``, ``create_reinforced_loader(name)``): found
by name, trained on as what it is, never plainly unnoticed.

Entry points ask :func:`find_reinforced` first: a Hub repo pushed by :func:`hf_dr.push_to_hub` (either layout) or
loaded rows that carry their run description (a self-contained reinforced dataset saved to disk or to Parquet) train
reinforced through :func:`reinforced_training_data`; :func:`plain_images` gives their images for a plain baseline or an
evaluation split (a metadata-only repo's images are its recorded source's).

Example:
    >>> rows, named = find_reinforced("digits", split="train")  # a bundled dataset: plain, no Hub asked
    >>> named is None, len(rows) > 1000
    (True, True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from hf_dr.augment.functional import MODE_CHANNELS
from hf_dr.data.description import RunDescription, read_description
from hf_dr.data.epochs import transform_of
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.sources import load_source
from hf_dr.errors import InvalidConfigError
from hf_dr.hub.load import load_reinforced, reinforced_repo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedReinforced:
    """A reinforced dataset named where a dataset is expected (``--dataset``): a Hub repo pushed by
    :func:`hf_dr.push_to_hub` (either layout), or loaded rows that carry their run description (a self-contained
    reinforced dataset saved to disk or to Parquet). Made by :func:`find_reinforced`.

    Args:
        name (`str`): the Hub id or local path, as given.
        split (`str`): the split to train on.
        description (`RunDescription`): what the run recorded (classes, image mode, source, policy).
        rows (`datasets.Dataset`, *optional*): the loaded self-contained rows; None for a Hub repo, which
            :func:`hf_dr.load_reinforced` loads (joining a metadata-only repo with its recorded source).
    """

    name: str
    split: str
    description: RunDescription
    rows: datasets.Dataset | None = None

    @property
    def in_chans(self) -> int | None:
        """Input channels of the images the teacher saw (1 for mode ``L``), None where the run recorded no mode."""
        return MODE_CHANNELS.get(self.description.image_mode or "")

    def source(self) -> tuple[str, str | None]:
        """The id (or bundled name) and revision of the dataset that was reinforced: where its evaluation splits and
        its plain images are; :class:`InvalidConfigError` when the run recorded none that others can load."""
        recorded = self.description.source or {}
        ident = recorded.get("id")
        if not ident:
            raise InvalidConfigError(
                f"the reinforced dataset {self.name!r} records no source dataset (it was made from a local folder): "
                "name the dataset to evaluate on or to train plainly on with --eval-dataset / --dataset.")
        return ident, recorded.get("revision")


def find_reinforced(name: str, split: str = "train", data_root: str | None = None
                    ) -> tuple[datasets.Dataset | None, NamedReinforced | None]:
    """What ``name`` holds: ``(rows, None)`` for a plain image dataset, ``(None, reinforced)`` for a reinforced Hub
    repo and ``(rows, reinforced)`` for loaded rows that carry a run description (see :class:`NamedReinforced`)."""
    found = reinforced_repo(name, split)
    if found is not None:
        meta, config = found
        description = RunDescription.from_run(config)
        return None, NamedReinforced(name, split, description)
    rows = load_source(name, split=split, data_root=data_root)
    description = read_description(rows)
    return rows, (None if description is None else NamedReinforced(name, split, description, rows))


def plain_images(reinforced: NamedReinforced, split: str | None = None) -> datasets.Dataset:
    """The images of a reinforced dataset for plain training or evaluation: its own rows (self-contained, the
    training split) or the recorded source's ``split``."""
    if reinforced.rows is not None and split in (None, reinforced.split):
        return reinforced.rows
    ident, revision = reinforced.source()
    return load_source(ident, split=split or reinforced.split, revision=revision)


def reinforced_training_data(reinforced: NamedReinforced, size: int | Sequence[int], mean: Sequence[float],
                             std: Sequence[float], seed: int = 0, preload: bool = False, verify_images: str = "sample",
                             curriculum: Any = None) -> tuple[Any, Any]:
    """The training dataset and its :class:`ReinforcedTransform` of a reinforced dataset found by name: a Hub repo
    through :func:`hf_dr.load_reinforced` (either layout; a metadata-only repo joins its recorded source), loaded
    self-contained rows through their own description. ``preload`` decodes the images once
    (:class:`~hf_dr.data.preloaded.PreloadedDataset`); otherwise the transform is set on the dataset."""
    options = {"size": size, "mean": mean, "std": std, "seed": seed, "curriculum": curriculum}
    if reinforced.rows is None:
        dataset = load_reinforced(reinforced.name, split=reinforced.split, verify_images=verify_images, **options)
        transform = transform_of(dataset)
    else:
        dataset = reinforced.rows
        transform = ReinforcedTransform(dataset, **options)
    logger.info("training reinforced on %s (split %s): N=%d stored views per image, top-%d soft labels of %d classes",
                reinforced.name, reinforced.split, reinforced.description.num_samples, reinforced.description.topk,
                reinforced.description.num_classes)
    if preload:
        return PreloadedDataset(dataset, transform), transform
    return transform.attach(dataset.with_format(None)), transform
