"""``ShardTable``: chunks must arrive contiguous and complete; the built table holds the shard's keys, labels and
records exactly as added, with the declared features; ``output_features`` column order; every codec writes the values
it wrote before its encoder moved into :class:`RecordCodec`."""

from __future__ import annotations

import hashlib
import json

import datasets
import numpy as np
import pyarrow as pa
import pytest
import torch

from hf_dr import create_policy, list_policies
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeding import generator_for
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.schema import REINFORCEMENTS_COLUMN, reinforcement_features
from hf_dr.data.soft_labels import sparsify
from hf_dr.errors import CorruptShardError, InvalidConfigError
from hf_dr.generate.plan import ChunkPlan, Shard, plan_shards
from hf_dr.generate.shard_table import ShardTable, output_features
from tests.data_utils import digit_images

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_ROWS, NUM_SAMPLES, TOPK, NUM_CLASSES = 10, 3, 4, 10
LABEL = datasets.ClassLabel(names=[str(d) for d in range(NUM_CLASSES)])


@pytest.fixture(scope="module")
def source() -> tuple[list[str], list[int], list[tuple[int, int]]]:
    """Keys, labels and image sizes of 10 real digits."""
    images, labels = digit_images(NUM_ROWS)
    return [f"digit-{i:05d}" for i in range(NUM_ROWS)], labels, [(im.height, im.width) for im in images]


def _records(policy, keys: list[str], sizes, shard: Shard, start: int, stop: int, partners=None):
    """What a chunk of views [start, stop) of ``shard`` brings: params (drawn as generation does, in Arrow), top-k
    ids and probabilities of a seeded random teacher output."""
    params, probs = [], []
    for v in range(start, stop):
        row, index = shard.start + v // NUM_SAMPLES, v % NUM_SAMPLES
        params.append(policy.encode(policy.sample_params(sizes[row], generator_for(0, keys[row], index), partners)))
        probs.append(torch.softmax(torch.randn(NUM_CLASSES, generator=torch.Generator().manual_seed(v)) * 3, -1))
    ids, values = sparsify(torch.stack(probs), TOPK)
    params_type = datasets.Features({"params": policy.features()}).arrow_schema.field("params").type
    return pa.array(params, type=params_type), ids, values


def _table(policy, keys, labels, sizes, shard: Shard, label_column: str | None = "label", batch_size: int = 4,
           partners=None):
    features = output_features(policy, TOPK, NUM_CLASSES, "key", label_column, LABEL if label_column else None)
    table = ShardTable(shard, features, keys, labels if label_column else None, NUM_SAMPLES)
    added = []
    for chunk in ChunkPlan([shard], NUM_SAMPLES, batch_size):
        records = _records(policy, keys, sizes, shard, chunk.start, chunk.stop, partners)
        table.add(chunk.start, chunk.stop, *records)
        added.append(records)
    return table.build(), features, added


@pytest.mark.parametrize("name", list_policies())
def test_built_table_holds_what_was_added(name, source):
    """Rows are the shard's keys and labels; each row's N records are its views' params, ids and float16 probs."""
    keys, labels, sizes = source
    policy = create_policy(name)
    partners = PartnerPool(keys, sizes) if policy.needs_partner else None
    shard = Shard(1, 4, 9)
    table, features, added = _table(policy, keys, labels, sizes, shard, partners=partners)
    assert table.num_rows == shard.num_rows and table.schema == features.arrow_schema
    assert table.column("key").to_pylist() == keys[4:9] and table.column("label").to_pylist() == labels[4:9]
    params = [p for chunk_params, _, _ in added for p in chunk_params.to_pylist()]
    ids = torch.cat([i for _, i, _ in added])
    probs = torch.cat([p for _, _, p in added])
    rows = table.column(REINFORCEMENTS_COLUMN).to_pylist()
    assert [len(r) for r in rows] == [NUM_SAMPLES] * shard.num_rows
    for v, record in enumerate(record for row in rows for record in row):
        assert record["params"] == params[v]
        assert record["ids"] == ids[v].tolist()
        assert record["probs"] == probs[v].to(torch.float16).tolist()


