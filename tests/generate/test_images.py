"""Real-world images end to end: a dataset mixing the modes real datasets hold (grayscale, RGB, CMYK JPEGs, 16-bit
PNGs, palettes, alpha) is reinforced in one image mode that the replay applies the same way, so every record replays
to the stored top-k, batches stack and nothing turns white; undecodable images stop a run naming the row, key and
file, or are skipped, recorded in the manifest and left out downstream, never dropped in silence."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import hf_dr.augment.functional as K
import hf_dr.errors as errors
from hf_dr import AugmentTransform, EvalTransform, ReinforcedTransform, create_model
from hf_dr.cli import main as cli_main
from hf_dr.data.description import read_description, with_description
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.render import fit_channels
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import PLAN_FIELDS, ReinforceConfig
from hf_dr.generate.storage import verify_run
from hf_dr.models.checkpoints import save_checkpoint
from hf_dr.models.teacher import create_teacher
from tests.generate.test_run import _check_topk, _files, _same_tree
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_SAMPLES, TOPK, SIZE = 3, 5, 32
MODES = ["RGB", "L", "CMYK", "I;16", "P", "RGBA", "LA", "1"]
BAD_ROWS = {5: "truncated", 13: "garbage", 17: "damaged"}
SOURCE = {"id": "tester/photos", "split": "train"}


def _crops(photo_images, count: int) -> list[Image.Image]:
    """``count`` different 32 x 32 RGB crops of the two real photos."""
    crops = []
    for i in range(count):
        photo = photo_images[i % 2]
        left, top = 37 * i % (photo.width - 96), 23 * i % (photo.height - 96)
        crops.append(photo.crop((left, top, left + 96, top + 96)).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    return crops


def sixteen_bit(image: Image.Image) -> Image.Image:
    """``image``'s gray on the 16-bit scale (``v * 257 + 100``: 16-bit data whose 8-bit rounding is ``v``)."""
    return Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257 + 100)


def _encoded(image: Image.Image, mode: str, name: str) -> dict:
    """``image`` stored as files of that mode are: CMYK as a JPEG, 16-bit gray, palettes and alpha as PNGs."""
    buffer = io.BytesIO()
    if mode == "CMYK":
        image.convert("CMYK").save(buffer, "JPEG", quality=95)
    elif mode == "I;16":
        sixteen_bit(image).save(buffer, "PNG")
    elif mode == "P":
        image.quantize(32).save(buffer, "PNG", transparency=0)
    elif mode in ("RGBA", "LA"):
        with_alpha = image.convert(mode[0] if mode == "LA" else "RGB")
        with_alpha.putalpha(Image.linear_gradient("L").resize(image.size))
        with_alpha.save(buffer, "PNG")
    else:
        image.convert(mode).save(buffer, "PNG")
    return {"bytes": buffer.getvalue(), "path": f"{name}.{'jpg' if mode == 'CMYK' else 'png'}"}


def _dataset(cells: list, keys: list[str]) -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10),
                                  "key": datasets.Value("string")})
    return datasets.Dataset.from_dict({"image": cells, "label": [i % 10 for i in range(len(keys))], "key": keys},
                                      features=features)


@pytest.fixture(scope="module")
def mixed(photo_images) -> datasets.Dataset:
    """16 real photo crops, two of each mode in :data:`MODES`."""
    keys = [f"photo-{i:02d}-{MODES[i % len(MODES)]}" for i in range(16)]
    crops = _crops(photo_images, 16)
    return _dataset([_encoded(c, MODES[i % len(MODES)], k) for i, (c, k) in enumerate(zip(crops, keys, strict=True))],
                    keys)


@pytest.fixture(scope="module")
def bad(photo_images) -> datasets.Dataset:
    """20 real photo crops as JPEGs, of which row 5 is truncated, row 13 is not an image and row 17 is a PNG with a
    damaged pixel stream (its header reads)."""
    keys, cells = [f"photo-{i:02d}" for i in range(20)], []
    for i, crop in enumerate(_crops(photo_images, 20)):
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=90)
        cells.append({"bytes": _bad_bytes(crop, BAD_ROWS[i]) if i in BAD_ROWS else buffer.getvalue(),
                      "path": f"{keys[i]}.jpg"})
    return _dataset(cells, keys)


