"""Sample selection at generation time (paper App. C.6): keep N' of each image's N stored augmentations.

A finished run's folder is read shard by shard; of each row's N records the N' a rule picks are kept, in their
stored order, and written as a new run whose config and shard descriptions say ``num_samples=N'`` and
``selection={"rule": ..., "from": N}``: a student replays the selected dataset as any other, and the choice travels
with every shard. The rules, each on the teacher's stored probabilities of a record:

- ``min_confidence``: the N' records whose largest probability is smallest (the hardest views);
- ``max_entropy``: the N' of largest entropy (the probability left out of the top-k counted as one outcome);
- ``max_loss``: the N' of largest cross-entropy to the sample's label (a label outside the top-k gets the mass
  left out, spread over the classes not stored);
- ``kmeans``: N' clusters of the records' probability vectors (Lloyd's algorithm from the farthest-point start, so
  no random draw); the record nearest each centre;
- ``random``: N' records drawn by a generator seeded with the run seed and the key (the baseline at equal storage).

Records whose params are drawn again at replay (``seeded`` codecs) or whose labels were sampled with a per-record
seed (``sampled``) are bound to their index, so their runs are refused: select from a run with stored params.

Example:
    >>> select_records(np.array([[0, 1], [1, 0], [0, 2]]), np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.3]]),
    ...                label=0, num_classes=3, keep=2, rule="min_confidence")
    [1, 2]
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hf_dr.data.codec import RecordCodec
from hf_dr.data.description import RunDescription, with_description
from hf_dr.data.schema import CLASSES_COLUMN, REINFORCEMENTS_COLUMN
from hf_dr.errors import InvalidConfigError
from hf_dr.files import write_json_atomic
from hf_dr.generate.plan import Shard
from hf_dr.generate.run_config import CONFIG_FILE, ReinforceConfig
from hf_dr.generate.storage import clear_run, shard_paths, verify_run, write_manifest, write_shard

logger = logging.getLogger(__name__)

RULES = ("min_confidence", "max_entropy", "max_loss", "kmeans", "random")
KMEANS_ITERATIONS = 10


def select_records(ids: np.ndarray, probs: np.ndarray, label: int | None, num_classes: int, keep: int,
                   rule: str, seed: int = 0, key: str = "") -> list[int]:
    """The indices (ascending) of the ``keep`` records of one sample that ``rule`` picks (see the module docstring),
    from its records' class ids and probabilities (``[N, k]`` each)."""
    count = len(ids)
    if keep >= count:
        return list(range(count))
    probs = np.asarray(probs, dtype=np.float64)
    rest = np.clip(1.0 - probs.sum(1), 0.0, 1.0)  # mass outside the stored classes
    if rule == "min_confidence":
        score = -probs.max(1)
    elif rule == "max_entropy":
        score = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(1) - rest * np.log(np.clip(rest, 1e-12, None))
    elif rule == "max_loss":
        if label is None:
            raise InvalidConfigError("the max_loss selection needs the samples' labels; the run stored none")
        stored = (ids == label) * probs
        hit = stored.sum(1)
        unseen = rest / max(num_classes - ids.shape[1], 1)
        score = -np.log(np.clip(np.where((ids == label).any(1), hit, unseen), 1e-12, None))
    elif rule == "kmeans":
        return _kmeans_picks(_dense(ids, probs, num_classes), keep)
    elif rule == "random":
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return sorted(rng.choice(count, keep, replace=False).tolist())
    else:
        raise InvalidConfigError(f"unknown selection rule {rule!r}; valid ones are {list(RULES)}")
    order = sorted(range(count), key=lambda i: (-score[i], i))  # largest score first, ties by index
    return sorted(order[:keep])


def _dense(ids: np.ndarray, probs: np.ndarray, num_classes: int) -> np.ndarray:
    """The records' probabilities over the classes any of them stores (the other classes add nothing to a
    distance): ``[N, D]`` with D distinct stored classes, not ``[N, num_classes]``."""
    classes, positions = np.unique(ids.astype(np.int64), return_inverse=True)
    dense = np.zeros((len(ids), len(classes)), dtype=np.float32)
    np.put_along_axis(dense, positions.reshape(ids.shape), probs, axis=1)
    return dense


def _kmeans_picks(points: np.ndarray, keep: int) -> list[int]:
    """The record nearest each of ``keep`` k-means centres of ``points`` (deterministic farthest-point start).
    Distances are ``[N, keep]`` (never ``[N, keep, C]``): 400 records x 100 centres of 1,000 classes stay small."""
    chosen = [int(np.argmax(points.max(1)))]  # the most confident record first
    distance = ((points - points[chosen[0]]) ** 2).sum(1)
    while len(chosen) < keep:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, ((points - points[chosen[-1]]) ** 2).sum(1))
    centres = points[chosen].copy()
    for _ in range(KMEANS_ITERATIONS):
        assignment = _distances(points, centres).argmin(1)
        members = np.zeros((keep, len(points)), dtype=points.dtype)
        members[assignment, np.arange(len(points))] = 1
        counts, sums = members.sum(1), members @ points
        filled = counts > 0  # an empty cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    distances = _distances(points, centres)
    picks: list[int] = []
    for c in range(keep):  # the nearest record not yet taken
        picks.append(next(int(i) for i in np.argsort(distances[:, c], kind="stable") if int(i) not in picks))
    return sorted(picks)


