"""``RunColumns``: the one record of a run's columns reads every recorded view (old configs included), writes each
view in the format earlier versions wrote (fingerprints and description bytes pinned to hf-dr before the record
existed), and refuses contradictions naming the fix."""

from __future__ import annotations

import hashlib
import json

import pytest

from hf_dr.data.description import RunDescription
from hf_dr.data.run_columns import KEY_COLUMN, RunColumns
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.run_config import ReinforceConfig

RUN = {"policy": {"name": "rrc", "ops": []}, "num_samples": 4, "topk": 3, "seed": 0, "shard_size": 16,
       "teacher": [{"spec": {"arch": "resnet18"}}], "dataset": {"num_rows": 8, "keys_sha256": "ab"}}
# (recorded columns, the fingerprint hf-dr computed for them before RunColumns: commit ed2aa56)
RECORDED = [
    ({"image": "image", "label": "label", "key": "id"},  # a config written before key sources were recorded
     "a0ec948d75e0d50340c7fe08914c7e613cd81734dce321a6038a406fe4be80c8"),
    ({"image": "img", "label": None, "key": None}, "a14437beb074bbc30dfa91f17d47780e3b185bf87284732734deb9f09860f7df"),
    ({"image": "image", "label": "label", "key": None, "key_source": "path"},
     "b634c078fd88c8bf2a46572048a414d66872e59ae6d0555c298f63aac4a81c1a"),
    ({"image": "image", "label": "label", "key": "id", "key_source": "column"},
     "9a9922a4b9d4aaa6492bbd95281be10477ca33c2d729feb053556d5792ff1bf1"),
]


@pytest.mark.parametrize("columns, fingerprint", RECORDED, ids=["old-column", "old-content", "path", "column"])
def test_recorded_configs_keep_their_file_form_and_fingerprint(columns, fingerprint, tmp_path):
    """A saved config reads into RunColumns and is written back as it was: a resume of an old run finds its shards."""
    (tmp_path / "reinforce_config.json").write_text(json.dumps({**RUN, "columns": columns}))
    config = ReinforceConfig.load(str(tmp_path))
    assert isinstance(config.columns, RunColumns)
    assert config.to_dict()["columns"] == columns
    assert config.fingerprint() == fingerprint


def test_old_configs_resolve_their_key_source():
    """Before key sources were recorded, a key column meant column keys and none meant content keys."""
    old_column, old_content = RunColumns.from_dict(RECORDED[0][0]), RunColumns.from_dict(RECORDED[1][0])
    assert (old_column.key_source, old_column.key_name, old_column.by_content) == ("column", "id", False)
    assert (old_content.key_source, old_content.key_name, old_content.by_content) == ("content", KEY_COLUMN, True)
    assert old_content.label is None and old_content.image == "img"


@pytest.mark.parametrize("columns", [RunColumns(), RunColumns(key="id"), RunColumns(label=None, key_source="path"),
                                     RunColumns(image="img", key_source="content")])
def test_every_view_reads_back(columns):
    """The config, description and hf_dr.json source views all read back into the same record."""
    for view in (columns.to_dict(), columns.description_view(), columns.source_view()):
        assert RunColumns.from_dict(view) == columns, view


def test_the_description_names_the_table_key_and_keeps_its_bytes():
    """The description is a view of the config's columns; its bytes are those hf-dr wrote before (ed2aa56)."""
    columns = {"image": "image", "label": None, "key": None, "key_source": "path"}
    config = {**RUN, "num_classes": 10, "columns": columns,
              "teacher": [{"spec": {"arch": "resnet18", "weights": "/x/t.safetensors"}, "sha256": "00"}],
              "dataset": {"id": "me/digits", "split": "train", "num_rows": 8, "keys_sha256": "ab"},
              "versions": {"torch": "2"}}
    del config["shard_size"]
    description = RunDescription.from_run(config)
    text = description.to_id()
    assert '"columns":{"image":"image","key":"key","key_source":"path","label":null,' in text
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == "f8b75f1dce10ae8a"
    assert RunDescription.from_id(text).columns == RunColumns(label=None, key_source="path")
    assert description.key_column == KEY_COLUMN and description.reinforcements_column == "reinforcements"


def test_pushed_columns_name_the_table():
    assert RunColumns(key_source="path").pushed_view(with_image=False) == {
        "image": None, "label": "label", "key": "key", "reinforcements": "reinforcements"}
    assert RunColumns(key="id").pushed_view(with_image=True)["image"] == "image"


def test_contradictions_and_unknown_roles_are_refused():
    with pytest.raises(InvalidConfigError, match=r"pass either key_column= \(--key-column id\) or key_from='path'"):
        RunColumns(key="id", key_source="path")
    with pytest.raises(InvalidConfigError, match="key_from should be one of"):
        RunColumns(key_source="hash")
    with pytest.raises(InvalidConfigError, match=r"unknown run columns \['lable'\].*the roles are"):
        RunColumns.from_dict({"image": "image", "lable": "label"})
