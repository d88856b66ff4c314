"""Bytes on disk per stored reinforcement (params + top-k), for each policy, side by side with other layouts.

Teacher outputs are simulated: per sample a fixed logit vector over C classes with one dominant class, plus
per-augmentation noise, so the top-k ids repeat across a sample's records as a real teacher's do. Params are
real draws of each policy on an ImageNet-sized (375 x 500) image. The reference numbers for apple/ml-dr (gzipped
pickles) are from ../shared/NOTES.md. Headline (last line): bytes per reinforcement of ``rrc+ra_re`` at k=10.

    python benchmarks/storage.py [--samples 300] [--num-samples 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import datasets
import numpy as np
import pyarrow.parquet as pq
import torch

import hf_dr
from hf_dr.augment.seeding import generator_for
from hf_dr.data import schema
from hf_dr.generate.parquet import write_parquet

ML_DR_BYTES = {"rrc": 65, "rrc+ra_re": 73, "rrc+mix+ra_re": 104}


def build(policy_name: str, samples: int, num_samples: int, topk: int, num_classes: int) -> datasets.Dataset:
    policy = hf_dr.create_policy(policy_name)
    rng = np.random.default_rng(0)
    keys = [f"n{c:08d}_{s}" for s, c in enumerate(rng.integers(0, 10**8, samples))]
    pool = hf_dr.augment.ops.PartnerPool(keys, [(375, 500)] * samples)
    rows = []
    for key in keys:
        base = rng.normal(0, 1, num_classes)
        base[rng.integers(num_classes)] += 6
        noisy = torch.softmax(torch.tensor(base + rng.normal(0, 1, (num_samples, num_classes))), -1)
        ids, probs = hf_dr.sparsify(noisy, topk)
        records = [
            schema.encode_record(policy, policy.sample_params((375, 500), generator_for(0, key, j), pool), i, p)
            for j, (i, p) in enumerate(zip(ids.tolist(), probs.tolist(), strict=True))
        ]
        rows.append({"key": key, "reinforcements": records})
    return datasets.Dataset.from_list(rows, features=schema.reinforcement_features(policy, topk, num_classes))


def sizes(dataset: datasets.Dataset, folder: str) -> dict[str, int]:
    out = {}
    pq.write_table(dataset.data.table, f"{folder}/snappy.parquet")
    out["parquet snappy (push_to_hub default)"] = os.path.getsize(f"{folder}/snappy.parquet")
    pq.write_table(dataset.data.table, f"{folder}/zstd.parquet", compression="zstd")
    out["parquet zstd default"] = os.path.getsize(f"{folder}/zstd.parquet")
    out["hf_dr write_parquet"] = os.path.getsize(write_parquet(dataset.data.table, f"{folder}/hf_dr.parquet"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=100, help="reinforcements per sample (N)")
    parser.add_argument("--num-classes", type=int, default=1000)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    headline = None
    with tempfile.TemporaryDirectory() as folder:
        for name, k in [("rrc", 10), ("rrc+mix+ra_re", 10), ("rrc+ra_re", 5), ("rrc+ra_re", 10)]:
            dataset = build(name, args.samples, args.num_samples, k, args.num_classes)
            records = args.samples * args.num_samples
            for layout, size in sizes(dataset, folder).items():
                per = size / records
                ref = ML_DR_BYTES.get(name) if k == 10 else 44
                print(f"{name:14s} k={k:2d} {layout:38s} {per:6.1f} B/reinforcement  (ml-dr {ref} B, ratio "
                      f"{per / ref:.2f})")
            headline = per
    print(f"bytes_per_reinforcement_rrc+ra_re_k10: {headline:.1f}")


if __name__ == "__main__":
    main()
