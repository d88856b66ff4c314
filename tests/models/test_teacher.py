"""Teachers: member specs, loading local weights exactly, ensembles, and the refusals."""

from __future__ import annotations

import json
import os

import pytest
import safetensors.torch
import torch

from hf_dr.errors import (
    ClassCountMismatchError,
    HfDrError,
    InvalidConfigError,
    TeacherError,
    WeightsFileError,
    WeightsNotFoundError,
)
from hf_dr.files import file_sha256
from hf_dr.models.teacher import (
    Member,
    MemberSpec,
    Teacher,
    ViewSpec,
    create_teacher,
    head_size,
    load_member,
    load_teacher_spec,
    state_dict_sha256,
)
from tests.utils_teacher import TEACHER_ARCH, save_teacher, save_teacher_dir, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("teachers"))


class TestMemberSpec:
    def test_string_forms(self, tmp_path):
        assert MemberSpec.parse("resnet50.a1_in1k") == MemberSpec("resnet50.a1_in1k")
        assert MemberSpec.parse("resnet18 = w/r18.safetensors") == MemberSpec("resnet18", weights="w/r18.safetensors")
        assert MemberSpec.parse("local-dir:some/dir") == MemberSpec("local-dir", weights="some/dir")
        assert MemberSpec.parse(str(tmp_path)) == MemberSpec("local-dir", weights=str(tmp_path))

    def test_dict_round_trip(self):
        spec = MemberSpec.parse({"arch": "resnet18", "weights": "a.safetensors", "input_size": [3, 64, 64]})
        assert spec.input_size == (3, 64, 64)
        assert MemberSpec.parse(spec.to_dict()) == spec
        assert str(spec) == "resnet18=a.safetensors"

    def test_unknown_field_is_refused(self):
        with pytest.raises(InvalidConfigError, match="accepts only"):
            MemberSpec.parse({"arch": "resnet18", "wieghts": "a.safetensors"})

    def test_spec_file(self, tmp_path):
        path = tmp_path / "teacher.json"
        path.write_text(json.dumps({"members": [{"arch": "resnet18", "weights": "a.safetensors"}, "resnet50"]}))
        assert load_teacher_spec(str(path)) == [MemberSpec("resnet18", "a.safetensors"), MemberSpec("resnet50")]

    def test_relative_weights_are_read_next_to_the_spec_file(self, tmp_path, monkeypatch):
        """Issue #14: a spec's relative weight paths resolved against the working directory, not the spec's folder."""
        folder = tmp_path / "teachers"
        folder.mkdir()
        (folder / "member.safetensors").write_bytes(b"weights")
        path = folder / "teacher.json"
        path.write_text(json.dumps([{"arch": "resnet18", "weights": "member.safetensors"}, "resnet50=elsewhere.pt"]))
        monkeypatch.chdir(tmp_path)  # not the spec's folder
        assert load_teacher_spec(str(path)) == [MemberSpec("resnet18", str(folder / "member.safetensors")),
                                                MemberSpec("resnet50", "elsewhere.pt")]  # nothing there: as given

    def test_missing_spec_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_teacher_spec(str(tmp_path / "nope.json"))


