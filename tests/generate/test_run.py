"""``reinforce`` end to end on real digits with small local teachers: replay equals the stored top-k, the layout,
resume, corruption, conflicts and every refused input (with nothing half-written left behind)."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import os

import datasets
import pyarrow.parquet as pq
import pytest
import safetensors.torch
import torch

import hf_dr.generate.run
from hf_dr import ReinforcedTransform, create_policy
from hf_dr.cli import main as cli_main
from hf_dr.data.description import read_description
from hf_dr.data.keys import content_key
from hf_dr.errors import (
    ClassCountMismatchError,
    ConfigConflictError,
    CorruptShardError,
    DataMismatchError,
    IncompleteRunError,
    InvalidConfigError,
    MissingColumnError,
    TeacherError,
    WeightsNotFoundError,
)
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.render import policy_for_view
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import DONE_SUFFIX, VERIFIED_FILE, verify_run
from hf_dr.models.teacher import create_teacher
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

NUM_SAMPLES, TOPK, SHARD_SIZE = 3, 5, 16
FP16_TOLERANCE = 2e-3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return digits_dataset(40)


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[dict]:
    """Two members with different views: 32 px bilinear, and 24 px bicubic with other normalisation."""
    directory = str(tmp_path_factory.mktemp("teachers"))
    other = {"input_size": [3, 24, 24], "interpolation": "bicubic", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]}
    return [save_teacher(directory, seed=0), {**save_teacher(directory, seed=1), **other}]


def _run(dataset, teacher, output_dir, **options) -> str:
    arguments = {"policy": "rrc+ra_re", "num_samples": NUM_SAMPLES, "topk": TOPK, "seed": 0}
    arguments.update({k: options.pop(k) for k in list(arguments) if k in options})
    options = {"key_column": "key", "shard_size": SHARD_SIZE, "batch_size": 16, "num_workers": 0,
               "progress": False, **options}
    return reinforce(dataset, teacher, output_dir=str(output_dir), **arguments, **options)


@pytest.fixture(scope="module")
def run_dir(digits, members, tmp_path_factory) -> str:
    return _run(digits, members, tmp_path_factory.mktemp("run") / "out")


def _files(directory: str) -> list[str]:
    """What a run wrote (not the stamp of the shards a load verified)."""
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, _, names in os.walk(directory) for name in names if name != VERIFIED_FILE)


def _same_tree(a: str, b: str) -> None:
    """The same files with the same bytes; ``.done`` records equal but for the file identity (inode, times), which is
    the machine's, not the run's."""
    assert _files(a) == _files(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, _files(a), shallow=False)
    assert not errors, errors
    for name in mismatch:
        assert name.endswith(DONE_SUFFIX), mismatch
        first, second = ({k: v for k, v in json.load(open(os.path.join(root, name))).items() if k != "identity"}
                         for root in (a, b))
        assert first == second, name


def _check_topk(probs: torch.Tensor, record: dict) -> None:
    """The stored ids are a top-k of ``probs`` and the stored probabilities equal them, within fp16 rounding."""
    ids, stored = torch.tensor(record["ids"]), torch.tensor(record["probs"], dtype=torch.float32)
    torch.testing.assert_close(probs[ids], stored, atol=FP16_TOLERANCE, rtol=0)
    rest = torch.ones_like(probs, dtype=torch.bool)
    rest[ids] = False
    assert probs[rest].max() <= stored.min() + FP16_TOLERANCE
    assert torch.all(stored[:-1] >= stored[1:])


class TestReplayMatchesTeacher:
    def test_every_record_replays_to_the_stored_ensemble_topk(self, digits, members, run_dir):
        reinforcements = load_run_records(run_dir, keep_in_memory=True)
        config = json.load(open(os.path.join(run_dir, "reinforce_config.json")))
        teacher = create_teacher(members)
        policy = create_policy("rrc+ra_re")
        transforms = [  # each member's own size, interpolation and normalisation
            ReinforcedTransform(reinforcements, policy_for_view(policy, m.view.interpolation), size=m.view.height,
                                mean=m.data_config["mean"], std=m.data_config["std"])
            for m in teacher.members
        ]
        assert config["policy"] == policy.config()
        checked = 0
        with torch.inference_mode():
            for row in digits:
                for index in range(NUM_SAMPLES):
                    probs = sum(m.model(t.replay(row["image"], row["key"], index)[0][None]).softmax(-1)[0]
                                for m, t in zip(teacher.members, transforms, strict=True)) / 2
                    _check_topk(probs, transforms[0].record(row["key"], index))
                    checked += 1
        assert checked == len(digits) * NUM_SAMPLES

    def test_mixing_records_replay_with_their_partner(self, digits, members, tmp_path):
        subset = digits.select(range(24))
        out = _run(subset, members[:1], tmp_path / "mix", policy="rrc+mix", num_samples=4)
        reinforcements = load_run_records(out, keep_in_memory=True)
        transform = ReinforcedTransform(reinforcements, "rrc+mix", size=32, mean=(0.5,) * 3, std=(0.5,) * 3,
                                        images=subset)
        model = create_teacher(members[:1]).members[0].model
        modes = []
        with torch.inference_mode():
            for row in subset:
                for index in range(4):
                    record = transform.record(row["key"], index)
                    modes.append(record["params"]["mixing"]["mode"])
                    pixels = transform.replay(row["image"], row["key"], index)[0]
                    _check_topk(model(pixels[None]).softmax(-1)[0], record)
        assert set(modes) == {1, 2}  # MixUp and CutMix with p=0.5 each: every record mixes


class TestOutput:
    def test_rows_layout_and_features(self, digits, run_dir):
        assert _files(run_dir) == ["manifest.json", "reinforce_config.json"] + [
            f"shards/reinforcements-0000{i}.parquet{suffix}" for i in range(3) for suffix in ("", ".done")]
        reinforcements = load_run_records(run_dir, keep_in_memory=True)
        assert reinforcements.column_names == ["key", "label", "image_digest", "reinforcements"]
        assert reinforcements["key"][:] == digits["key"][:] and reinforcements["label"][:] == digits["label"][:]
        assert reinforcements.features["label"] == digits.features["label"]
        assert all(len(records) == NUM_SAMPLES for records in reinforcements["reinforcements"])
        parquet = datasets.load_dataset("parquet", data_files=os.path.join(run_dir, "shards", "*.parquet"),
                                        split="train")
        assert parquet.features == reinforcements.features
        manifest = verify_run(run_dir)
        assert manifest["num_rows"] == len(digits) and [s["num_rows"] for s in manifest["shards"]] == [16, 16, 8]

    def test_config_records_the_run(self, run_dir, members):
        config = ReinforceConfig.load(run_dir)
        assert (config.num_samples, config.topk, config.seed, config.num_classes) == (NUM_SAMPLES, TOPK, 0, 10)
        assert [m["spec"]["weights"] for m in config.teacher] == [m["weights"] for m in members]
        assert all(len(m["sha256"]) == 64 for m in config.teacher)
        assert config.teacher[1]["data_config"]["input_size"] == [3, 24, 24]
        assert {"torch", "timm", "datasets", "hf_dr"} <= set(config.versions)
        assert config.dataset["num_rows"] == 40 and len(config.dataset["keys_sha256"]) == 64

    def test_independent_of_workers_batch_size_and_threads(self, digits, members, tmp_path):
        subset = digits.select(range(SHARD_SIZE + 4))
        reference = _run(subset, members, tmp_path / "reference")
        torch.set_num_threads(2)
        try:
            _same_tree(reference, _run(subset, members, tmp_path / "other", num_workers=2, batch_size=7))
        finally:
            torch.set_num_threads(1)

    def test_content_keys_without_a_key_column(self, members, tmp_path):
        unkeyed = digits_dataset(12, with_keys=False)
        out = _run(unkeyed, members[:1], tmp_path / "ck", key_column=None)
        cells = unkeyed.cast_column("image", datasets.Image(decode=False))["image"][:]
        assert load_run_records(out, keep_in_memory=True)["key"][:] == [content_key(c) for c in cells]


class TestResume:
    def test_finished_run_skips_the_teacher(self, digits, members, run_dir, monkeypatch):
        before = {f: os.path.getmtime(os.path.join(run_dir, f)) for f in _files(run_dir) if f.startswith("shards")}
        monkeypatch.setattr(hf_dr.generate.run, "create_teacher", _no_teacher)
        _run(digits, members, run_dir)
        assert before == {f: os.path.getmtime(os.path.join(run_dir, f)) for f in before}

    def test_missing_and_corrupt_shards_are_regenerated(self, digits, members, run_dir, tmp_path):
        copy = tmp_path / "copy"
        _run(digits, members, copy)
        os.remove(copy / "shards/reinforcements-00001.parquet.done")  # killed between the shard and its record
        shard = copy / "shards/reinforcements-00002.parquet"
        shard.write_bytes(shard.read_bytes()[:100])  # truncated
        with pytest.raises(CorruptShardError, match="reinforcements-00002.parquet"):
            load_run_records(str(copy))
        (copy / "shards/.reinforcements-00000.parquet.tmp-123").write_bytes(b"partial")
        _run(digits, members, copy)
        _same_tree(run_dir, str(copy))

    def test_a_different_config_is_refused(self, digits, members, run_dir):
        for change, field in [({"seed": 1}, "seed"), ({"num_samples": 2}, "num_samples"),
                              ({"policy": "rrc"}, "policy"), ({"shard_size": 8}, "shard_size")]:
            with pytest.raises(ConfigConflictError, match=field) as info:
                _run(digits, members, run_dir, **change)
            assert "--overwrite" in str(info.value) and "--output-dir" in str(info.value)
        with pytest.raises(ConfigConflictError, match="num_rows"):
            _run(digits.select(range(30)), members, run_dir)

    def test_changed_teacher_weights_are_refused(self, digits, members, tmp_path):
        out = _run(digits.select(range(8)), members[:1], tmp_path / "run", shard_size=4)
        os.remove(os.path.join(out, "shards/reinforcements-00001.parquet.done"))
        state = safetensors.torch.load_file(members[0]["weights"])
        state["fc.bias"] = state["fc.bias"] + 1
        changed = str(tmp_path / "changed.safetensors")
        safetensors.torch.save_file(state, changed)
        with pytest.raises(ConfigConflictError, match="sha256"):
            _run(digits.select(range(8)), [{**members[0], "weights": changed}], out, shard_size=4)

    @pytest.mark.parametrize("finished", [False, True])
    def test_another_source_with_the_same_keys_is_refused(self, finished, digits, members, tmp_path):
        """A rerun given other images under the run's keys (another revision or copy of the source) is refused
        before anything is written: shards from two sources under a config naming the first would be silently
        wrong. The original source still resumes, and --overwrite starts over from the new one."""
        original = digits.select(range(8))
        out = _run(original, members[:1], tmp_path / "run", shard_size=4, source={"id": "old/digits"})
        if not finished:
            os.remove(os.path.join(out, "shards/reinforcements-00001.parquet.done"))
        other = digits.select(range(8, 16)).remove_columns("key").add_column("key", original["key"][:])
        before = {f: os.path.getmtime(os.path.join(out, f)) for f in _files(out)}
        with pytest.raises(ConfigConflictError) as info:
            _run(other, members[:1], out, shard_size=4, source={"id": "new/digits"})
        message = str(info.value)
        assert "another source" in message and "row 0, key 'digit-00000'" in message and "\n" not in message
        assert "'old/digits'" in message and "'new/digits'" in message and "--overwrite" in message
        assert before == {f: os.path.getmtime(os.path.join(out, f)) for f in _files(out)}
        _run(original, members[:1], out, shard_size=4, source={"id": "old/digits"})
        assert verify_run(out)["num_rows"] == 8
        _run(other, members[:1], out, shard_size=4, overwrite=True)
        assert load_run_records(out, keep_in_memory=True)["key"][:] == original["key"][:]

    def test_a_run_with_no_finished_shard_refuses_another_recorded_source(self, digits, members, tmp_path):
        """Killed before its first shard: nothing to compare, but the config would name the wrong source."""
        out = _run(digits.select(range(8)), members[:1], tmp_path / "run", shard_size=4, source={"id": "old/digits"})
        for name in ("manifest.json", "shards/reinforcements-00000.parquet.done",
                     "shards/reinforcements-00001.parquet.done"):
            os.remove(os.path.join(out, name))
        with pytest.raises(ConfigConflictError, match=r"started from another source: it was started from \{'id': "
                                                      r"'old/digits'\}, this call reads \{'id': 'new/digits'\}"):
            _run(digits.select(range(8)), members[:1], out, shard_size=4, source={"id": "new/digits"})
        _run(digits.select(range(8)), members[:1], out, shard_size=4, source={"id": "old/digits"})

    def test_overwrite_starts_over(self, digits, members, tmp_path):
        out = _run(digits.select(range(8)), members[:1], tmp_path / "run")
        _run(digits.select(range(8)), members[:1], out, seed=5, overwrite=True)
        assert ReinforceConfig.load(out).seed == 5 and verify_run(out)["num_rows"] == 8


class TestRefusals:
    @pytest.mark.parametrize("option, value", [("image_column", "img"), ("label_column", "target"),
                                               ("key_column", "id")])
    def test_missing_column_lists_the_columns(self, option, value, digits, members, tmp_path):
        with pytest.raises(MissingColumnError, match=rf"no column '{value}' .*\['image', 'label', 'key'\]"):
            _run(digits, members[:1], tmp_path / "out", **{option: value})
        assert not os.path.exists(tmp_path / "out")

    def test_teacher_with_another_class_count(self, digits, tmp_path):
        teacher = [save_teacher(str(tmp_path / "w"), seed=0, num_classes=7)]
        with pytest.raises(ClassCountMismatchError, match="predicts 7 classes .* labels have 10"):
            _run(digits, teacher, tmp_path / "out")
        assert not os.path.exists(tmp_path / "out")

    def test_ensemble_of_identical_weights(self, digits, members, tmp_path):
        with pytest.raises(TeacherError, match="identical weights"):
            _run(digits, [members[0], {**members[0], "input_size": [3, 28, 28]}], tmp_path / "out")
        assert not os.path.exists(tmp_path / "out")

    def test_missing_weights(self, digits, members, tmp_path):
        with pytest.raises(WeightsNotFoundError, match="nope.safetensors"):
            _run(digits, [{**members[0], "weights": str(tmp_path / "nope.safetensors")}], tmp_path / "out")
        assert not os.path.exists(tmp_path / "out")

    def test_duplicate_keys(self, digits, members, tmp_path):
        with pytest.raises(DataMismatchError, match="rows 0 and 1 share the key 'digit-00000'"):
            _run(digits.select([0, 0, 1]), members[:1], tmp_path / "out")
        assert not os.path.exists(tmp_path / "out")

    @pytest.mark.parametrize("option, value", [("topk", 11), ("num_samples", 0), ("shard_size", 0), ("seed", -1),
                                               ("seed", 1.5)])
    def test_bad_numbers(self, option, value, digits, members, tmp_path):
        with pytest.raises(InvalidConfigError, match=option):
            _run(digits, members[:1], tmp_path / "out", **{option: value})
        assert not os.path.exists(tmp_path / "out")

    def test_unfinished_run_is_not_a_result(self, digits, members, tmp_path):
        with pytest.raises(IncompleteRunError, match="no finished reinforcement run"):
            load_run_records(str(tmp_path / "nothing"))
        out = _run(digits.select(range(8)), members[:1], tmp_path / "run", shard_size=4)
        os.remove(os.path.join(out, "manifest.json"))
        with pytest.raises(IncompleteRunError, match="2 shard"):
            load_run_records(out)


    def test_a_manifest_short_of_the_planned_rows_is_refused(self, digits, members, tmp_path):
        """A manifest consistent in itself (its row total updated) that lists fewer shards than the run planned:
        the config's row count and shard size are the plan, so training cannot quietly use 4 of the 8 rows."""
        out = _run(digits.select(range(8)), members[:1], tmp_path / "run", shard_size=4)
        path = os.path.join(out, "manifest.json")
        manifest = json.load(open(path))
        manifest.update(shards=manifest["shards"][:1], num_rows=4)
        json.dump(manifest, open(path, "w"))
        for read in (verify_run, load_run_records):
            with pytest.raises(CorruptShardError, match=r"\(8 rows in shards of 4 by reinforce_config.json: 2 "
                                                        r"shards\): missing: shards/reinforcements-00001.parquet; "
                                                        r"num_rows 4, planned 8"):
                read(out)