def test_the_table_reads_back_as_a_dataset_with_the_declared_features(source):
    """Through ``datasets``: the ClassLabel label, the key, and records whose params decode to the drawn ones."""
    keys, labels, sizes = source
    policy = create_policy("rrc+ra_re")
    table, features, _ = _table(policy, keys, labels, sizes, Shard(0, 0, 4), batch_size=5)
    dataset = datasets.Dataset(datasets.table.InMemoryTable(table))
    assert dataset.features == features and dataset.features["label"] == LABEL
    for row in dataset:
        r = keys.index(row["key"])
        for index, record in enumerate(row[REINFORCEMENTS_COLUMN]):
            drawn = policy.sample_params(sizes[r], generator_for(0, keys[r], index))
            assert policy.decode(record["params"]) == drawn


def test_unlabelled_table_has_key_and_records_only(source):
    """Without a label column the table is a metadata-only reinforcement table."""
    keys, labels, sizes = source
    policy = create_policy("rrc")
    table, features, _ = _table(policy, keys, labels, sizes, Shard(0, 0, NUM_ROWS), label_column=None)
    assert table.column_names == ["key", REINFORCEMENTS_COLUMN]
    assert features == reinforcement_features(policy, TOPK, NUM_CLASSES)
    assert table.column("key").to_pylist() == keys


def test_output_features_order_and_key_name():
    """key, label (when given, with its own feature), reinforcements; the key column keeps its name."""
    policy = create_policy("rrc")
    assert list(output_features(policy, 5, 10, "key", "label", LABEL)) == ["key", "label", REINFORCEMENTS_COLUMN]
    features = output_features(policy, 5, 10, "id", "target", datasets.Value("int64"))
    assert list(features) == ["id", "target", REINFORCEMENTS_COLUMN] and features["target"] == datasets.Value("int64")
    assert list(output_features(policy, 5, 10, "image_id")) == ["image_id", REINFORCEMENTS_COLUMN]
    base = reinforcement_features(policy, 5, 10)
    assert features[REINFORCEMENTS_COLUMN] == base[REINFORCEMENTS_COLUMN]


def _empty(source, shard: Shard) -> ShardTable:
    keys, labels, _ = source
    return ShardTable(shard, output_features(create_policy("rrc"), TOPK, NUM_CLASSES, "key", "label", LABEL), keys,
                      labels, NUM_SAMPLES)


def test_out_of_order_chunks_are_refused(source):
    """A chunk that does not start where the last one stopped (skipped, repeated or early) is refused."""
    keys, _, sizes = source
    policy, shard = create_policy("rrc"), Shard(0, 0, 4)  # 12 views
    table = _empty(source, shard)
    with pytest.raises(CorruptShardError, match=r"views \[4, 8\) arrived after 0"):
        table.add(4, 8, *_records(policy, keys, sizes, shard, 4, 8))
    table.add(0, 4, *_records(policy, keys, sizes, shard, 0, 4))
    with pytest.raises(CorruptShardError, match=r"reinforcements-00000.parquet: views \[0, 4\) arrived after 4"):
        table.add(0, 4, *_records(policy, keys, sizes, shard, 0, 4))
    with pytest.raises(CorruptShardError, match=r"views \[8, 12\) arrived after 4"):
        table.add(8, 12, *_records(policy, keys, sizes, shard, 8, 12))


def test_chunks_with_mismatched_lengths_are_refused(source):
    """params, ids and probs must each hold exactly stop - start views."""
    keys, _, sizes = source
    policy, shard = create_policy("rrc"), Shard(0, 0, 4)
    params, ids, probs = _records(policy, keys, sizes, shard, 0, 4)
    table = _empty(source, shard)
    for bad in [(params[:3], ids, probs), (params, ids[:3], probs), (params, ids, probs[:3])]:
        with pytest.raises(CorruptShardError, match="arrived after 0"):
            table.add(0, 4, *bad)
    with pytest.raises(CorruptShardError):
        table.add(0, 5, params, ids, probs)
    table.add(0, 4, params, ids, probs)  # the right chunk is still accepted after the refusals


def test_an_incomplete_shard_is_not_built(source):
    """Building before every view arrived names the count received and expected."""
    keys, _, sizes = source
    policy, shard = create_policy("rrc"), Shard(2, 8, 10)  # 6 views
    table = _empty(source, shard)
    with pytest.raises(CorruptShardError, match="reinforcements-00002.parquet: got 0 views, expected 6"):
        table.build()
    table.add(0, 4, *_records(policy, keys, sizes, shard, 0, 4))
    with pytest.raises(CorruptShardError, match="got 4 views, expected 6"):
        table.build()
    table.add(4, 6, *_records(policy, keys, sizes, shard, 4, 6))
    assert table.build().column("key").to_pylist() == keys[8:10]


