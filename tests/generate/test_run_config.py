"""``ReinforceConfig``: which fields decide the fingerprint, how conflicts are listed, the teacher checks, and the
config file round trip (garbage files refused, naming the path)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from hf_dr import create_policy
from hf_dr.data.source_keys import keys_sha256
from hf_dr.errors import ConfigConflictError
from hf_dr.generate.run_config import PLAN_FIELDS, ReinforceConfig
from hf_dr.generate.storage import CONFIG_FILE
from hf_dr.models.teacher import MemberSpec

KEYS = [f"digit-{i:05d}" for i in range(40)]


def _member(sha: str = "1" * 64, **spec: Any) -> dict[str, Any]:
    """A loaded member's description as a run records it."""
    values = {"arch": "test_resnet", "weights": "/teachers/a.safetensors", "input_size": [3, 32, 32], **spec}
    data_config = {"input_size": [3, 32, 32], "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
                   "std": [0.229, 0.224, 0.225], "crop_pct": 0.875}
    return {"spec": MemberSpec.from_dict(values).to_dict(), "sha256": sha, "num_classes": 10,
            "data_config": data_config}


def _config(**changes: Any) -> ReinforceConfig:
    values = {
        "policy": create_policy("rrc+ra_re").config(), "num_samples": 4, "topk": 5, "seed": 0, "shard_size": 16,
        "teacher": [_member()], "precision": "fp32", "columns": {"image": "image", "label": "label", "key": "key"},
        "dataset": {"id": "tester/digits", "split": "train", "revision": "abc123", "fingerprint": "f00",
                    "num_rows": 40, "keys_sha256": keys_sha256(KEYS)},
        "num_classes": 10, "versions": {"torch": "2.0", "hf_dr": "0.1"},
    }
    return ReinforceConfig(**{**values, **changes})


def _policy_with_magnitude(magnitude: int) -> dict[str, Any]:
    return create_policy("rrc+ra_re", randaugment={"magnitude": magnitude}).config()


def test_fingerprint_is_a_stable_sha256_of_the_plan():
    """64 hex digits, the same for equal configs and after a JSON round trip of the plan."""
    config = _config()
    assert len(config.fingerprint()) == 64 and int(config.fingerprint(), 16) >= 0
    assert config.fingerprint() == _config().fingerprint()
    assert set(config.plan()) == {*PLAN_FIELDS, "dataset", "teacher"}
    assert json.loads(json.dumps(config.plan())) == config.plan()


def test_fingerprint_ignores_key_order_and_tuples():
    """Dicts in another key order and tuples instead of lists (what a JSON round trip changes) plan the same run."""
    config = _config()
    reordered_policy = json.loads(json.dumps(config.policy, sort_keys=True))
    reordered_policy = dict(reversed(list(reordered_policy.items())))
    member = _member()
    reordered_member = {"spec": dict(reversed(list({**member["spec"], "input_size": (3, 32, 32)}.items())))}
    other = _config(policy=reordered_policy, columns={"key": "key", "label": "label", "image": "image"},
                    dataset=dict(reversed(list(config.dataset.items()))), teacher=[{**member, **reordered_member}])
    assert other.fingerprint() == config.fingerprint()
    assert other.conflicts(config) == []


