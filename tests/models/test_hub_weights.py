"""Teacher members that are Hub model repos (issue 24): ``hf-hub:ORG/NAME@REVISION`` specs, pinned to the commit they
name when loaded, the commit recorded; a later commit of the repo does not change what a pinned member loads."""

from __future__ import annotations

import logging
import re

import pytest
from huggingface_hub import HfApi

from hf_dr.errors import HubNotFoundError, InvalidConfigError, TeacherError
from hf_dr.models.teacher import MemberSpec, create_teacher, load_member, state_dict_sha256
from hf_dr.models.weights import changed_weights
from tests.utils_hub import server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_hub_teacher import push_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


def test_hub_member_specs_parse_to_one_form():
    assert MemberSpec.parse("hf-hub:me/t@v1") == MemberSpec.parse({"arch": "hf-hub:me/t", "revision": "v1"})
    spec = MemberSpec.parse("hf_hub:me/t")  # timm's other spelling
    assert (spec.arch, spec.revision, spec.hub_id) == ("hf-hub:me/t", None, "me/t")
    assert MemberSpec.parse("hf-hub:me/t@v1").to_dict() == {"arch": "hf-hub:me/t", "revision": "v1"}
    assert MemberSpec.parse("resnet18").hub_id is None


@pytest.mark.parametrize(("spec", "message"), [
    ({"arch": "resnet18", "revision": "v1"}, "'revision' ('v1') pins a Hub model repo"),
    ("hf-hub:me/t=weights.safetensors", "also names local weights 'weights.safetensors'"),
    ({"arch": "hf-hub:me/t@v1", "revision": "v2"}, "names revision 'v1' and also revision='v2'"),
    ("hf-hub:me", "a Hub member is 'hf-hub:ORG/NAME'"),
])
def test_bad_hub_specs_are_refused_naming_the_fix(spec, message):
    with pytest.raises(InvalidConfigError, match=re.escape(message)):
        MemberSpec.parse(spec)


@pytest.fixture(scope="module")
def teacher_repo(hub, tmp_path_factory):
    """A teacher repo with two commits of other weights; the first is tagged ``v1``."""
    folder = tmp_path_factory.mktemp("hub-teacher")
    repo_id = unique_repo("teacher")
    first = push_teacher(repo_id, str(folder / "first"), seed=0)
    HfApi().create_tag(repo_id, tag="v1", revision=first)
    second = push_teacher(repo_id, str(folder / "second"), seed=1)
    return repo_id, first, second


def test_a_hub_member_is_pinned_to_the_commit_its_revision_names(teacher_repo, caplog):
    repo_id, first, second = teacher_repo
    caplog.set_level(logging.INFO, logger="hf_dr")
    latest = load_member(f"hf-hub:{repo_id}")
    assert latest.spec.revision == second and latest.describe()["spec"] == {"arch": f"hf-hub:{repo_id}",
                                                                          "revision": second}
    assert "the default branch" in caplog.text and f"hf-hub:{repo_id}@{second}" in caplog.text
    tagged = load_member({"arch": f"hf-hub:{repo_id}", "revision": "v1"})
    assert tagged.spec.revision == first
    assert tagged.sha256 != latest.sha256  # the second commit holds other weights
    assert tagged.view.channels == 1 and tagged.num_classes == 10  # the repo's config.json: one channel, 10 classes


def test_a_recorded_commit_still_loads_the_old_weights(teacher_repo):
    repo_id, first, second = teacher_repo
    recorded = load_member(f"hf-hub:{repo_id}@v1").describe()  # what a run made with v1 records
    again = load_member(recorded["spec"])  # after the repo moved on (the second commit)
    assert recorded["spec"]["revision"] == first != second
    assert again.sha256 == recorded["sha256"]
    assert state_dict_sha256(load_member(f"hf-hub:{repo_id}").model) != recorded["sha256"]


def test_a_rerun_loads_a_hub_member_unless_its_revision_is_the_recorded_commit(teacher_repo):
    repo_id, first, _ = teacher_repo
    recorded = [load_member(f"hf-hub:{repo_id}@v1").describe()]
    assert changed_weights([{"spec": {"arch": f"hf-hub:{repo_id}", "revision": first}}], recorded) == []
    assert changed_weights([{"spec": {"arch": f"hf-hub:{repo_id}", "revision": "v1"}}], recorded) == [
        f"hf-hub:{repo_id}@v1"]
    assert changed_weights([{"spec": {"arch": f"hf-hub:{repo_id}"}}], recorded) == [f"hf-hub:{repo_id}"]


def test_unknown_repos_and_revisions_are_named_with_the_fix(teacher_repo):
    repo_id, _, _ = teacher_repo
    with pytest.raises(HubNotFoundError, match=rf"revision 'v9' does not exist in the model repo '{repo_id}'.*'v1'"):
        create_teacher(f"hf-hub:{repo_id}@v9")
    with pytest.raises(HubNotFoundError, match=r"teacher member 'hf-hub:tester/absent@v1': no model repo "
                                               r"'tester/absent'.*hf-dr push-model"):
        load_member("hf-hub:tester/absent@v1")


def test_a_hub_member_takes_spec_overrides_and_a_pinned_one_loads_offline(teacher_repo, hub, monkeypatch):
    from huggingface_hub import constants

    repo_id, first, _ = teacher_repo
    member = load_member({"arch": f"hf-hub:{repo_id}", "revision": first, "interpolation": "bicubic",
                          "temperature": 0.5})
    assert member.view.interpolation == "bicubic" and member.describe()["spec"]["temperature"] == 0.5
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    asked = len(hub.requests)
    assert load_member(f"hf-hub:{repo_id}@{first}").sha256 == member.sha256
    assert len(hub.requests) == asked  # from the cache: no Hub call
    with pytest.raises(HubNotFoundError, match=r"revision 'v1' of the model repo .* cannot be resolved to a commit "
                                               r"offline \(HF_HUB_OFFLINE=1\)\. Pin the commit"):
        load_member(f"hf-hub:{repo_id}@v1")


def test_a_repo_that_holds_no_timm_model_is_named_with_its_commit(hub):
    repo_id = unique_repo("not-a-model")
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"# not a model\n", path_in_repo="README.md", repo_id=repo_id)
    commit = api.model_info(repo_id).sha
    with pytest.raises(TeacherError, match=rf"could not build teacher member 'hf-hub:{repo_id}@{commit}': .*holds a "
                                           r"timm model, as `hf-dr push-model` writes"):
        load_member(f"hf-hub:{repo_id}")
