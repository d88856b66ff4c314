"""Test helpers for the recipes in ``builders/``: local stand-ins of their source datasets, made of real digits."""

from __future__ import annotations

import datasets

from hf_dr.generate.builder import Builder
from tests.data_utils import digits_dataset


def standin(builder: Builder, count: int) -> datasets.Dataset:
    """``count`` real digits under the recipe's column names, labels cast to its ClassLabel (digit d is class d);
    for a recipe keyed by path, each image cell stores a file name."""
    digits = digits_dataset(count, with_keys=builder.key_column is not None)
    digits = digits.rename_columns({"image": builder.image_column, "label": builder.label_column,
                                    **({"key": builder.key_column} if builder.key_column else {})})
    if builder.key_from == "path":  # each cell stores a file name, as the Hub's Parquet files of ImageNet do
        column = builder.image_column
        cells = digits.cast_column(column, datasets.Image(decode=False))
        named = cells.map(lambda row, i: {column: {"bytes": row[column]["bytes"], "path": f"digit-{i:05d}.png"}},
                          with_indices=True)
        digits = named.cast_column(column, datasets.Image())
    names = list(builder.class_names or [str(i) for i in range(builder.num_classes)])
    return digits.cast_column(builder.label_column, datasets.ClassLabel(names=names))
