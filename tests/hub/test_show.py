"""show: a grid PNG with one panel per reinforcement, whose pixels are the replayed views."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from PIL import Image

from hf_dr import ReinforcedTransform, create_policy
from hf_dr.hub.show import describe_params, render_grid, save_grid
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory


@pytest.fixture(scope="module")
def transform():
    images = digits_dataset(6)
    table = reinforce_in_memory(images, create_policy("rrc+mix+ra_re"), ProjectionTeacher(size=24), 5, 3, seed=2)
    full = datasets.concatenate_datasets([images, table.remove_columns("key")], axis=1)
    return ReinforcedTransform(full, policy="rrc+mix+ra_re", size=48), images


def test_grid_has_one_panel_per_reinforcement_showing_the_replayed_view(transform, tmp_path):
    transform, images = transform
    row = images[2]
    grid = render_grid(transform, row["image"], row["key"], [0, 1, 2, 3, 4], class_names=[str(i) for i in range(10)],
                       columns=3)
    path = save_grid(grid, tmp_path / "out" / "grid.png")
    back = np.asarray(Image.open(path))
    band = grid.height // 2 - 48
    assert back.shape == (2 * (48 + band), 3 * 48, 3)  # 6 panels (original + 5) in a 3 x 2 grid
    for panel, index in enumerate([0, 1, 2, 3, 4], start=1):
        x, y = (panel % 3) * 48, (panel // 3) * (48 + band)
        record = transform.record(row["key"], index)
        view = transform.policy.apply(row["image"], record["params"], 48, transform.partner_for(record))
        assert np.array_equal(back[y:y + 48, x:x + 48], view.permute(1, 2, 0).numpy())
    captions = back[48:48 + band, 48:96]
    assert (captions < 128).any()  # text was drawn under the panels


def test_describe_params_lists_every_op():
    policy = create_policy("rrc+ra_re", erasing={"prob": 1.0})
    params = policy.sample_params((64, 64), np.random.default_rng(1))
    lines = describe_params(policy, params)
    assert lines[0].startswith("crop ") and lines[1].startswith("RA ") and lines[2] == "erase"
