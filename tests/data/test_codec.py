"""RecordCodec: configs and short names round-trip, bad options are refused naming the flag, each codec declares its
schema, stored labels decode as the codec says (lossless ids, 8-bit probabilities within bound, counts / draws), and
every codec's encoding of a real teacher's outputs decodes back to them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

import hf_dr
from hf_dr.augment.functional import normalize
from hf_dr.augment.seeding import generator_for
from hf_dr.data.codec import CLASSES_COLUMN, LABEL_CODECS, PARAM_MODES, RecordCodec, position_dtype
from hf_dr.data.label_coding import RELATIVE_BOUND, dequantize, quantize_topk, unexplained_draws
from hf_dr.data.replay import IMAGENET_MEAN, IMAGENET_STD
from hf_dr.data.schema import reinforcement_features
from hf_dr.data.soft_labels import sparsify
from hf_dr.errors import InvalidConfigError
from tests.data_utils import digit_images
from tests.utils_teacher import tiny_model

TOPK, NUM_SAMPLES = 4, 5


@pytest.mark.parametrize("params", ["stored", "seeded"])
@pytest.mark.parametrize("labels", LABEL_CODECS)
def test_configs_and_names_round_trip(params, labels):
    codec = RecordCodec.parse(f"{params}/{labels}" + (":7" if labels == "sampled" else ""), temperature=2.0)
    assert RecordCodec.from_config(codec.config()) == codec
    assert RecordCodec.parse(codec.name, codec.temperature) == codec
    assert codec.class_set == (labels in ("q8-topk-set", "sampled"))
    assert codec.target_temperature == (2.0 if labels == "sampled" else None)


@pytest.mark.parametrize(("options", "flag"), [
    ({"params": "hashed"}, "param_mode"), ({"labels": "fp8"}, "label_codec"),
    ({"labels": "q8-topk", "draws": 4}, "label_draws and label_temperature"),
    ({"labels": "sampled", "draws": 300}, "label_draws"),
    ({"labels": "sampled", "temperature": 0}, "label_temperature"),
])
def test_bad_options_are_refused_naming_the_flag(options, flag):
    with pytest.raises(InvalidConfigError, match=flag):
        RecordCodec(**options)
    with pytest.raises(InvalidConfigError, match="draws after ':'"):
        RecordCodec.parse("sampled:many")


def test_each_codec_declares_its_schema():
    policy = hf_dr.create_policy("rrc+mix+ra_re")
    default = reinforcement_features(policy, 10, 1000)
    assert list(default) == ["key", "reinforcements"] and default["reinforcements"].feature["probs"].feature.dtype \
        == "float16"
    seeded = reinforcement_features(policy, 10, 1000, codec=RecordCodec("seeded", "q8-topk-set"), num_samples=400)
    record = seeded["reinforcements"].feature
    assert list(seeded) == ["key", CLASSES_COLUMN, "reinforcements"]
    assert {k: v.dtype for k, v in record["params"].items()} == {"check": "uint32", "partner_key": "string"}
    assert record["ids"].feature.dtype == "uint16" and record["probs"].feature.dtype == "uint8"
    sampled = reinforcement_features(policy, 5, 10, codec=RecordCodec(labels="sampled", draws=8), num_samples=20)
    assert set(sampled["reinforcements"].feature) == {"params", "ids", "counts"}
    assert sampled["reinforcements"].feature["ids"].length == -1  # as many as the distinct classes drawn
    assert (position_dtype(1000, 20 * 10), position_dtype(1000, 400 * 10), position_dtype(100, None)) == \
        ("uint8", "uint16", "uint8")


def test_stored_labels_decode_as_the_codec_says():
    probs = [0.7, 0.2, 0.05]
    fp16 = RecordCodec().decode_labels({"ids": [4, 1, 9], "probs": probs})
    assert fp16[0].tolist() == [4, 1, 9] and np.allclose(fp16[1], probs)
    q8 = RecordCodec(labels="q8-topk-set").decode_labels({"ids": [2, 0, 1], "probs": quantize_topk(probs).tolist()},
                                                         classes=[1, 9, 4])
    assert q8[0].tolist() == [4, 1, 9] and np.all(np.abs(q8[1] - probs) <= 2.2 * RELATIVE_BOUND * np.array(probs))
    assert abs((1 - q8[1].sum()) - 0.05) <= RELATIVE_BOUND * 0.05 + 1e-6  # the leftover mass, as stored
    sampled = RecordCodec(labels="sampled", draws=8).decode_labels({"ids": [1, 0], "counts": [6, 2]}, [3, 5])
    assert sampled[0].tolist() == [5, 3] and sampled[1].tolist() == [0.75, 0.25]
    with pytest.raises(InvalidConfigError, match="'classes' column"):
        RecordCodec(labels="q8-topk-set").decode_labels({"ids": [0], "probs": [0]})
    with pytest.raises(InvalidConfigError, match="not this row's"):
        RecordCodec(labels="q8-topk-set").decode_labels({"ids": [3], "probs": [0]}, classes=[1, 2])


@pytest.mark.parametrize("labels", LABEL_CODECS)
def test_first_labels_reads_every_record_of_a_table(labels):
    codec = RecordCodec(labels=labels, draws=4 if labels == "sampled" else None)
    rows = [[{"params": {}, "ids": [1, 0], "probs": [200, 40, 220], "counts": [3, 1]}] * 2, [],
            [{"params": {}, "ids": [0, 1], "probs": [10, 50, 60], "counts": [2, 2]}]]
    value = {"fp16-topk": [0.5, 0.25], "q8-topk": None, "q8-topk-set": None, "sampled": None}[labels]
    scaled = labels in ("q8-topk", "q8-topk-set")  # first_labels reads the first code as stored, not rescaled
    field = codec.label_field
    records = [[{"ids": r["ids"], field: value or r[field]} for r in row] for row in rows]
    table = pa.table({CLASSES_COLUMN: [[7, 2], [], [5, 6]], "reinforcements": records})
    ids, probs = codec.first_labels(table, "reinforcements")
    decoded = [codec.decode_labels(r, classes) for row, classes in zip(records, [[7, 2], [], [5, 6]], strict=True)
               for r in row]
    assert ids.tolist() == [int(i[0]) for i, _ in decoded]
    if scaled:
        assert np.allclose(probs, dequantize([r["probs"][0] for row in records for r in row]))
    else:
        assert np.allclose(probs, [float(p[0]) for _, p in decoded])


@pytest.fixture(scope="module")
def teacher_outputs():
    """A random ``test_resnet`` teacher on real digits: per image its drawn params and probs ``[N, 10]`` of the
    views, as a run labels them."""
    policy = hf_dr.create_policy("rrc+ra_re")
    images, _ = digit_images(6)
    model, rows = tiny_model(seed=0), []
    for r, image in enumerate(images):
        key = f"digit-{r:05d}"
        params = [policy.sample_params((image.height, image.width), generator_for(0, key, j))
                  for j in range(NUM_SAMPLES)]
        views = torch.stack([policy.apply(image, p, 32) for p in params])
        with torch.no_grad():
            probs = torch.softmax(model(normalize(views, IMAGENET_MEAN, IMAGENET_STD)), -1)
        rows.append((key, image, params, probs))
    return policy, rows


@pytest.mark.parametrize("params_mode", PARAM_MODES)
@pytest.mark.parametrize("labels", LABEL_CODECS)
def test_every_codec_decodes_what_it_encoded_from_a_real_teacher(labels, params_mode, teacher_outputs):
    """Params come back exactly (seeded: drawn again, checksum-checked); ids exactly; probabilities within the codec's
    bound (float16; the 8-bit codes' stated bound, leftover mass included); sampled counts are the teacher's draws."""
    policy, rows = teacher_outputs
    codec = RecordCodec(params_mode, labels, temperature=2.0 if labels == "sampled" else None).resolved(TOPK)
    for key, image, params, probs in rows:
        records, columns = codec.encode_row(policy, params, probs, TOPK, 0, key)
        assert (CLASSES_COLUMN in columns) == codec.class_set
        for index, (record, drawn, p) in enumerate(zip(records, params, probs, strict=True)):
            assert codec.decode_params(policy, record["params"], 0, key, index, (image.height, image.width)) == drawn
            if params_mode == "seeded":  # drawn again from the image's size, which it needs
                with pytest.raises(InvalidConfigError, match=f"key '{key}' store seeded params.*image_size="):
                    codec.decode_params(policy, record["params"], 0, key, index, None)
            ids, target = codec.decode_labels(record, columns.get(CLASSES_COLUMN))
            if labels == "sampled":
                counts = np.zeros((1, p.shape[-1]))
                counts[0, ids] = np.asarray(record["counts"])
                assert counts.sum() == codec.draws and float(target.sum()) == pytest.approx(1.0)
                assert unexplained_draws(p[None], counts, codec.draws, 2.0, 0, [(key, index)], 0.0).tolist() == [0]
                continue
            top_ids, top = sparsify(p, TOPK)
            top = top.double().numpy()
            assert ids.tolist() == top_ids.tolist()
            if labels == "fp16-topk":
                assert np.allclose(target, top, rtol=2**-11, atol=2**-25)  # float16 rounding, subnormals included
            else:
                leftover = 1.0 - top.sum()
                bound = 2 * RELATIVE_BOUND + RELATIVE_BOUND * leftover / (1 - leftover) + 1e-6
                assert np.all(np.abs(target - top) <= bound * top)
                assert abs((1.0 - float(target.sum())) - leftover) <= RELATIVE_BOUND * leftover + 2.0**-20
