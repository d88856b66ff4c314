"""show: a grid PNG with one panel per reinforcement, whose pixels are the replayed views, captioned in full."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hf_dr import ReinforcedTransform, create_policy
from hf_dr.data.view_grid import describe_params, render_grid, save_grid, wrap_caption
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
    band, column = grid.height // 2 - 48, grid.width // 3
    assert back.shape == (2 * (48 + band), 3 * column, 3) and column >= 48  # 6 panels (original + 5), 3 x 2
    for panel, index in enumerate([0, 1, 2, 3, 4], start=1):
        x, y = (panel % 3) * column, (panel // 3) * (48 + band)
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


def test_captions_are_drawn_whole_on_small_panels(transform, monkeypatch):
    """Before: every caption line was cut to max(8, width // 6) characters ("RA AutoContr", "Translat")."""
    transform, images = transform
    drawn: list[str] = []
    text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, line, *a, **k: (drawn.append(line),
                                                                                      text(self, xy, line, *a, **k)))
    row = images[2]
    render_grid(transform, row["image"], row["key"], [0, 1, 2, 3, 4], class_names=[str(i) for i in range(10)])
    words = set(" ".join(drawn).split())
    for index in range(5):
        record = transform.record(row["key"], index)
        for line in describe_params(transform.policy, record["params"]):
            assert set(line.split()) <= words, (line, drawn)
    assert any(name in words for name in ("RA", "crop")) and row["key"] in words


def test_wrap_caption_breaks_at_spaces_and_keeps_long_words():
    font = ImageFont.load_default()
    assert wrap_caption(["RA AutoContrast(+3) TranslateX(-5)"], font, 1000) == ["RA AutoContrast(+3) TranslateX(-5)"]
    lines = wrap_caption(["RA AutoContrast(+3) TranslateX(-5)"], font, 10)
    assert lines == ["RA", "AutoContrast(+3)", "TranslateX(-5)"]