def _bad_bytes(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG" if kind == "damaged" else "JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    if kind == "truncated":
        return bytes(data[: len(data) // 2])
    if kind == "garbage":
        return b"not an image at all"
    start = data.index(b"IDAT") + 20
    data[start : start + 20] = bytes(20)
    return bytes(data)


@pytest.fixture(scope="module")
def rgb_teacher(tmp_path_factory) -> list[dict]:
    return [save_teacher(str(tmp_path_factory.mktemp("rgb-teacher")), seed=0)]


@pytest.fixture(scope="module")
def gray_teacher(tmp_path_factory) -> list[str]:
    """A one-channel ``hf_dr_cnn_tiny`` (28 px) whose spec names no input size: its views tell the channels."""
    torch.manual_seed(0)
    model = create_model("hf_dr_cnn_tiny", num_classes=10)
    with torch.no_grad():
        model.get_classifier().weight.mul_(30.0)  # spread out probabilities, so the top-k check is sharp
    path = save_checkpoint(model, tmp_path_factory.mktemp("gray-teacher") / "tiny.safetensors")
    return [f"hf_dr_cnn_tiny={path}"]


def _run(dataset, teacher, output_dir, **options) -> str:
    options = {"policy": "rrc+ra_re", "num_samples": NUM_SAMPLES, "topk": TOPK, "seed": 0, "key_column": "key",
               "shard_size": 8, "batch_size": 8, "num_workers": 0, "progress": False, "source": SOURCE, **options}
    return reinforce(dataset, teacher, output_dir=str(output_dir), **options)


@pytest.fixture(scope="module")
def mixed_run(mixed, rgb_teacher, tmp_path_factory) -> str:
    return _run(mixed, rgb_teacher, tmp_path_factory.mktemp("mixed") / "out")


@pytest.fixture(scope="module")
def skip_run(bad, rgb_teacher, tmp_path_factory) -> str:
    return _run(bad, rgb_teacher, tmp_path_factory.mktemp("skip") / "out", on_bad_image="skip", shard_size=4)


def _replays_match_the_teacher(dataset, teacher_specs, run_dir, skipped=()) -> int:
    """Checks every record of every row against the teacher's output on the replayed view; returns the count."""
    teacher = create_teacher(teacher_specs)
    member = teacher.members[0]
    transform = ReinforcedTransform(load_run_records(run_dir, keep_in_memory=True), size=member.view.height,
                                    mean=member.data_config["mean"], std=member.data_config["std"], images=dataset)
    checked = 0
    with torch.inference_mode():
        for row in dataset.select([i for i, key in enumerate(dataset["key"]) if key not in skipped]):
            for index in range(NUM_SAMPLES):
                pixels = transform.replay(row["image"], row["key"], index)[0]
                _check_topk(member.model(pixels[None]).softmax(-1)[0], transform.record(row["key"], index))
                checked += 1
    return checked


# -- 1. one image mode per run -------------------------------------------------------------------------------------
class TestImageModes:
    def test_every_record_of_mixed_modes_replays_to_the_stored_topk(self, mixed, rgb_teacher, mixed_run):
        assert {Image.open(io.BytesIO(c["bytes"])).mode for c in mixed.cast_column(
            "image", datasets.Image(decode=False))["image"]} == set(MODES)
        assert _replays_match_the_teacher(mixed, rgb_teacher, mixed_run) == len(mixed) * NUM_SAMPLES

    def test_a_dataloader_batch_of_mixed_modes_stacks(self, mixed, mixed_run):
        transform = ReinforcedTransform(load_run_records(mixed_run, keep_in_memory=True), size=24)
        batch = next(iter(torch.utils.data.DataLoader(transform.attach(mixed.with_format(None)), batch_size=16)))
        assert batch["pixel_values"].shape == (16, 3, 24, 24) and batch["labels"].shape == (16, 10)

    def test_the_sixteen_bit_image_replays_as_its_eight_bit_photo_not_white(self, mixed, mixed_run, photo_images):
        transform = ReinforcedTransform(load_run_records(mixed_run, keep_in_memory=True), size=SIZE)
        row = MODES.index("I;16")
        image, key = mixed[row]["image"], mixed[row]["key"]
        gray = _crops(photo_images, row + 1)[row].convert("L")
        assert image.mode == "I;16" and np.asarray(gray).mean() < 200
        for index in range(NUM_SAMPLES):
            params = transform.record(key, index)["params"]
            expected = K.normalize(transform.policy.apply(gray.convert("RGB"), params, SIZE), transform.mean,
                                   transform.std)
            assert torch.equal(transform.replay(image, key, index)[0], expected)

    def test_the_mode_is_recorded_in_the_config_the_description_and_the_card(self, mixed_run):
        from hf_dr.hub.card import build_card, reinforcement_stats
        from hf_dr.hub.push import hub_metadata, public_config

        config = ReinforceConfig.load(mixed_run)
        assert config.image_mode == "RGB" and config.plan()["image_mode"] == "RGB"
        assert read_description(load_run_records(mixed_run, keep_in_memory=True)).image_mode == "RGB"
        card = _card(mixed_run, config, build_card, reinforcement_stats, hub_metadata, public_config)
        assert "| `convert` | mode=RGB (every image, before the ops and at replay" in card.text

    def test_a_one_channel_teacher_makes_a_gray_run(self, mixed, gray_teacher, tmp_path):
        out = _run(mixed, gray_teacher, tmp_path / "gray")
        assert ReinforceConfig.load(out).image_mode == "L"
        assert _replays_match_the_teacher(mixed, gray_teacher, out) == len(mixed) * NUM_SAMPLES
        transform = ReinforcedTransform(load_run_records(out, keep_in_memory=True), size=28)
        batch = next(iter(torch.utils.data.DataLoader(transform.attach(mixed.with_format(None)), batch_size=16)))
        assert batch["pixel_values"].shape == (16, 1, 28, 28)

    def test_a_given_mode_overrides_the_teachers(self, mixed, rgb_teacher, tmp_path):
        """image_mode="L" with a three-channel teacher: the student replays gray, the teacher read it repeated."""
        out = _run(mixed, rgb_teacher, tmp_path / "override", image_mode="L")
        member = create_teacher(rgb_teacher).members[0]
        transform = ReinforcedTransform(load_run_records(out, keep_in_memory=True), size=SIZE)
        assert transform.image_mode == "L"
        with torch.inference_mode():
            for row in mixed:
                for index in range(NUM_SAMPLES):
                    assert transform.replay(row["image"], row["key"], index)[0].shape == (1, SIZE, SIZE)
                    record = transform.record(row["key"], index)
                    view = transform.policy.apply(transform.as_teacher_saw(row["image"], row["key"]),
                                                  record["params"], SIZE)
                    pixels = K.normalize(fit_channels(view, 3), member.data_config["mean"], member.data_config["std"])
                    _check_topk(member.model(pixels[None]).softmax(-1)[0], record)

    def test_a_rerun_in_another_mode_and_a_bad_mode_are_refused(self, mixed, rgb_teacher, mixed_run, tmp_path):
        with pytest.raises(errors.ConfigConflictError, match='image_mode: "RGB" -> "L"'):
            _run(mixed, rgb_teacher, mixed_run, image_mode="L")
        with pytest.raises(errors.InvalidConfigError, match=r"image_mode should be one of \['RGB', 'L'\]"):
            _run(mixed, rgb_teacher, tmp_path / "rgba", image_mode="RGBA")
        assert not os.path.exists(tmp_path / "rgba")

    def test_old_configs_load_and_keep_their_fingerprint(self, mixed_run, tmp_path):
        """A config written before the mode was recorded loads, plans without it (its fingerprint is unchanged) and
        conflicts with a rerun that records one: its shards were converted by the old rules."""
        content = json.load(open(os.path.join(mixed_run, "reinforce_config.json")))
        del content["image_mode"]
        os.makedirs(tmp_path / "old")
        json.dump(content, open(tmp_path / "old" / "reinforce_config.json", "w"))
        old = ReinforceConfig.load(str(tmp_path / "old"))
        assert old.image_mode is None and set(old.plan()) == {*PLAN_FIELDS, "dataset", "teacher"}
        new = ReinforceConfig(**{**content, "image_mode": "RGB"})
        assert new.conflicts(old) == ['image_mode: null -> "RGB"'] and new.fingerprint() != old.fingerprint()

    def test_a_run_without_a_recorded_mode_refuses_to_replay_a_sixteen_bit_image(self, mixed, mixed_run):
        table = load_run_records(mixed_run, keep_in_memory=True)
        legacy = dataclasses.replace(read_description(table), image_mode=None)
        transform = ReinforcedTransform(table.cast(with_description(table.features, legacy)), size=SIZE)
        row = mixed[MODES.index("I;16")]
        with pytest.raises(errors.DataMismatchError, match=f"sample key '{row['key']}' has a 'I;16' image, and these "
                           "reinforcements record no image mode"):
            transform.replay(row["image"], row["key"], 0)
        transform.replay(mixed[0]["image"], mixed[0]["key"], 0)  # an RGB image replays as it always did

    def test_a_feature_mode_that_would_clip_a_sixteen_bit_image_is_refused(self, mixed, rgb_teacher, tmp_path):
        """``datasets.Image(mode="RGB")`` converts with Pillow (16-bit turns white) on both sides: refused, naming the
        row and the fix; other images decode as ``datasets`` decodes them."""
        from hf_dr.generate.render import decode_image

        as_rgb = mixed.cast_column("image", datasets.Image(mode="RGB"))
        cells = mixed.cast_column("image", datasets.Image(decode=False))["image"]
        for row in (0, MODES.index("L"), MODES.index("CMYK"), MODES.index("P")):
            assert decode_image(as_rgb.features["image"], cells[row]).tobytes() == as_rgb[row]["image"].tobytes()
        with pytest.raises(errors.InvalidConfigError, match="row 3 \\(key 'photo-03-I;16', file "
                           "'photo-03-I;16.png'\\) of dataset 'tester/photos' \\(split 'train'\\): the "
                           "column's feature datasets.Image\\(mode='RGB'\\) converts this 'I;16' image with "
                           "Pillow, which clips it"):
            _run(as_rgb, rgb_teacher, tmp_path / "feature-mode", on_bad_image="skip")

    @pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1)])
    def test_plain_and_evaluation_transforms_take_the_mode(self, mixed, mode, channels):
        for transform in (AugmentTransform("rrc", size=24, image_mode=mode), EvalTransform(size=24, image_mode=mode)):
            batch = next(iter(torch.utils.data.DataLoader(transform.attach(mixed.with_format(None)), batch_size=16)))
            assert batch["pixel_values"].shape == (16, channels, 24, 24)
        sixteen = EvalTransform(size=SIZE, image_mode=mode)._image(MODES.index("I;16"), mixed.with_format(None)[:])
        assert sixteen.float().mean() < 200  # not white


