"""Labels a teacher cannot have made are refused before anything is written (hf_dr.generate.source_labels): integers
beyond its classes naming the row, text or floats before the teacher loads, with the cast that fixes them; -1 and
missing labels mean "no label". Real runs on scikit-learn digits with a small local teacher (moved from
test_errors.py), and the checks alone."""

from __future__ import annotations

import os

import datasets
import pytest

import hf_dr.generate.run
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.source_labels import check_label_range, check_label_type
from tests.data_utils import digits_dataset
from tests.generate.test_errors import _run
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(16)


@pytest.fixture(scope="module")
def member(tmp_path_factory) -> dict:
    return save_teacher(str(tmp_path_factory.mktemp("teacher")), seed=0)


def _no_teacher(*args, **kwargs):
    raise AssertionError("the teacher was loaded before the labels were checked")


def _relabelled(digits: datasets.Dataset, feature: datasets.Value, values: list) -> datasets.Dataset:
    return digits.remove_columns("label").add_column("label", values, feature=feature)


def test_integer_labels_beyond_the_teacher_classes_are_refused_naming_the_row(digits, member, tmp_path):
    """A plain integer label column has no class count to compare: each label must be a class of the teacher."""
    labels = digits["label"][:]
    labels[11] = 12
    with pytest.raises(ClassCountMismatchError) as info:
        _run(_relabelled(digits, datasets.Value("int64"), labels), member, tmp_path / "out")
    assert "row 11" in str(info.value) and "holds 12" in str(info.value) and "0 to 9" in str(info.value)
    assert not os.path.exists(tmp_path / "out")


def test_integer_labels_within_the_teacher_classes_are_stored(digits, member, tmp_path):
    labels = [*digits["label"][:-1], -1]  # -1: no label, as in datasets
    out = _run(_relabelled(digits, datasets.Value("int32"), labels), member, tmp_path / "out")
    assert load_run_records(out, keep_in_memory=True)["label"][:] == labels


@pytest.mark.parametrize("dtype, fix", [("string", "class_encode_column('label')"),
                                        ("float32", "datasets.ClassLabel")])
def test_text_and_float_labels_are_refused_before_the_teacher_loads(dtype, fix, digits, member, tmp_path,
                                                                    monkeypatch):
    values = [str(v) if dtype == "string" else float(v) for v in digits["label"][:]]
    monkeypatch.setattr(hf_dr.generate.run, "create_teacher", _no_teacher)
    with pytest.raises(InvalidConfigError) as info:
        _run(_relabelled(digits, datasets.Value(dtype), values), member, tmp_path / "out")
    assert fix in str(info.value) and "'label'" in str(info.value) and "\n" not in str(info.value)
    assert not os.path.exists(tmp_path / "out")


def test_class_labels_no_labels_and_no_label_column_pass_the_checks():
    rows = datasets.Dataset.from_dict(
        {"label": [0, 9, -1], "count": [None, 3, 12]},
        features=datasets.Features({"label": datasets.ClassLabel(num_classes=10), "count": datasets.Value("int64")}))
    for column in ("label", None):
        check_label_type(rows, column)
        check_label_range(rows, column, 10)
    check_label_range(rows, "count", 13)  # None: no label
    with pytest.raises(ClassCountMismatchError, match="row 2 of the label column 'count' holds 12"):
        check_label_range(rows, "count", 12)
    with pytest.raises(ClassCountMismatchError, match="row 1 of the label column 'label' holds 9"):
        check_label_range(rows, "label", 5)  # a teacher of fewer classes than the ClassLabel's labels