class TestCommandLine:
    def test_reinforce_command(self, digits, members, run_dir, tmp_path, capsys):
        digits.to_parquet(str(tmp_path / "digits.parquet"))
        spec = tmp_path / "teacher.json"
        spec.write_text(json.dumps(members))
        arguments = ["reinforce", "--dataset", str(tmp_path / "digits.parquet"), "--teacher-spec", str(spec),
                     "--key-column", "key", "--num-samples", str(NUM_SAMPLES), "--topk", str(TOPK),
                     "--shard-size", str(SHARD_SIZE), "--num-workers", "0", "--batch-size", "16", "--no-progress"]
        assert cli_main([*arguments, "--output-dir", str(tmp_path / "cli")]) == 0
        for name in ["shards/reinforcements-00000.parquet", "shards/reinforcements-00002.parquet"]:
            library, command = pq.read_table(os.path.join(run_dir, name)), pq.read_table(tmp_path / "cli" / name)
            assert library.to_pylist() == command.to_pylist()  # the same records; the provenance differs:
            recorded = [read_description(datasets.Features.from_arrow_schema(t.schema)) for t in (library, command)]
            assert recorded[1].source["id"] == "digits.parquet" and recorded[0].source["id"] is None  # no local path
            assert dataclasses.replace(recorded[0], source={}) == dataclasses.replace(recorded[1], source={})
        assert cli_main([*arguments, "--output-dir", str(tmp_path / "cli"), "--seed", "3"]) == 1
        assert "different configuration" in capsys.readouterr().err

    def test_no_teacher(self, tmp_path, capsys):
        assert cli_main(["reinforce", "--dataset", "x", "--output-dir", str(tmp_path)]) == 1
        assert "--teacher" in capsys.readouterr().err