# -- 2. undecodable images -----------------------------------------------------------------------------------------
class TestBadImages:
    @pytest.mark.parametrize("num_workers", [0, 1])
    def test_a_truncated_jpeg_stops_the_run_naming_row_key_file_and_dataset(self, bad, rgb_teacher, tmp_path,
                                                                             num_workers):
        with pytest.raises(errors.CorruptImageError) as caught:
            _run(bad, rgb_teacher, tmp_path / "raise", num_workers=num_workers)
        message = str(caught.value)
        assert isinstance(caught.value, OSError)
        for part in ("cannot decode the image of row 5 (key 'photo-05', file 'photo-05.jpg') of dataset "
                     "'tester/photos' (split 'train'): OSError: ",
                     "Repair or remove that row, or pass on_bad_image='skip' (--on-bad-image skip)",
                     "listed with their error under 'skipped' in the run's manifest.json"):
            assert part in message
        assert "truncated" in message.lower()

    def test_skipping_lists_the_bad_rows_in_the_manifest_and_gives_them_no_records(self, bad, rgb_teacher, skip_run):
        manifest = verify_run(skip_run)
        skipped = manifest["skipped"]
        assert [(s["row"], s["key"]) for s in skipped] == [(row, f"photo-{row:02d}") for row in sorted(BAD_ROWS)]
        assert "truncated" in skipped[0]["error"].lower() and "UnidentifiedImageError" in skipped[1]["error"]
        assert skipped[2]["error"] == "OSError: broken data stream when reading image file"
        shards = [pq.read_table(os.path.join(skip_run, s["path"])) for s in manifest["shards"]]
        lengths = [len(records) for table in shards for records in table.column("reinforcements").to_pylist()]
        assert lengths == [0 if row in BAD_ROWS else NUM_SAMPLES for row in range(len(bad))]
        assert manifest["num_rows"] == len(bad)
        keys = {f"photo-{row:02d}" for row in BAD_ROWS}
        assert _replays_match_the_teacher(bad, rgb_teacher, skip_run, keys) == (len(bad) - 3) * NUM_SAMPLES

    @pytest.mark.parametrize("keep_in_memory", [True, False])
    def test_loading_leaves_skipped_rows_out_with_a_warning(self, bad, skip_run, keep_in_memory, caplog, tmp_path):
        with caplog.at_level(logging.WARNING, logger="hf_dr.generate.storage"):
            table = load_run_records(skip_run, keep_in_memory=keep_in_memory, cache_dir=str(tmp_path))
        assert table["key"] == [k for i, k in enumerate(bad["key"]) if i not in BAD_ROWS]
        assert all(len(records) == NUM_SAMPLES for records in table["reinforcements"])
        assert table._indices is None and read_description(table).image_mode == "RGB"
        warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warning) == 1 and "leaving out 3 row(s)" in warning[0]
        assert os.path.join(skip_run, "manifest.json") in warning[0] and "'photo-05'" in warning[0]

    def test_replaying_a_skipped_key_raises_naming_it(self, bad, skip_run):
        raw = datasets.load_dataset("parquet", data_files=os.path.join(skip_run, "shards", "*.parquet"),
                                    split="train")
        good = bad[0]["image"]
        with pytest.raises(errors.DataMismatchError, match="sample key 'photo-05' holds no reinforcement records: "
                           "its image could not be decoded when the run was made"):
            ReinforcedTransform(raw, size=SIZE).replay(good, "photo-05")
        with pytest.raises(errors.DataMismatchError, match="sample key 'photo-13' is not in the reinforcements;.*"
                           "or the run skipped this row.*'skipped' in its manifest.json"):
            ReinforcedTransform(load_run_records(skip_run), size=SIZE).replay(good, "photo-13")

    def test_training_data_leaves_skipped_rows_out(self, bad, skip_run):
        from hf_dr.train.inputs import DataConfig, training_data

        data = DataConfig(size=(SIZE, SIZE), mean=K.IMAGENET_MEAN, std=K.IMAGENET_STD, in_chans=3)
        train, _ = training_data(bad, data, run_dir=skip_run)
        assert len(train) == len(bad) - 3
        batch = next(iter(torch.utils.data.DataLoader(train, batch_size=len(train))))
        assert batch["pixel_values"].shape == (len(bad) - 3, 3, SIZE, SIZE)

    def test_open_reinforced_leaves_the_skipped_rows_out_with_the_source_checked(self, bad, skip_run):
        """Before: a run with skipped rows opened with its source (verify_source on, the default) was refused with
        "the source has 3 rows that were not reinforced ... not the recorded version"; those rows are the run's own
        skipped ones. A row the run never saw is still refused."""
        from hf_dr import open_reinforced

        train = open_reinforced(skip_run, source=bad, size=SIZE)
        assert train.with_format(None)["key"][:] == [k for i, k in enumerate(bad["key"]) if i not in BAD_ROWS]
        assert train[0]["pixel_values"].shape == (3, SIZE, SIZE)
        grown = datasets.concatenate_datasets([bad, bad.select([0]).map(lambda row: {"key": "photo-new"})])
        with pytest.raises(errors.DataMismatchError, match=r"has 1 rows that were not reinforced.*photo-new"):
            open_reinforced(skip_run, source=grown, size=SIZE)

    def test_a_stopped_run_resumes_with_skip_to_the_output_of_a_skipping_run(self, bad, rgb_teacher, skip_run,
                                                                            tmp_path, caplog):
        out = tmp_path / "resumed"
        with pytest.raises(errors.CorruptImageError):
            _run(bad, rgb_teacher, out, shard_size=4)
        assert sorted(f for f in os.listdir(out / "shards") if f.endswith(".done")) == [
            "reinforcements-00000.parquet.done"]
        with caplog.at_level(logging.INFO, logger="hf_dr.generate.run"):
            _run(bad, rgb_teacher, out, shard_size=4, on_bad_image="skip")
        assert "process 0 of 1: 4 of its 5 shards to do" in caplog.text
        _same_tree(skip_run, str(out))

    def test_skipping_output_does_not_depend_on_the_workers(self, bad, rgb_teacher, skip_run, tmp_path):
        out = _run(bad, rgb_teacher, tmp_path / "workers", on_bad_image="skip", shard_size=4, num_workers=2)
        _same_tree(skip_run, out)
        assert not [f for f in _files(out) if ".tmp-" in f]

    def test_a_skipped_image_is_never_a_mixing_partner(self, bad, rgb_teacher, tmp_path):
        out = _run(bad, rgb_teacher, tmp_path / "mix", policy="rrc+mix", on_bad_image="skip", shard_size=4)
        skipped = {s["key"] for s in verify_run(out)["skipped"]}
        table = load_run_records(out, keep_in_memory=True)
        modes = [(r["params"]["mixing"]["mode"], r["params"]["mixing"]["partner_key"])
                 for records in table["reinforcements"] for r in records]
        assert not [key for mode, key in modes if mode and key in skipped]
        assert 0 < sum(mode == 0 for mode, _ in modes) < len(modes) // 2  # drawn partners that were skipped: unmixed
        images = bad.select([i for i in range(len(bad)) if i not in BAD_ROWS])
        member = create_teacher(rgb_teacher).members[0]
        transform = ReinforcedTransform(table, size=SIZE, mean=member.data_config["mean"],
                                        std=member.data_config["std"], images=images)
        model = member.model
        with torch.inference_mode():
            for row in images:
                for index in range(NUM_SAMPLES):
                    pixels = transform.replay(row["image"], row["key"], index)[0]
                    _check_topk(model(pixels[None]).softmax(-1)[0], transform.record(row["key"], index))

    def test_an_unreadable_header_stops_a_mixing_run_at_planning(self, bad, rgb_teacher, tmp_path):
        with pytest.raises(errors.CorruptImageError, match="cannot read the image header of row 5 \\(key "
                           "'photo-05', file 'photo-05.jpg'\\) of dataset 'tester/photos'"):
            _run(bad, rgb_teacher, tmp_path / "mix-raise", policy="rrc+mix")

    def test_an_empty_image_cell_is_a_bad_image(self, bad, rgb_teacher):
        from hf_dr.augment.registry import as_policy
        from hf_dr.data.columns import encoded_images, image_feature
        from hf_dr.generate.plan import ChunkPlan, plan_shards
        from hf_dr.generate.render import ViewRenderer
        from hf_dr.models.teacher import ViewSpec

        rows = bad.select(range(4)).cast_column("image", datasets.Image(decode=False)).to_list()
        rows[2]["image"] = None
        dataset = datasets.Dataset.from_list(rows, features=bad.features)
        chunks = ChunkPlan(plan_shards(4, 4), NUM_SAMPLES, 12)
        renderer = ViewRenderer(encoded_images(dataset, "image"), image_feature(dataset, "image"), dataset["key"],
                                chunks, as_policy("rrc"), [ViewSpec(3, SIZE, SIZE, "bilinear")], 0, 12,
                                image_mode="RGB", on_bad_image="skip", source="the test set")
        item = renderer[0]
        assert item["skipped"] == {2: "CorruptImageError: the row holds no image (the cell is empty)"}
        assert not item["views"][0][6:9].any() and item["params"].to_pylist()[6:9] == [None] * 3
        with pytest.raises(errors.CorruptImageError, match="cannot decode the image of row 2 \\(key 'photo-02'\\) of "
                           "the dataset: CorruptImageError: the row holds no image"):
            ViewRenderer(encoded_images(dataset, "image"), image_feature(dataset, "image"), dataset["key"], chunks,
                         as_policy("rrc"), [ViewSpec(3, SIZE, SIZE, "bilinear")], 0, 12)[0]

    def test_the_card_counts_the_skipped_images(self, skip_run):
        from hf_dr.hub.card import build_card, reinforcement_stats
        from hf_dr.hub.push import hub_metadata, public_config

        config = ReinforceConfig.load(skip_run)
        card = _card(skip_run, config, build_card, reinforcement_stats, hub_metadata, public_config)
        assert "| images | 17 decodable of 20 |" in card.text and "17 decodable of 20 images" in card.text

    def test_the_command_line_takes_both_options(self, bad, rgb_teacher, tmp_path):
        bad.to_parquet(str(tmp_path / "bad.parquet"))
        (tmp_path / "teacher.json").write_text(json.dumps(rgb_teacher))
        out = str(tmp_path / "cli")
        code = cli_main(["reinforce", "--dataset", str(tmp_path / "bad.parquet"), "--teacher-spec",
                         str(tmp_path / "teacher.json"), "--key-column", "key", "--policy", "rrc", "--num-samples",
                         "2", "--topk", "3", "--shard-size", "8", "--batch-size", "8", "--num-workers", "0",
                         "--no-progress", "--image-mode", "L", "--on-bad-image", "skip", "--output-dir", out])
        assert code == 0 and ReinforceConfig.load(out).image_mode == "L"
        assert [s["row"] for s in verify_run(out)["skipped"]] == sorted(BAD_ROWS)


