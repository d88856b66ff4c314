"""The source of a run: loading every local form (save_to_disk folders, dataset dicts, Parquet), split names."""

from __future__ import annotations

import datasets
import pytest

from hf_dr.data.columns import encoded_images
from hf_dr.data.keys import content_key
from hf_dr.data.sources import load_source
from hf_dr.errors import InvalidConfigError
from tests.data_utils import digits_dataset


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(12)


def _same_rows(loaded: datasets.Dataset, expected: datasets.Dataset) -> None:
    assert loaded.features == expected.features and len(loaded) == len(expected)
    assert loaded["key"][:] == expected["key"][:] and loaded["label"][:] == expected["label"][:]
    assert [content_key(c) for c in encoded_images(loaded, "image")["image"][:]] == \
        [content_key(c) for c in encoded_images(expected, "image")["image"][:]]


# -- loading ------------------------------------------------------------------------------------------------------
def test_load_source_reads_a_save_to_disk_folder(digits, tmp_path):
    digits.save_to_disk(str(tmp_path / "saved"))
    _same_rows(load_source(str(tmp_path / "saved")), digits)


def test_load_source_picks_the_split_of_a_dataset_dict_folder(digits, tmp_path):
    """A saved DatasetDict: the asked split, not the first one."""
    splits = datasets.DatasetDict({"train": digits.select(range(8)), "test": digits.select(range(8, 12))})
    splits.save_to_disk(str(tmp_path / "dict"))
    _same_rows(load_source(str(tmp_path / "dict"), split="test"), digits.select(range(8, 12)))
    _same_rows(load_source(str(tmp_path / "dict")), digits.select(range(8)))
    with pytest.raises(KeyError):
        load_source(str(tmp_path / "dict"), split="validation")


@pytest.mark.parametrize("split", ["../../../../outside/evil", "a/b", "..", ".hidden", "", "train/../test",
                                   "C:\\x", "train\n"])
def test_load_source_refuses_a_split_that_is_not_a_plain_name(split, digits, tmp_path):
    """A split becomes part of file names (a push's ``data/{split}-*.parquet``) and is recorded with the run: a
    path is refused where it enters, for every kind of source (a save_to_disk folder ignores the split otherwise)."""
    digits.save_to_disk(str(tmp_path / "saved"))
    digits.to_parquet(str(tmp_path / "digits.parquet"))
    for path in (str(tmp_path / "saved"), str(tmp_path / "digits.parquet"), "digits"):
        with pytest.raises(InvalidConfigError, match="is not a split name") as info:
            load_source(path, split=split)
        assert repr(split) in str(info.value) and "--split train" in str(info.value)


@pytest.mark.parametrize("split", ["train", "validation", "test-2024", "train_v1.1", "0"])
def test_load_source_takes_plain_split_names(split, digits, tmp_path):
    digits.save_to_disk(str(tmp_path / "saved"))
    _same_rows(load_source(str(tmp_path / "saved"), split=split), digits)


def test_load_source_reads_a_parquet_file_and_folder(digits, tmp_path):
    """A single .parquet file (under the asked split) and a folder of Parquet files."""
    digits.to_parquet(str(tmp_path / "digits.parquet"))
    _same_rows(load_source(str(tmp_path / "digits.parquet")), digits)
    _same_rows(load_source(str(tmp_path / "digits.parquet"), split="validation"), digits)
    (tmp_path / "folder").mkdir()
    digits.to_parquet(str(tmp_path / "folder" / "train-00000.parquet"))
    _same_rows(load_source(str(tmp_path / "folder")), digits)