def _no_teacher(*args, **kwargs):
    raise AssertionError("the teacher was loaded although every shard was finished")


def test_policy_for_view_changes_only_the_crop_interpolation():
    policy = create_policy("rrc+ra_re")
    assert policy_for_view(policy, "bilinear") is policy
    bicubic = policy_for_view(policy, "bicubic").config()
    assert bicubic["ops"][0]["interpolation"] == "bicubic" and bicubic["ops"][1:] == policy.config()["ops"][1:]
    with pytest.raises(InvalidConfigError, match="lanczos"):
        policy_for_view(policy, "lanczos")


def test_shards_keep_the_features_metadata(run_dir):
    table = pq.read_table(os.path.join(run_dir, "shards/reinforcements-00000.parquet"))
    assert table.schema.metadata[b"huggingface"]


def test_load_source_reads_every_local_form(digits, tmp_path):
    from hf_dr.data.sources import load_source

    subset = digits.select(range(6))
    for row in subset:
        folder = tmp_path / "imagefolder" / str(row["label"])
        folder.mkdir(parents=True, exist_ok=True)
        row["image"].save(folder / f"{row['key']}.png")
    subset.save_to_disk(str(tmp_path / "saved"))
    subset.to_parquet(str(tmp_path / "digits.parquet"))
    imagefolder = load_source(str(tmp_path / "imagefolder"))
    assert len(imagefolder) == 6 and isinstance(imagefolder.features["label"], datasets.ClassLabel)
    for path in ("saved", "digits.parquet"):
        loaded = load_source(str(tmp_path / path))
        assert loaded["key"][:] == subset["key"][:] and loaded.features == subset.features