def _distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared distances ``[N, K]`` of every point to every centre."""
    return (points ** 2).sum(1)[:, None] - 2 * points @ centres.T + (centres ** 2).sum(1)[None]


def select_samples(run_dir: str, output_dir: str, keep: int, rule: str, overwrite: bool = False) -> ReinforceConfig:
    """Writes to ``output_dir`` the run of ``run_dir`` with ``keep`` (N') of each row's N records, chosen by ``rule``
    (see the module docstring); returns the new run's config. The new folder is a complete run: load it with
    :func:`hf_dr.load_run_records` or train on it with :func:`hf_dr.train.inputs.training_data`.

    Example (a run of N=4 records per digit with a random ``test_resnet`` teacher; keep its 2 hardest):
        >>> import tempfile
        >>> from hf_dr import load_run_records
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run(num_samples=4)  # 4 bundled digits reinforced by a random test_resnet
        >>> hardest = tempfile.mkdtemp()
        >>> config = select_samples(run, hardest, keep=2, rule="max_loss")
        >>> config.num_samples, config.selection
        (2, {'rule': 'max_loss', 'from': 4})
        >>> len(load_run_records(hardest)[0]["reinforcements"])  # a complete run of N'=2
        2
    """
    config = ReinforceConfig.load(run_dir)
    if config is None:
        raise InvalidConfigError(f"{run_dir!r} holds no reinforcement run (no {CONFIG_FILE})")
    codec = RecordCodec.from_config(config.codec)
    if codec.params == "seeded" or codec.labels == "sampled":
        raise InvalidConfigError(
            f"{run_dir!r} stores {codec.name!r} records, bound to their index (params drawn again at replay, or "
            "labels drawn with a per-record seed); selecting some would misplace them. Reinforce with stored params "
            "and top-k labels (the default codec), then select.")
    if rule not in RULES:
        raise InvalidConfigError(f"unknown selection rule {rule!r}; valid ones are {list(RULES)}")
    if not 1 <= keep < config.num_samples:
        raise InvalidConfigError(f"keep should be between 1 and N - 1 = {config.num_samples - 1}, but got {keep}")
    if os.path.abspath(output_dir) == os.path.abspath(run_dir):
        raise InvalidConfigError("the selected run needs its own folder: pass another output_dir")
    if os.path.exists(os.path.join(output_dir, CONFIG_FILE)):
        if not overwrite:
            raise InvalidConfigError(f"{output_dir!r} already holds a run; pass overwrite=True to replace it")
        clear_run(output_dir)
    manifest = verify_run(run_dir)
    selected = replace(config, num_samples=keep, selection={"rule": rule, "from": config.num_samples})
    fingerprint = selected.fingerprint()
    label_column = config.columns.label
    shards = []
    for index, (record, path) in enumerate(zip(manifest["shards"], shard_paths(run_dir, manifest), strict=True)):
        shard = Shard(index, record["start"], record["stop"])  # verify_run checked the list against the plan
        table = pq.read_table(path)
        skipped = [r for r in manifest.get("skipped", []) if record["start"] <= r["row"] < record["stop"]]
        write_shard(output_dir, shard, _selected_table(table, selected, codec, label_column), fingerprint, skipped)
        shards.append(shard)
    selected.save(output_dir)
    write_manifest(output_dir, shards, fingerprint, keep)
    write_json_atomic(os.path.join(output_dir, "selection.json"),
                      {"rule": rule, "keep": keep, "from": config.num_samples, "source": os.path.abspath(run_dir)})
    logger.info("kept %d of %d records per row (%s) in %d shard(s) -> %s", keep, config.num_samples, rule,
                len(shards), output_dir)
    return selected


def _selected_table(table: pa.Table, config: ReinforceConfig, codec: RecordCodec, label_column: str | None
                    ) -> pa.Table:
    """``table`` with each row's records cut to those :func:`select_records` keeps, and the new description."""
    features = datasets.Features.from_arrow_schema(table.schema)
    description = RunDescription.from_run(config.to_dict(), features.get(label_column) if label_column else None)
    column = table.column(REINFORCEMENTS_COLUMN).combine_chunks()
    rows = table.to_pylist()
    picks, offsets = [], [0]
    for index, row in enumerate(rows):
        if not row[REINFORCEMENTS_COLUMN]:  # a row the run skipped (undecodable image): no records
            offsets.append(len(picks))
            continue
        decoded = [codec.decode_labels(r, row.get(CLASSES_COLUMN)) for r in row[REINFORCEMENTS_COLUMN]]
        ids = np.stack([d[0] for d in decoded])
        probs = np.stack([d[1] for d in decoded])
        label = row.get(label_column) if label_column else None
        chosen = select_records(ids, probs, label, config.num_classes, config.num_samples,
                                config.selection["rule"], config.seed, str(row[table.schema.names[0]]))
        start = column.offsets[index].as_py()
        picks.extend(start + i for i in chosen)
        offsets.append(len(picks))
    records = column.values.take(pa.array(picks, pa.int64()))
    new_column = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), records, type=column.type,
                                          mask=column.is_null())
    table = table.set_column(table.schema.get_field_index(REINFORCEMENTS_COLUMN), REINFORCEMENTS_COLUMN, new_column)
    schema = with_description(features, description).arrow_schema
    return table.cast(schema)
