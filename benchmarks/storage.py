"""Bytes on disk per stored reinforcement, per (param mode, label codec, policy, k), beside apple/ml-dr and FKD.

Records are built by the project's own writer (the run's ``RecordCodec`` encodes params and labels,
``hf_dr.generate.shard_table.ShardTable`` assembles them) and written by ``write_parquet`` at zstd 19 (the smallest
push) and 3.
Params are real draws of each policy on an ImageNet-sized (375 x 500) image.

Teacher outputs are simulated, and their realism is stated and varied: each image has a base logit vector over
C = 1000 classes (standard normal, its own class +6) and each of its N records adds Gaussian noise of a scale
calibrated so that the distinct classes among the image's top-10 over its N records average D (20, 60, 200: a
confident teacher on light augmentation to a hesitant one on heavy augmentation). Class-set and sampled codecs
depend on D; the others barely do.

Reference numbers: apple/ml-dr's published gzipped pickles (../shared/NOTES.md: 73 B for rrc+ra_re, 65 B for rrc,
104 B for M*+R*, 44 B for the Small variant at k=5) and FKD's 34 B at k=5. Headline (last line): the smallest codec's
bytes per reinforcement for ``rrc+ra_re``, k=10, N=400, at D=60.

    python benchmarks/storage.py [--images 100] [--num-samples 400]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import datasets
import numpy as np
import pyarrow as pa
import torch

import hf_dr
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.seeding import generator_for
from hf_dr.data.codec import RecordCodec
from hf_dr.generate.parquet import write_parquet
from hf_dr.generate.plan import Shard
from hf_dr.generate.shard_table import ShardTable, output_features

ML_DR_BYTES = {("rrc", 10): 65, ("rrc+ra_re", 10): 73, ("rrc+mix+ra_re", 10): 104, ("rrc+ra_re", 5): 44}
FKD_BYTES = {5: 34}
NUM_CLASSES, SIZE = 1000, (375, 500)
CODECS = ["stored/fp16-topk", "stored/q8-topk", "stored/q8-topk-set", "seeded/fp16-topk", "seeded/q8-topk",
          "seeded/q8-topk-set", "seeded/sampled:K", "seeded/sampled:2K"]


def teacher_probs(images: int, num_samples: int, noise: float, seed: int = 0) -> list[torch.Tensor]:
    """Per image ``[N, C]`` probabilities: a base logit vector (own class +6) plus per-record noise of ``noise``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        base = rng.normal(0, 1, NUM_CLASSES)
        base[rng.integers(NUM_CLASSES)] += 6
        logits = base + rng.normal(0, noise, (num_samples, NUM_CLASSES))
        out.append(torch.softmax(torch.from_numpy(logits).float(), -1))
    return out


def distinct_classes(probs: list[torch.Tensor], k: int = 10) -> float:
    return float(np.mean([len(torch.topk(p, k).indices.unique()) for p in probs]))


def calibrate(target: float, num_samples: int) -> float:
    """The noise scale whose images average ``target`` distinct top-10 classes over their N records (bisection)."""
    low, high = 0.0, 3.0
    for _ in range(14):
        mid = (low + high) / 2
        if distinct_classes(teacher_probs(6, num_samples, mid, seed=99)) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def draws(policy: hf_dr.AugmentationPolicy, keys: list[str], num_samples: int) -> list[dict]:
    pool = PartnerPool(keys, [SIZE] * len(keys)) if policy.needs_partner else None
    return [policy.sample_params(SIZE, generator_for(0, key, j), pool) for key in keys for j in range(num_samples)]


def build(policy: hf_dr.AugmentationPolicy, codec: RecordCodec, drawn: list[dict], probs: list[torch.Tensor],
          keys: list[str], topk: int) -> pa.Table:
    """The table a run with ``codec`` writes for these images (params already drawn, teacher outputs given)."""
    num_samples = probs[0].shape[0]
    features = output_features(policy, topk, NUM_CLASSES, "key", codec=codec, num_samples=num_samples)
    params_type = datasets.Features({"params": features["reinforcements"].feature["params"]}).arrow_schema.field(
        "params").type
    stored = [codec.encode_params(policy, params) for params in drawn]
    table = ShardTable(Shard(0, 0, len(keys)), features, keys, None, num_samples, codec=codec)
    for row, (key, p) in enumerate(zip(keys, probs, strict=True)):
        ids, values = codec.encode_labels(p, topk, 0, lambda key=key: [(key, j) for j in range(num_samples)])
        start = row * num_samples
        table.add(start, start + num_samples, pa.array(stored[start:start + num_samples], type=params_type), ids,
                  values)
    return table.build()


def sizes(table: pa.Table, folder: str) -> tuple[int, int]:
    """Bytes at zstd 19 (the smallest push) and at a run's level (3)."""
    return (os.path.getsize(write_parquet(table, f"{folder}/push.parquet", compression_level=19)),
            os.path.getsize(write_parquet(table, f"{folder}/run.parquet", compression_level=3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=400, help="reinforcements per image (N)")
    args = parser.parse_args()
    start = time.perf_counter()
    keys = [f"n{i % 1000:08d}_{i}" for i in range(args.images)]
    noises = {d: calibrate(d, args.num_samples) for d in (20, 60, 200)}
    probs = {d: teacher_probs(args.images, args.num_samples, n) for d, n in noises.items()}
    print(f"teacher simulation: noise {', '.join(f'{n:.3f}' for n in noises.values())} gives "
          f"{', '.join(f'D={distinct_classes(p):.0f}' for p in probs.values())} distinct top-10 classes per image "
          f"over N={args.num_samples}; {args.images} images x N = {args.images * args.num_samples:,} records a table")
    grid = [(p, k, d) for p in ("rrc+ra_re",) for k in (5, 10) for d in (20, 60, 200)]
    grid += [(p, 10, 60) for p in ("rrc", "rrc+mix+ra_re")]
    print("| policy | k | D | codec | B/reinforcement (zstd 19) | (run, zstd 3) | vs ml-dr | vs FKD |")
    print("|---|---|---|---|---|---|---|---|")
    best: dict[tuple[str, int, int], tuple[float, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, k, d in grid:
            policy = hf_dr.create_policy(name)
            drawn = draws(policy, keys, args.num_samples)
            for spec in CODECS:
                codec = RecordCodec.parse(spec.replace(":2K", f":{2 * k}").replace(":K", f":{k}"), 1.0).resolved(k)
                push, run = sizes(build(policy, codec, drawn, probs[d], keys, k), folder)
                per, per_run = push / (args.images * args.num_samples), run / (args.images * args.num_samples)
                ref, fkd = ML_DR_BYTES.get((name, k)), FKD_BYTES.get(k)
                print(f"| {name} | {k} | {d} | {codec.name} | {per:.1f} | {per_run:.1f} | "
                      f"{f'{per / ref:.2f}x' if ref else '-'} | {f'{per / fkd:.2f}x' if fkd else '-'} |")
                if per < best.get((name, k, d), (float("inf"), ""))[0]:
                    best[(name, k, d)] = (per, codec.name)
    for (name, k, d), (per, codec) in best.items():
        ref = ML_DR_BYTES.get((name, k))
        print(f"best for {name} k={k} D={d}: {codec} {per:.1f} B" + (f" ({per / ref:.2f}x ml-dr)" if ref else ""))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    print(f"best_codec_bytes_per_reinforcement_rrc+ra_re_k10: {best[('rrc+ra_re', 10, 60)][0]:.1f}")


if __name__ == "__main__":
    main()