PLAN_CHANGES = [
    ({"format_version": 2}, "format_version: 1 -> 2"),
    ({"num_samples": 8}, "num_samples: 4 -> 8"),
    ({"topk": 3}, "topk: 5 -> 3"),
    ({"seed": 1}, "seed: 0 -> 1"),
    ({"shard_size": 32}, "shard_size: 16 -> 32"),
    ({"precision": "bf16"}, 'precision: "fp32" -> "bf16"'),
    ({"columns": {"image": "image", "label": "label", "key": "id"}}, 'columns.key: "key" -> "id"'),
    ({"columns": {"image": "image", "label": None, "key": "key"}}, 'columns.label: "label" -> null'),
    ({"dataset": {"num_rows": 30, "keys_sha256": keys_sha256(KEYS)}}, "dataset.num_rows: 40 -> 30"),
    ({"dataset": {"num_rows": 40, "keys_sha256": keys_sha256(KEYS[::-1])}}, "dataset.keys_sha256: "),
    ({"teacher": [_member(arch="resnet18")]}, 'teacher.0.arch: "test_resnet" -> "resnet18"'),
    ({"teacher": [_member(num_classes=10)]}, "teacher.0.num_classes: null -> 10"),
    ({"teacher": [_member(input_size=[3, 24, 32])]}, "teacher.0.input_size.1: 32 -> 24"),
    ({"teacher": [_member(interpolation="bicubic")]}, 'teacher.0.interpolation: null -> "bicubic"'),
    ({"teacher": [_member(mean=[0.5, 0.5, 0.5])]}, "teacher.0.mean: null -> [0.5, 0.5, 0.5]"),
    ({"teacher": [_member(std=[0.5, 0.5, 0.5])]}, "teacher.0.std: null -> [0.5, 0.5, 0.5]"),
    ({"teacher": [_member(crop_pct=1.0)]}, "teacher.0.crop_pct: null -> 1.0"),
]


@pytest.mark.parametrize("change, conflict", PLAN_CHANGES, ids=[c.split(":")[0] for _, c in PLAN_CHANGES])
def test_each_plan_field_changes_the_fingerprint_and_is_the_only_conflict(change, conflict):
    """Changing one plan field changes the fingerprint, and ``conflicts`` lists that field alone, old -> new."""
    recorded, rerun = _config(), _config(**change)
    assert rerun.fingerprint() != recorded.fingerprint()
    conflicts = rerun.conflicts(recorded)
    assert len(conflicts) == 1 and conflicts[0].startswith(conflict), conflicts


def test_a_policy_setting_is_a_conflict_naming_the_op_field():
    """One op argument changed: the conflict names its path inside the policy."""
    recorded, rerun = _config(policy=_policy_with_magnitude(9)), _config(policy=_policy_with_magnitude(5))
    assert rerun.fingerprint() != recorded.fingerprint()
    assert rerun.conflicts(recorded) == ["policy.ops.1.magnitude: 9 -> 5"]


def test_several_changes_are_all_listed_in_name_order():
    """Every differing plan field is listed once, sorted by name."""
    conflicts = _config(seed=3, num_samples=2, teacher=[_member(), _member(arch="resnet18")]).conflicts(_config())
    assert conflicts[:2] == ["num_samples: 4 -> 2", "seed: 0 -> 3"]
    assert len(conflicts) == 3 and conflicts[2].startswith("teacher: [")  # another member count: the whole list


@pytest.mark.parametrize("change", [
    {"dataset": {"id": "other/digits", "split": "test", "revision": "def", "fingerprint": "x", "num_rows": 40,
                 "keys_sha256": keys_sha256(KEYS)}},
    {"versions": {"torch": "9.9"}},
    {"num_classes": None},
    {"teacher": [_member(weights="/elsewhere/a.safetensors")]},
    {"teacher": [_member(sha="2" * 64)]},
])
def test_provenance_fields_do_not_change_the_plan(change):
    """Where the data and weights came from, library versions and weight hashes are not plan fields."""
    assert _config(**change).fingerprint() == _config().fingerprint()
    assert _config(**change).conflicts(_config()) == []


def test_teacher_conflicts_name_weight_hashes_class_counts_and_data_configs():
    """Once both teachers are loaded, another weight hash, class count or data config is a conflict."""
    recorded = _config()
    assert _config().teacher_conflicts(recorded) == []
    assert _config(teacher=[_member(sha="2" * 64)]).teacher_conflicts(recorded) == [
        f'teacher.0.sha256: "{"1" * 64}" -> "{"2" * 64}"']
    other_classes = {**_member(), "num_classes": 7}
    assert _config(teacher=[other_classes]).teacher_conflicts(recorded) == ["teacher.0.num_classes: 10 -> 7"]
    member = _member()
    member["data_config"] = {**member["data_config"], "interpolation": "bicubic"}
    assert _config(teacher=[member]).teacher_conflicts(recorded) == [
        'teacher.0.data_config.interpolation: "bilinear" -> "bicubic"']


