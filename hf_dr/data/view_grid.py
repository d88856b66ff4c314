"""Look at a reinforced sample: the original image and its replayed reinforcements in one captioned grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from hf_dr.augment.functional import to_pil
from hf_dr.augment.ops.mixing import MIXUP
from hf_dr.augment.ops.randaugment import OP_NAMES
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.files import write_atomic

LINE_HEIGHT = 12
KEY_CHARS = 24  # a key longer than this is shown abbreviated, with an ellipsis


def describe_params(policy: AugmentationPolicy, params: dict[str, Any]) -> list[str]:
    """Short human-readable lines for one record's augmentation.

    Example:
        >>> from hf_dr import create_policy
        >>> describe_params(create_policy("rrc"), {"crop": {"top": 0.1, "left": 0.2, "height": 0.5, "width": 0.4,
        ...                                                  "flip": True}})
        ['crop y0.10 x0.20 h0.50 w0.40 flip']
    """
    crop = params["crop"]
    lines = [f"crop y{crop['top']:.2f} x{crop['left']:.2f} h{crop['height']:.2f} w{crop['width']:.2f}"
             + (" flip" if crop["flip"] else "")]
    if "randaugment" in params:
        ra = params["randaugment"]
        ops = [OP_NAMES[o] + (f"({m:+d})" if m else "") for o, m in zip(ra["ops"], ra["magnitudes"], strict=True)]
        lines.append("RA " + " ".join(ops))
    if params.get("erasing", {}).get("erase"):
        lines.append("erase")
    mix = params.get("mixing")
    if mix and mix["mode"]:
        box = f"cutmix {mix['height']:.2f}x{mix['width']:.2f}"
        what = f"mixup lam{mix['lam']:.2f}" if mix["mode"] == MIXUP else box
        lines.append(f"{what} with {_abbreviated(mix['partner_key'], 12)}")
    return lines


def _abbreviated(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wrap_caption(lines: Sequence[str], font: Any, width: int) -> list[str]:
    """``lines`` wrapped at spaces to ``width`` pixels of ``font``; a word wider than that keeps a line of its own
    (the grid's columns are made as wide as the widest word, so nothing is cut).

    Example:
        >>> from PIL import ImageFont
        >>> wrap_caption(["RA AutoContrast(+3) TranslateX(-5)"], ImageFont.load_default(), 100)
        ['RA AutoContrast(+3)', 'TranslateX(-5)']
    """
    wrapped = []
    for line in lines:
        current = ""
        for word in line.split():
            candidate = f"{current} {word}" if current else word
            if current and font.getlength(candidate) > width:
                wrapped.append(current)
                candidate = word
            current = candidate
        wrapped.append(current)
    return wrapped


def _top_lines(record: dict[str, Any], class_names: Sequence[str] | None, count: int = 3) -> list[str]:
    pairs = list(zip(record["ids"], record["probs"], strict=True))[:count]
    return [f"{class_names[i] if class_names else i}: {p:.2f}" for i, p in pairs]


def render_grid(
    transform: ReinforcedTransform,
    image: Any,
    key: str,
    indices: Sequence[int],
    class_names: Sequence[str] | None = None,
    columns: int = 4,
) -> Image.Image:
    """A grid: the original image, then one panel per stored record in ``indices``, each captioned with its ops
    and the teacher's top-3 classes, wrapped, never cut. Panels are ``transform.size`` pixels plus a caption band;
    a column is wider than its panel when a caption word is.

    Example:
        >>> grid = render_grid(transform, row["image"], row["key"], [0, 1, 2])  # doctest: +SKIP
        >>> grid.size  # (4 panels of 224 px, one row, 224 px + the caption band)  # doctest: +SKIP
        (896, 292)
    """
    height, width = transform.size
    panels = [(to_pil(image).convert("RGB").resize((width, height)), ["original", _abbreviated(key, KEY_CHARS)])]
    for index in indices:
        view, record = transform.view(image, key, index)
        ops = describe_params(transform.policy, record["params"])
        caption = [f"#{index} {ops[0]}", *ops[1:], *_top_lines(record, class_names)]
        panels.append((to_pil(view).convert("RGB"), caption))
    return _compose(panels, columns, (width, height))


def _compose(panels: list[tuple[Image.Image, list[str]]], columns: int, size: tuple[int, int]) -> Image.Image:
    """The panels in a grid; each column as wide as the panel or the widest caption word, each caption wrapped to it
    (op names whole: "AutoContrast", "TranslateX") and the caption band as tall as the longest caption."""
    width, height = size
    font = ImageFont.load_default()
    words = [word for _, caption in panels for line in caption for word in line.split()]
    column_width = max([width, *(int(font.getlength(word)) + 4 for word in words)])
    captions = [wrap_caption(caption, font, column_width - 4) for _, caption in panels]
    band = max(len(caption) for caption in captions) * LINE_HEIGHT + 4
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    grid = Image.new("RGB", (columns * column_width, rows * (height + band)), "white")
    draw = ImageDraw.Draw(grid)
    for i, ((panel, _), caption) in enumerate(zip(panels, captions, strict=True)):
        x, y = (i % columns) * column_width, (i // columns) * (height + band)
        grid.paste(panel, (x, y))
        for line_no, line in enumerate(caption):
            draw.text((x + 2, y + height + 2 + line_no * LINE_HEIGHT), line, fill="black", font=font)
    return grid


def save_grid(grid: Image.Image, path: str | os.PathLike) -> str:
    """Writes ``grid`` as PNG (creating the folder) and returns the path."""
    return write_atomic(path, lambda temporary: grid.save(temporary, format="PNG"))