def _card(run_dir, config, build_card, reinforcement_stats, hub_metadata, public_config):
    """The metadata-only card of a run, rendered locally."""
    manifest = verify_run(run_dir)
    paths = [os.path.join(run_dir, s["path"]) for s in manifest["shards"]]
    source = {**SOURCE, "revision": "0" * 40, "key_column": "key", "num_rows": manifest["num_rows"],
              "keys_sha256": config.dataset["keys_sha256"]}
    meta = hub_metadata("metadata-only", "train", config, source, ["data/train-00000-of-00001.parquet"])
    return build_card("tester/photos-plus", meta, public_config(config), reinforcement_stats(paths, manifest, config),
                      [], datasets.DatasetInfo())


@pytest.mark.parametrize("layout", ["self-contained", "metadata-only"])
def test_a_pushed_run_leaves_the_skipped_rows_out(hub, bad, skip_run, layout):
    """Pushed data held the skipped rows (no records, broken bytes): a training epoch on it stopped there."""
    from huggingface_hub import HfApi

    from hf_dr import load_reinforced, push_to_hub
    from tests.utils_hub import unique_repo

    if not HfApi().repo_exists("tester/photos", repo_type="dataset"):  # the source the run recorded
        bad.push_to_hub("tester/photos")
    repo = unique_repo(f"skipped-{layout}")
    push_to_hub(skip_run, repo, layout=layout, dataset=bad if layout == "self-contained" else None)
    if layout == "self-contained":
        pushed = datasets.load_dataset(repo, split="train")
        assert pushed["key"] == [k for i, k in enumerate(bad["key"]) if i not in BAD_ROWS]
        train = load_reinforced(repo, size=SIZE)
    else:
        good = bad.select([i for i in range(len(bad)) if i not in BAD_ROWS])
        train = load_reinforced(repo, source=good, verify_source=False, size=SIZE)
        streamed = list(load_reinforced(repo, source=bad, streaming=True, size=SIZE))  # hf_dr.json lists them
        reinforced_keys = datasets.load_dataset(repo, split="train")["key"]
        assert [row["key"] for row in streamed] == reinforced_keys and len(streamed) == len(good)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=len(train))))
    assert batch["pixel_values"].shape[0] == len(bad) - len(BAD_ROWS)