def test_every_shard_of_a_plan_builds_the_whole_dataset(source):
    """Tables built shard by shard from a plan's chunks concatenate to every row once, in order."""
    keys, labels, sizes = source
    policy = create_policy("rrc")
    tables = [_table(policy, keys, labels, sizes, s, batch_size=5)[0] for s in plan_shards(NUM_ROWS, 3)]
    whole = pa.concat_tables(tables)
    assert whole.column("key").to_pylist() == keys and whole.column("label").to_pylist() == labels
    ids = np.array([r["ids"] for row in whole.column(REINFORCEMENTS_COLUMN).to_pylist() for r in row])
    assert ids.shape == (NUM_ROWS * NUM_SAMPLES, TOPK) and ids.max() < NUM_CLASSES


GOLDEN_ROWS = 6
# Digests of the tables the run's encoder wrote before it moved into RecordCodec (shard_table.label_values and the
# renderer's seeded_record, commit ed2aa56) from the inputs of _todays_inputs: each codec, a plain and a mixing policy
TODAYS_TABLES = {
    ('rrc+ra_re', 'stored/fp16-topk'): '0707d089df40b4d5',
    ('rrc+ra_re', 'stored/q8-topk'): '692ddad5566c5cd0',
    ('rrc+ra_re', 'stored/q8-topk-set'): '008659c4b60fd6ec',
    ('rrc+ra_re', 'stored/sampled:6'): '890672f163be59de',
    ('rrc+ra_re', 'seeded/fp16-topk'): 'b03a7fbfc64b0a8d',
    ('rrc+ra_re', 'seeded/q8-topk'): '35038e31d9066fb1',
    ('rrc+ra_re', 'seeded/q8-topk-set'): '4c8e4899798b1e45',
    ('rrc+ra_re', 'seeded/sampled:6'): 'fba6e41ac89b4699',
    ('rrc+mix+ra_re', 'stored/fp16-topk'): '699104ccdd4df46f',
    ('rrc+mix+ra_re', 'stored/q8-topk'): '6180add609e21e02',
    ('rrc+mix+ra_re', 'stored/q8-topk-set'): 'f68751bf71933548',
    ('rrc+mix+ra_re', 'stored/sampled:6'): 'a0d0644c8b722a51',
    ('rrc+mix+ra_re', 'seeded/fp16-topk'): '03258429ce9d4e09',
    ('rrc+mix+ra_re', 'seeded/q8-topk'): '7e08b087e21e7b38',
    ('rrc+mix+ra_re', 'seeded/q8-topk-set'): '91dbdad0e7238177',
    ('rrc+mix+ra_re', 'seeded/sampled:6'): 'ed9d7d834946a4af',
}


