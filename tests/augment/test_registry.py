"""as_policy: the one way every entry point turns a name, a saved config or a policy into a policy."""

from __future__ import annotations

import pytest

from hf_dr.augment.registry import as_policy, create_policy, list_policies
from hf_dr.errors import InvalidConfigError, UnknownPolicyError


@pytest.mark.parametrize("name", list_policies())
def test_name_config_and_policy_give_the_same_policy(name):
    policy = create_policy(name)
    assert as_policy(name).config() == policy.config()
    assert as_policy(policy.config()).config() == policy.config()
    assert as_policy(policy) is policy


def test_overridden_config_round_trips():
    policy = create_policy("rrc+ra_re", crop={"scale": (0.35, 1.0)}, randaugment={"magnitude": 5})
    rebuilt = as_policy(policy.config())
    assert rebuilt.crop.scale == (0.35, 1.0) and rebuilt.config() == policy.config()


def test_a_json_policy_file_is_a_policy_for_every_entry_point(tmp_path):
    """Issue #14: scripts/train.py and finetune-teacher took --policy as a registered name only, so a plain baseline
    could not use the reinforced run's policy file (UnknownPolicyError)."""
    import json

    from hf_dr import AugmentTransform

    policy = create_policy("rrc", crop={"scale": (0.35, 1.0)})
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy.config()))
    assert as_policy(str(path)).config() == policy.config()
    assert AugmentTransform(str(path), size=32).policy.config() == policy.config()
    with pytest.raises(UnknownPolicyError, match="does not exist"):
        as_policy(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(InvalidConfigError, match="not a"):
        as_policy(str(tmp_path / "bad.json"))


def test_refusals():
    with pytest.raises(UnknownPolicyError, match="valid names"):
        as_policy("not-a-policy")
    with pytest.raises(InvalidConfigError, match="not a policy config"):
        as_policy({"ops": []})
    with pytest.raises(InvalidConfigError, match="no crop op"):
        as_policy({"name": "empty", "ops": []})
    with pytest.raises(InvalidConfigError, match="AugmentationPolicy, got int"):
        as_policy(3)


def test_every_entry_point_builds_the_same_policy(digits_dataset):
    """ReinforcedTransform, AugmentTransform and reinforce read a policy argument the same way."""
    import hf_dr.generate.run as run
    from hf_dr import AugmentTransform, ReinforcedTransform
    from tests.data_utils import ProjectionTeacher, reinforce_in_memory

    config = create_policy("rrc", crop={"scale": (0.5, 1.0)}).config()
    table = reinforce_in_memory(digits_dataset.select(range(2)), as_policy(config), ProjectionTeacher(), 1, 3)
    assert ReinforcedTransform(table, policy=config, num_classes=10).policy.config() == config
    assert AugmentTransform(config).policy.config() == config
    assert run.as_policy is as_policy  # reinforce() resolves its policy argument with the same function


def test_a_policy_config_given_as_a_name_is_refused_naming_the_rebuild():
    """Before: create_policy({...}) failed with "TypeError: unhashable type: 'dict'"."""
    with pytest.raises(UnknownPolicyError, match="policy_from_config"):
        create_policy(create_policy("rrc").config())