class TestLoading:
    def test_local_safetensors_load_exactly_with_the_stored_head(self, weights_dir):
        # timm's default head is 1000 classes: the head size must come from the file or the head is reset
        spec = save_teacher(weights_dir, seed=0, num_classes=10)
        assert head_size(TEACHER_ARCH, spec["weights"]) == 10
        member = load_member(spec)
        assert member.num_classes == 10
        assert member.sha256 == state_dict_sha256(tiny_model(seed=0))
        assert member.view == ViewSpec(3, 32, 32, "bilinear")
        assert not member.model.training

    def test_data_config_overrides(self, weights_dir):
        spec = {**save_teacher(weights_dir, seed=0), "input_size": [3, 24, 24], "interpolation": "bicubic",
                "mean": [0.1, 0.2, 0.3]}
        member = load_member(spec)
        assert member.view == ViewSpec(3, 24, 24, "bicubic")
        assert tuple(member.data_config["mean"]) == (0.1, 0.2, 0.3)

    def test_save_for_hf_directory(self, tmp_path):
        directory = save_teacher_dir(str(tmp_path / "teacher"), seed=4)
        member = load_member(f"local-dir:{directory}")
        assert member.sha256 == state_dict_sha256(tiny_model(seed=4))
        assert member.view.height == 32
        assert load_member(directory).sha256 == member.sha256

    def test_missing_weights_name_the_path(self, tmp_path):
        path = str(tmp_path / "missing.safetensors")
        with pytest.raises(WeightsNotFoundError, match="missing.safetensors") as info:
            load_member(f"{TEACHER_ARCH}={path}")
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, HfDrError)

    def test_weights_of_another_architecture(self, weights_dir):
        spec = save_teacher(weights_dir, seed=0)
        with pytest.raises(TeacherError, match="could not build teacher member"):
            load_member({**spec, "arch": "test_efficientnet"})

    def test_hash_is_stable_and_sensitive(self):
        model = tiny_model(seed=0)
        assert state_dict_sha256(model) == state_dict_sha256(tiny_model(seed=0))
        with torch.no_grad():
            model.get_classifier().bias[0] += 1e-3
        assert state_dict_sha256(model) != state_dict_sha256(tiny_model(seed=0))


class TestEnsemble:
    def test_averages_member_probabilities_each_at_its_own_view(self, weights_dir):
        small = {**save_teacher(weights_dir, seed=1), "input_size": [3, 24, 24], "mean": [0.2, 0.3, 0.4]}
        teacher = create_teacher([save_teacher(weights_dir, seed=0), small], num_classes=10)
        assert teacher.views == [ViewSpec(3, 32, 32, "bilinear"), ViewSpec(3, 24, 24, "bilinear")]
        views = [torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8),
                 torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8)]
        with torch.inference_mode():
            probs = teacher(views)
            expected = [m.model(_normalize(v, m.data_config)).softmax(-1)
                        for m, v in zip(teacher.members, views, strict=True)]
        torch.testing.assert_close(probs, (expected[0] + expected[1]) / 2)
        torch.testing.assert_close(probs.sum(-1), torch.ones(4))

    def test_members_with_equal_data_configs_share_a_view(self, weights_dir):
        teacher = create_teacher([save_teacher(weights_dir, seed=0), save_teacher(weights_dir, seed=1)])
        assert len(teacher.views) == 1 and len(teacher.members) == 2

    def test_identical_weights_are_refused(self, weights_dir, tmp_path):
        spec = save_teacher(weights_dir, seed=0)
        copy = str(tmp_path / "copy.safetensors")
        safetensors.torch.save_file(safetensors.torch.load_file(spec["weights"]), copy)
        with pytest.raises(TeacherError, match="identical weights") as info:
            create_teacher([spec, f"{TEACHER_ARCH}={copy}"])
        assert "copy.safetensors" in str(info.value) and os.path.basename(spec["weights"]) in str(info.value)

    def test_class_count_mismatch(self, weights_dir):
        with pytest.raises(ClassCountMismatchError, match="predicts 7 classes .* have 10"):
            create_teacher(save_teacher(weights_dir, seed=0, num_classes=7), num_classes=10)

    def test_members_predicting_different_class_counts(self, weights_dir):
        specs = [save_teacher(weights_dir, seed=0, num_classes=10), save_teacher(weights_dir, seed=1, num_classes=7)]
        with pytest.raises(TeacherError, match="different class counts"):
            create_teacher(specs)

    def test_precision_and_channels_last(self, weights_dir):
        spec = save_teacher(weights_dir, seed=0)
        views = [torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)]
        with torch.inference_mode():
            reference = create_teacher(spec)(views)
            torch.testing.assert_close(create_teacher(spec, channels_last=True)(views), reference)
            torch.testing.assert_close(create_teacher(spec, precision="bf16")(views), reference, atol=0.1, rtol=0)
        with pytest.raises(InvalidConfigError, match="precision"):
            Teacher([load_member(spec)], precision="int8")


def _normalize(images: torch.Tensor, data_config: dict) -> torch.Tensor:
    mean = torch.tensor(data_config["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"]).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def test_hub_model_with_another_class_count_is_refused():
    with pytest.raises(TeacherError, match="random one"):
        load_member({"arch": "resnet18.a1_in1k", "num_classes": 10})


