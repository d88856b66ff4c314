"""check_columns: the one column check; every hook and loader reports a missing column the same way; image features
and undecoded columns."""

from __future__ import annotations

import datasets
import pytest

from hf_dr import AugmentTransform, EvalTransform, ReinforcedTransform, create_policy
from hf_dr.data.columns import check_columns, class_count, column_values, encoded_images, image_feature
from hf_dr.data.preloaded import PreloadedDataset
from hf_dr.data.streaming import stream_replay
from hf_dr.errors import InvalidConfigError, MissingColumnError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory


@pytest.fixture(scope="module")
def images() -> datasets.Dataset:
    return digits_dataset(6)


@pytest.fixture(scope="module")
def table(images) -> datasets.Dataset:
    return reinforce_in_memory(images, create_policy("rrc"), ProjectionTeacher(), 2, 3)


def _message(info) -> str:
    assert isinstance(info.value, KeyError)  # also a KeyError, and printed without KeyError's quotes
    return str(info.value)


def test_names_the_role_the_column_its_option_the_columns_and_the_fix(images):
    with pytest.raises(MissingColumnError) as info:
        check_columns(images, role="source dataset", image_column="img", label_column="label")
    assert _message(info) == ("the source dataset has no column 'img' (image_column); its columns are "
                              "['image', 'label', 'key']. Pass the right name (image_column= or --image-column).")


def test_several_missing_columns_are_listed_together(images):
    with pytest.raises(MissingColumnError, match=r"no columns 'a' \(key_column\), 'b' \(reinforcements_column\);"
                                                 r".*\(key_column= or --key-column; reinforcements_column=\)\.$"):
        check_columns(images, key_column="a", reinforcements_column="b")


def test_present_and_unset_columns_pass(images):
    check_columns(images, image_column="image", label_column=None, key_column="key")
    check_columns(images, "image", "label")
    check_columns({"image": [], "key": []}, role="batch", image_column="image", key_column="key")


def test_columns_without_option_and_batches(images):
    with pytest.raises(MissingColumnError, match=r"the dataset has no column 'x'; .*Rename the column"):
        check_columns(images, "x")
    with pytest.raises(MissingColumnError, match=r"the batch has no column 'key' \(key_column\); its columns are "
                                                 r"\['image'\]\. Attach first\.$"):
        check_columns({"image": []}, role="batch", fix="Attach first.", key_column="key")


def test_streams_are_checked_once_their_features_are_known(images):
    stream = images.to_iterable_dataset()
    with pytest.raises(MissingColumnError, match=r"the stream has no column 'img'"):
        check_columns(stream, role="stream", image_column="img")
    check_columns(stream.map(lambda row: row), image_column="img")  # features unknown: nothing to check yet


@pytest.mark.parametrize("case", ["reinforced_init", "reinforced_attach", "reinforced_batch", "partner_images",
                                  "augment_attach", "eval_batch", "preloaded", "preloaded_plain_hook", "stream"])
def test_every_hook_reports_the_same_way(case, images, table):
    renamed = images.rename_column("key", "id")
    mix = create_policy("rrc+mix")
    mix_table = reinforce_in_memory(images, mix, ProjectionTeacher(), 2, 3)
    calls = {
        "reinforced_init": lambda: ReinforcedTransform(images, policy="rrc"),
        "reinforced_attach": lambda: ReinforcedTransform(table, policy="rrc", num_classes=10).attach(renamed),
        "reinforced_batch": lambda: ReinforcedTransform(table, policy="rrc", num_classes=10)({"image": []}),
        "partner_images": lambda: ReinforcedTransform(mix_table, policy=mix, num_classes=10, images=renamed),
        "augment_attach": lambda: AugmentTransform("rrc").attach(renamed),
        "eval_batch": lambda: EvalTransform()({"image": []}),
        "preloaded": lambda: PreloadedDataset(renamed, AugmentTransform("rrc")),
        "preloaded_plain_hook": lambda: PreloadedDataset(renamed, _PlainHook()),
        "stream": lambda: stream_replay(renamed.to_iterable_dataset(), ReinforcedTransform(table, policy="rrc",
                                                                                            num_classes=10),
                                        "image", "key"),
    }
    with pytest.raises(MissingColumnError) as info:
        calls[case]()
    message = _message(info)
    missing = {"reinforced_init": "'reinforcements' (reinforcements_column)", "eval_batch": "'label' (label_column)",
               "preloaded_plain_hook": "'key';"}.get(case, "'key' (key_column)")
    assert message.startswith("the ") and f"has no column {missing}" in message
    assert "; its columns are [" in message and message.endswith(".")


class _PlainHook:
    """A user's own ``set_transform`` hook: only ``input_columns`` and ``__call__``."""

    input_columns = ["image", "key"]

    def __call__(self, batch):
        return batch


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(12)


# -- columns ------------------------------------------------------------------------------------------------------
def test_check_columns_names_the_option_the_column_and_the_available_ones(digits):
    """Present or None columns pass; a missing one names its option, the columns there are and the flag to fix."""
    check_columns(digits, image_column="image", label_column="label", key_column=None)
    with pytest.raises(MissingColumnError) as info:
        check_columns(digits, image_column="image", label_column="target")
    assert str(info.value).startswith("the dataset has no column 'target' (label_column); its columns are "
                                      "['image', 'label', 'key']")
    assert "label_column=" in str(info.value) and "--label-column" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_check_columns_lists_every_missing_column(digits):
    """Two missing columns are both named, with both fixes."""
    with pytest.raises(MissingColumnError, match=r"'img' \(image_column\).*'id' \(key_column\)") as info:
        check_columns(digits, image_column="img", key_column="id")
    assert "--image-column" in str(info.value) and "--key-column" in str(info.value)


def test_image_feature_turns_decoding_on_and_keeps_the_mode(digits):
    """An undecoded or gray image column gives a decoding Image feature of the same mode."""
    assert image_feature(digits, "image") == datasets.Image()
    gray = digits.cast_column("image", datasets.Image(mode="L", decode=False))
    assert image_feature(gray, "image") == datasets.Image(mode="L", decode=True)


@pytest.mark.parametrize("column", ["label", "key"])
def test_image_feature_refuses_a_column_without_images(column, digits):
    """A label or string column is not an image column: the error says how to cast it."""
    with pytest.raises(InvalidConfigError, match=rf"column '{column}' holds .*not images.*cast_column\('{column}'"):
        image_feature(digits, column)


def test_encoded_images_class_count_and_column_values(digits):
    """Encoded images are the PNG cells alone; ClassLabel ids and class count are read as stored."""
    cells = encoded_images(digits, "image")
    assert cells.column_names == ["image"] and cells[0]["image"]["bytes"].startswith(b"\x89PNG")
    assert column_values(digits, "label") == digits["label"][:]
    assert column_values(digits, "key") == [f"digit-{i:05d}" for i in range(12)]
    assert class_count(digits, "label") == 10
    assert class_count(digits, "key") is None and class_count(digits, None) is None
    assert class_count(digits.cast_column("label", datasets.Value("int64")), "label") is None