def test_teacher_conflicts_wait_for_a_loaded_teacher():
    """A config whose teacher is not loaded yet (specs only, no sha256) has no teacher conflicts to report."""
    specs_only = _config(teacher=[{"spec": _member()["spec"]}])
    assert specs_only.teacher_conflicts(_config(teacher=[_member(sha="2" * 64)])) == []
    assert _config(teacher=[_member(sha="2" * 64)]).teacher_conflicts(specs_only) == []


def test_check_compatible_names_every_difference_and_the_fix(tmp_path):
    """Plan and teacher differences together, the folder, and both ways out."""
    recorded = _config()
    provenance = _config(versions={**recorded.versions, "accelerate": "9.9"})  # decides no pixel: fine
    provenance.check_compatible(recorded, str(tmp_path))
    with pytest.raises(ConfigConflictError, match=r"versions.torch: .* -> 9.9 \(install the recorded version"):
        _config(versions={**recorded.versions, "torch": "9.9"}).check_compatible(recorded, str(tmp_path))  # pixels
    with pytest.raises(ConfigConflictError) as info:
        _config(seed=1, teacher=[_member(sha="2" * 64)]).check_compatible(recorded, str(tmp_path))
    message = str(info.value)
    assert str(tmp_path) in message and "seed: 0 -> 1; teacher.0.sha256:" in message
    assert "--output-dir" in message and "--overwrite" in message


def test_save_and_load_round_trip(tmp_path):
    """The saved file is key-sorted JSON of every field; loading it gives an equal config with the same
    fingerprint; a folder without one loads None."""
    config = _config()
    config.save(str(tmp_path))
    path = os.path.join(tmp_path, CONFIG_FILE)
    text = open(path).read()
    assert json.loads(text) == config.to_dict()
    assert text == json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    loaded = ReinforceConfig.load(str(tmp_path))
    assert loaded == config and loaded.fingerprint() == config.fingerprint() and loaded.conflicts(config) == []
    assert ReinforceConfig.load(str(tmp_path / "empty")) is None


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]", b"null", b"{}",
                                     b'{"policy": {}, "bogus": 1}'])
def test_a_garbage_config_file_is_refused_naming_the_path(content, tmp_path):
    """Unreadable, not an object, missing or unknown fields: ConfigConflictError naming the file and the fix."""
    path = tmp_path / CONFIG_FILE
    path.write_bytes(content)
    with pytest.raises(ConfigConflictError, match="is not a hf-dr reinforce config") as info:
        ReinforceConfig.load(str(tmp_path))
    assert str(path) in str(info.value) and "--overwrite" in str(info.value)


def test_the_data_description_is_a_view_of_the_config():
    """Every setting the data's description shares with ``reinforce_config.json`` is copied from the config: one
    record, two views. A field added to both must be added here (and to ``RunDescription.from_run``)."""
    from dataclasses import fields

    from hf_dr.data.description import PIXEL_LIBRARIES, RunDescription, public_paths

    config = _config(image_mode="L", codec={"labels": "q8-topk"}, selection={"rule": "top1", "from": 8},
                     versions={"torch": "2.0", "hf_dr": "0.1", "accelerate": "1.0"})
    description = RunDescription.from_run(config.to_dict())
    shared = {f.name for f in fields(RunDescription)} & {f.name for f in fields(ReinforceConfig)}
    assert shared == {"policy", "num_samples", "topk", "num_classes", "seed", "columns", "teacher", "image_mode",
                      "versions", "codec", "selection", "format_version"}
    for name in ("policy", "num_samples", "topk", "num_classes", "seed", "columns", "image_mode", "codec",
                 "selection"):
        assert getattr(description, name) == getattr(config, name), name
    public = public_paths(config.to_dict())["teacher"]
    assert description.teacher == [{"spec": m["spec"], "sha256": m["sha256"]} for m in public]
    assert description.versions == {k: v for k, v in config.versions.items() if k in PIXEL_LIBRARIES}