class TestWeightFiles:
    """Unreadable or ill-fitting weight files end in one line naming the file, tensors and shapes; members record
    their files for a finished run's rerun check."""

    @pytest.mark.parametrize("damage", ["not_safetensors", "truncated", "pth_garbage", "pth_truncated"])
    @pytest.mark.parametrize("num_classes", [None, 10])  # with a class count, the head is not read first
    def test_an_unreadable_weights_file_is_named(self, damage, num_classes, weights_dir, tmp_path):
        spec = save_teacher(weights_dir, seed=0)
        data = open(spec["weights"], "rb").read()
        if damage.startswith("pth"):
            torch.save(safetensors.torch.load_file(spec["weights"]), str(tmp_path / "good.pth"))
            data = open(tmp_path / "good.pth", "rb").read()
        path = str(tmp_path / ("weights.pth" if damage.startswith("pth") else "weights.safetensors"))
        content = {"not_safetensors": b"<html>404 not found</html>", "truncated": data[: len(data) // 2],
                   "pth_garbage": b"not a pickle at all", "pth_truncated": data[: len(data) // 2]}[damage]
        open(path, "wb").write(content)
        with pytest.raises(WeightsFileError) as info:
            load_member({**spec, "weights": path, "num_classes": num_classes})
        message = str(info.value)
        assert isinstance(info.value, TeacherError) and "\n" not in message
        assert message.startswith(path) and "truncated or in another format" in message

    def test_weights_of_other_shapes_name_every_tensor_and_both_shapes(self, weights_dir):
        spec = save_teacher(weights_dir, seed=0)
        shapes = {k: list(v.shape) for k, v in safetensors.torch.load_file(spec["weights"]).items()}
        with pytest.raises(WeightsFileError) as info:
            load_member({**spec, "num_classes": 7})  # the file's head predicts 10 classes
        message = str(info.value)
        assert "\n" not in message and spec["weights"] in message
        weight, bias = shapes["fc.weight"], shapes["fc.bias"]
        assert f"fc.weight is {weight} in the file but {[7, *weight[1:]]} in the model" in message
        assert f"fc.bias is {bias} in the file but [7] in the model" in message

    def test_missing_tensors_are_named(self, weights_dir, tmp_path):
        spec = save_teacher(weights_dir, seed=0)
        state = safetensors.torch.load_file(spec["weights"])
        del state["fc.bias"]
        path = str(tmp_path / "no-bias.safetensors")
        safetensors.torch.save_file(state, path)
        with pytest.raises(WeightsFileError, match=r"1 tensors missing from the file \(fc.bias\)"):
            load_member({**spec, "weights": path})

    def test_members_record_their_weight_files(self, weights_dir, tmp_path):
        spec = save_teacher(weights_dir, seed=0)
        (record,) = load_member(spec).describe()["weights_files"]
        assert record["name"] == os.path.basename(spec["weights"])
        assert (record["num_bytes"], record["sha256"]) == (os.path.getsize(spec["weights"]),
                                                           file_sha256(spec["weights"]))
        assert record["mtime_ns"] == os.stat(spec["weights"]).st_mtime_ns
        directory = save_teacher_dir(str(tmp_path / "saved"))
        records = load_member(f"local-dir:{directory}").describe()["weights_files"]
        assert [r["name"] for r in records] == sorted(os.listdir(directory))
        assert "weights_files" not in Member(MemberSpec("x"), tiny_model(), {}, "0" * 64).describe()


def test_the_projects_own_networks_are_teachers_in_a_fresh_process(tmp_path):
    """Bug (issue 14): `--teacher hf_dr_cnn_fc=member.safetensors` failed with `Unknown model (hf_dr_cnn_fc)` unless
    something had imported the module registering the network."""
    import subprocess
    import sys

    from safetensors.torch import save_file

    from hf_dr.models.networks import hf_dr_cnn_fc

    path = tmp_path / "member.safetensors"
    save_file({k: v.contiguous() for k, v in hf_dr_cnn_fc(num_classes=10, in_chans=1).state_dict().items()}, path)
    code = ("import sys; from hf_dr.models.teacher import create_teacher; "
            "assert 'hf_dr.models.networks' not in sys.modules; "
            f"print(create_teacher('hf_dr_cnn_fc={path}').num_classes)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr[-2000:]
