"""The demo's data: any image-classification dataset split into the teachers' rows, the reinforced subset and a test
set, with keys, the image mode and the pixel statistics every stage normalises with.

The teachers learn from ``teacher_train_size`` rows of the training split (all of it by default); the students from
``subset_size`` random rows of the same split (the paper's setting at small scale: a teacher that learned from more
data than the reinforced set). Without a ``test_split`` in the source, ``test_size`` rows (20% by default) are held
out of the training split first; then ``calibration_size`` rows (20%, at most 2,000, by default) that neither the
teachers nor the students learn from, on which the teacher ensemble's temperature is fitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np

from hf_dr.augment.functional import to_pil
from hf_dr.data.columns import check_columns, class_count
from hf_dr.data.source_keys import keyed
from hf_dr.errors import InvalidConfigError

logger = logging.getLogger(__name__)

KEY = "key"
HELD_OUT_SHARE = 0.2
CALIBRATION_SHARE, MAX_CALIBRATION_ROWS = 0.2, 2000
STATS_ROWS = 5000  # rows the pixel mean and std are estimated on


@dataclass
class DemoData:
    """The demo's rows and what every stage needs to read them alike.

    Args:
        teacher_rows, subset, test (`datasets.Dataset`): the teachers' training rows, the reinforced subset and the
            test rows, each with the image, label and ``key`` columns.
        calibration (`datasets.Dataset`, *optional*): held-out training rows for the teacher's temperature.
        num_classes (`int`): classes of the label column.
        class_names (`list[str]`, *optional*): their names.
        in_chans (`int`): 1 for a grayscale source, else 3.
        mean, std (`tuple[float, ...]`): per-channel pixel statistics of the teachers' rows.
        name (`str`): the dataset, as given.
    """

    teacher_rows: datasets.Dataset
    subset: datasets.Dataset
    test: datasets.Dataset
    num_classes: int
    class_names: list[str] | None
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    calibration: datasets.Dataset | None = None

    @property
    def image_mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"

    def describe(self) -> dict[str, Any]:
        """JSON-ready sizes and statistics (recorded in ``results.json``)."""
        return {"dataset": self.name, "teacher_rows": len(self.teacher_rows), "subset_rows": len(self.subset),
                "test_rows": len(self.test), "calibration_rows": len(self.calibration or []),
                "num_classes": self.num_classes, "in_chans": self.in_chans, "mean": list(self.mean),
                "std": list(self.std)}


def load_demo_data(config: Any) -> DemoData:
    """The rows of ``config.dataset`` (a :class:`hf_dr.demo.config.DemoConfig`) for every stage of the demo."""
    from hf_dr.train.inputs import load_image_dataset

    columns = {"image_column": config.image_column, "label_column": config.label_column}
    train = load_image_dataset(config.dataset, config.train_split, config.data_root)
    check_columns(train, **columns)
    num_classes = class_count(train, config.label_column)
    if num_classes is None:
        raise InvalidConfigError(f"the label column {config.label_column!r} of {config.dataset!r} is not a "
                                 "ClassLabel; pass the column that is (--label-column)")
    train, _ = keyed(train, config.image_column, config.key_column, None, KEY)
    test = _test_rows(config, train)
    if test is None:
        held = config.test_size or max(1, int(HELD_OUT_SHARE * len(train)))
        order = np.random.default_rng(config.seed + 2).permutation(len(train))
        test, train = train.select(np.sort(order[:held])), train.select(np.sort(order[held:]))
        logger.info("%r has no %r split: holding out %d training rows as the test set", config.dataset,
                    config.test_split, held)
    elif config.test_size:
        test = test.select(range(min(config.test_size, len(test))))
    calibration = None
    if config.calibrate_teacher:
        count = config.calibration_size or min(MAX_CALIBRATION_ROWS, max(1, int(CALIBRATION_SHARE * len(train))))
        order = np.random.default_rng(config.seed + 3).permutation(len(train))
        calibration, train = train.select(np.sort(order[:count])), train.select(np.sort(order[count:]))
    subset_size = config.subset_size_for(len(train))
    subset = train.select(np.sort(np.random.default_rng(config.seed).permutation(len(train))[:subset_size]))
    teacher_rows = train
    if config.teacher_train_size and config.teacher_train_size < len(train):
        rows = np.random.default_rng(config.seed + 1).permutation(len(train))[: config.teacher_train_size]
        teacher_rows = train.select(np.sort(rows))
    in_chans = 1 if to_pil(teacher_rows[0][config.image_column]).mode == "L" else 3
    mean, std = pixel_statistics(teacher_rows, config.image_column, "L" if in_chans == 1 else "RGB")
    feature = train.features[config.label_column]
    return DemoData(teacher_rows, subset, test, int(num_classes), list(getattr(feature, "names", []) or []) or None,
                    in_chans, mean, std, config.dataset, calibration)


def _test_rows(config: Any, train: datasets.Dataset) -> datasets.Dataset | None:
    """The source's test split with keys, or None when it has none."""
    from hf_dr.train.inputs import load_image_dataset

    try:
        test = load_image_dataset(config.dataset, config.test_split, config.data_root)
    except (ValueError, KeyError, FileNotFoundError) as err:  # datasets: "Unknown split", missing split files
        if "split" not in str(err).lower() and not isinstance(err, KeyError):
            raise
        return None
    check_columns(test, image_column=config.image_column, label_column=config.label_column)
    return keyed(test, config.image_column, config.key_column, None, KEY)[0]


def pixel_statistics(dataset: datasets.Dataset, image_column: str, mode: str, rows: int = STATS_ROWS
                     ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of the pixels (in [0, 1]) of the first ``rows`` images in ``mode``.

    Example:
        >>> from PIL import Image
        >>> ds = datasets.Dataset.from_dict({"image": [Image.new("L", (4, 4), 0), Image.new("L", (4, 4), 255)]},
        ...                                 features=datasets.Features({"image": datasets.Image()}))
        >>> pixel_statistics(ds, "image", "L")
        ((0.5,), (0.5,))
    """
    total, squares, count = 0.0, 0.0, 0
    for image in dataset.select(range(min(rows, len(dataset))))[image_column]:
        pixels = np.asarray(to_pil(image, mode), dtype=np.float64).reshape(-1, 1 if mode == "L" else 3) / 255
        total, squares, count = total + pixels.sum(0), squares + (pixels ** 2).sum(0), count + len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 1e-12))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
