"""The transform options a run records (hf_dr.data.recorded_options), resolved against what a caller passes: the
recorded value by default, an agreeing one accepted, a contradicting one refused naming both, a renamed column
followed, and the pre-0.2 fallbacks (no description). The same rules through ReinforcedTransform on a real run are
in test_description.py."""

from __future__ import annotations

import datasets
import pytest

from hf_dr import create_policy
from hf_dr.data.description import RunDescription
from hf_dr.data.recorded_options import recorded_columns, resolve_column, resolve_num_classes, resolve_policy
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError, ParamsMismatchError


@pytest.fixture
def description() -> RunDescription:
    return RunDescription(policy=create_policy("rrc").config(), num_samples=2, topk=3, num_classes=10, seed=0,
                          columns={"image": "img", "label": "label", "key": "id", "key_source": "column",
                                   "reinforcements": "records"})


def test_recorded_columns_come_from_the_description_or_the_old_defaults(description):
    rows = datasets.Dataset.from_dict({"id": ["a"], "records": [[]]})
    assert recorded_columns(description, rows) == {"image": "img", "key": "id", "reinforcements": "records"}
    assert recorded_columns(None, rows) == {"image": "image", "key": "key", "reinforcements": "reinforcements"}


def test_a_given_column_is_refused_while_the_recorded_one_exists_and_followed_once_renamed():
    rows = datasets.Dataset.from_dict({"id": ["a"], "label": [0]})
    assert resolve_column("key_column", None, "id", rows) == "id"
    assert resolve_column("key_column", "id", "id", rows) == "id"
    with pytest.raises(ParamsMismatchError, match="key_column='label' contradicts the dataset's recorded column 'id'"):
        resolve_column("key_column", "label", "id", rows)
    renamed = rows.rename_column("id", "sample_id")
    assert resolve_column("key_column", "sample_id", "id", renamed) == "sample_id"


def test_the_recorded_policy_is_used_and_only_view_settings_may_differ(description):
    assert resolve_policy(description, None).config() == create_policy("rrc").config()
    bicubic = create_policy("rrc", crop={"interpolation": "bicubic"})  # the recorded one is bilinear
    assert resolve_policy(description, bicubic).config()["ops"][0]["interpolation"] == "bicubic"
    with pytest.raises(ParamsMismatchError, match="policy= contradicts the policy the records were made with"):
        resolve_policy(description, "rrc+ra_re")


def test_without_a_description_the_policy_must_be_given():
    with pytest.raises(InvalidConfigError, match="pass policy="):
        resolve_policy(None, None)
    assert resolve_policy(None, "crop_flip").config() == create_policy("crop_flip").config()


def test_the_class_count_is_the_recorded_one_else_the_labels_and_never_a_contradiction(description):
    assert resolve_num_classes(description, None, from_labels=7) == 10  # the run's teacher decides, not the labels
    assert resolve_num_classes(description, 10, None) == 10
    with pytest.raises(ClassCountMismatchError, match="num_classes=100 contradicts the 10 classes"):
        resolve_num_classes(description, 100, None)
    assert resolve_num_classes(None, None, from_labels=7) == 7
    assert resolve_num_classes(None, 5, None) == 5
    with pytest.raises(InvalidConfigError, match="pass num_classes="):
        resolve_num_classes(None, None, None)