def _todays_inputs(policy):
    """Keys, drawn params and teacher-like probs [N, C] per row: a fixed linear map of the real 8x8 scikit-learn digits
    plus per-record noise, in float64 then float32 (values that no BLAS, CPU or thread count changes)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(7)
    pixels = load_digits().images[:GOLDEN_ROWS].reshape(GOLDEN_ROWS, -1)
    logits = (pixels @ rng.normal(0, 0.15, (pixels.shape[1], NUM_CLASSES)))[:, None, :]
    logits = logits + rng.normal(0, 1.5, (GOLDEN_ROWS, NUM_SAMPLES, NUM_CLASSES))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = torch.from_numpy((probs / probs.sum(-1, keepdims=True)).astype(np.float32))
    keys = [f"digit-{i:05d}" for i in range(GOLDEN_ROWS)]
    pool = PartnerPool(keys, [(8, 8)] * GOLDEN_ROWS) if policy.needs_partner else None
    params = [[policy.sample_params((8, 8), generator_for(0, key, j), pool) for j in range(NUM_SAMPLES)]
              for key in keys]
    return keys, params, probs


def _digest(table):
    """Every stored value and type of a table (not its Parquet bytes, which carry the writer's version)."""
    text = str(table.schema.remove_metadata()) + json.dumps(table.to_pylist(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("name", "spec"), list(TODAYS_TABLES))
def test_every_codec_stores_what_it_stored_before_the_encoders_moved(name, spec):
    """The writer's path (the codec's encode_params and encode_labels, ShardTable) gives the same values and types,
    byte for byte once written, as the encoder did before it moved beside the decoder."""
    policy = create_policy(name)
    codec = RecordCodec.parse(spec, 2.0 if "sampled" in spec else None).resolved(TOPK)
    keys, params, probs = _todays_inputs(policy)
    features = output_features(policy, TOPK, NUM_CLASSES, "key", codec=codec, num_samples=NUM_SAMPLES)
    params_type = datasets.Features({"params": codec.params_features(policy)}).arrow_schema.field("params").type
    table = ShardTable(Shard(0, 0, GOLDEN_ROWS), features, keys, None, NUM_SAMPLES, codec=codec)
    for r, key in enumerate(keys):
        ids, values = codec.encode_labels(probs[r], TOPK, 0, lambda key=key: [(key, j) for j in range(NUM_SAMPLES)])
        stored = pa.array([codec.encode_params(policy, p) for p in params[r]], type=params_type)
        table.add(r * NUM_SAMPLES, (r + 1) * NUM_SAMPLES, stored, ids, values)
    assert _digest(table.build()) == TODAYS_TABLES[(name, spec)]


def test_a_codec_that_contradicts_the_features_is_refused():
    """Features with a class set need a class-set codec (and the reverse), named with the fix."""
    policy = create_policy("rrc")
    with_set = output_features(policy, TOPK, NUM_CLASSES, "key", codec=RecordCodec(labels="q8-topk-set"))
    assert CLASSES_COLUMN in with_set
    with pytest.raises(InvalidConfigError, match="hold a 'classes' column.*stored/q8-topk.*output_features"):
        ShardTable(Shard(0, 0, 1), with_set, ["a"], None, NUM_SAMPLES, codec=RecordCodec(labels="q8-topk"))
    with pytest.raises(InvalidConfigError, match="lack a 'classes' column"):
        ShardTable(Shard(0, 0, 1), output_features(policy, TOPK, NUM_CLASSES, "key"), ["a"], None, NUM_SAMPLES,
                   codec=RecordCodec(labels="q8-topk-set"))


@pytest.mark.parametrize("labels", ["q8-topk", "sampled"])
def test_a_teachers_probabilities_are_refused_where_the_codec_stores_codes(labels, source):
    """Bug: a compact codec's table took a teacher's top-k probabilities as they are: ``sampled`` cast them to its
    uint8 counts (0.6 stored as a count of 0), ``q8-topk`` failed when built with a bare pyarrow length error. Now they
    are refused when added, naming the encoder to use, and the codes it gives are accepted."""
    keys, _, sizes = source
    policy, shard = create_policy("rrc"), Shard(0, 0, 2)
    codec = RecordCodec(labels=labels).resolved(TOPK)
    features = output_features(policy, TOPK, NUM_CLASSES, "key", codec=codec, num_samples=NUM_SAMPLES)
    params, ids, probs = _records(policy, keys, sizes, shard, 0, 2 * NUM_SAMPLES)
    table = ShardTable(shard, features, keys, None, NUM_SAMPLES, codec=codec)
    with pytest.raises(InvalidConfigError, match=rf"\[0, 6\) bring float32 labels.*'stored/{labels}.*encode_labels"):
        table.add(0, 2 * NUM_SAMPLES, params, ids, probs)
    teacher = torch.zeros(2 * NUM_SAMPLES, NUM_CLASSES).scatter_(1, ids, probs)  # its top-k, the rest 0
    views = [(keys[v // NUM_SAMPLES], v % NUM_SAMPLES) for v in range(2 * NUM_SAMPLES)]
    table.add(0, 2 * NUM_SAMPLES, params, *codec.encode_labels(teacher, TOPK, 0, lambda: views))
    rows = table.build().to_pylist()
    for v, (top_ids, top) in enumerate(zip(ids, probs, strict=True)):
        row = rows[v // NUM_SAMPLES]
        stored_ids, target = codec.decode_labels(row[REINFORCEMENTS_COLUMN][v % NUM_SAMPLES], row.get(CLASSES_COLUMN))
        if labels == "sampled":  # the classes drawn are the teacher's, their shares sum to one
            assert set(stored_ids.tolist()) <= set(top_ids.tolist()) and float(target.sum()) == pytest.approx(1.0)
        else:
            assert stored_ids.tolist() == top_ids.tolist() and target.tolist() == pytest.approx(top.tolist(), rel=0.06)
