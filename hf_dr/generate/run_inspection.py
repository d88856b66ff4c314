"""A finished reinforcement run opened for inspection (``hf-dr verify``, ``hf-dr show``): its whole table, its source
images and its recorded config (:func:`load_target`), and the figure of one sample's stored views
(:func:`sample_grid`). To train on a run, open it with :func:`hf_dr.hub.opening.open_reinforced`, which finds its
source images the same way (:func:`hf_dr.generate.opening.run_source`)."""

from __future__ import annotations

import os

import datasets
from PIL import Image

from hf_dr.data.keys import KeyIndex
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.source_keys import keyed
from hf_dr.data.view_grid import render_grid
from hf_dr.errors import IncompleteRunError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.opening import run_source
from hf_dr.generate.run_config import ReinforceConfig


def load_target(
    target: str, source: str | None = None, split: str | None = None, revision: str | None = None
) -> tuple[datasets.Dataset, datasets.Dataset, ReinforceConfig]:
    """Loads a reinforce output folder: (reinforcements, source images, config).

    The source defaults to the one recorded in ``reinforce_config.json`` (Hub id, revision, split, or local path).
    """
    if not os.path.isdir(target):
        raise IncompleteRunError(f"{target!r} is not a reinforce output folder; pass the folder given to "
                                 "`hf-dr reinforce --output-dir`")
    config = ReinforceConfig.load(target)
    if config is None:
        raise IncompleteRunError(f"{target!r} has no reinforce_config.json: not a finished hf-dr run")
    images = run_source(config, source, split, revision)
    return load_run_records(target), images, config


def sample_grid(
    reinforcements: datasets.Dataset,
    images: datasets.Dataset,
    config: ReinforceConfig,
    key: str | None = None,
    index: int = 0,
    count: int = 7,
    size: int = 160,
    columns: int = 4,
) -> Image.Image:
    """The :func:`hf_dr.data.view_grid.render_grid` figure of one sample (by key, or by row of the records)."""
    recorded = config.columns
    image_column, key_name = recorded.image, recorded.key_name
    key = key if key is not None else reinforcements[index][key_name]
    images, keys = keyed(images, image_column, recorded.key, recorded.key_source, key_name)
    fix = "pass a key the run reinforced (--key) and the source it reinforced (--dataset)."
    row = KeyIndex(keys, where="the source images", fix=fix).row(key)
    label = recorded.label
    names = images.features[label].names if label and isinstance(images.features.get(label), datasets.ClassLabel) \
        else None
    transform = ReinforcedTransform(reinforcements, **config.replay_options(reinforcements), size=size, images=images,
                                    image_column=image_column, key_column=key_name, label_column=None)
    return render_grid(transform, images[row][image_column], key, range(min(count, config.num_samples)),
                       names, columns)
