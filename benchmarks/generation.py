"""Throughput of the full reinforcement pipeline against the same teacher's forward pass on ready-made batches.

The pipeline is :func:`hf_dr.reinforce` end to end (key scan, JPEG decode and ``rrc+ra_re`` in DataLoader workers,
teacher forward, top-k, Parquet shards with checksums, manifest) on real photos: random crops (300-427 px) of
scikit-learn's two sample photos, re-encoded as JPEG. The baseline is the teacher (loaded once, same object) on
uint8 batches already in memory, same batch size and threads. The two are timed back to back ``--repeats`` times and
the headline (last line) is the median of the per-pair ratios pipeline / forward, which is robust to other load on
a shared machine (the absolute rates are not: the load average is printed with them).

    python benchmarks/generation.py [--teacher resnet18] [--rows 48] [--num-samples 4] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

import datasets
import numpy as np
import safetensors.torch
import timm
import torch
from PIL import Image

from hf_dr.generate.run import reinforce
from hf_dr.generate.storage import verify_run
from hf_dr.models.teacher import create_teacher


def photo_crops(rows: int, seed: int = 0) -> datasets.Dataset:
    """``rows`` distinct JPEGs: random crops of the two scikit-learn photos (ImageNet-like sizes)."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    images = []
    for i in range(rows):
        photo = photos[i % 2]
        h, w = int(rng.integers(300, 428)), int(rng.integers(300, 428))
        y, x = int(rng.integers(0, photo.shape[0] - h + 1)), int(rng.integers(0, photo.shape[1] - w + 1))
        buffer = io.BytesIO()
        Image.fromarray(photo[y : y + h, x : x + w]).save(buffer, format="JPEG", quality=90)
        images.append({"bytes": buffer.getvalue(), "path": None})
    return datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))


def save_random_teacher(arch: str, directory: str) -> str:
    """A randomly initialised ``arch`` (1000 classes) saved as local safetensors: its member spec."""
    path = os.path.join(directory, f"{arch}.safetensors")
    safetensors.torch.save_file(timm.create_model(arch).state_dict(), path)
    return f"{arch}={path}"


def time_forward(teacher, batches: int, batch_size: int, device: str | torch.device = "cpu") -> float:
    """Views per second of the teacher alone on uint8 batches already in memory (on ``device``, the teacher's)."""
    views = [torch.randint(0, 256, (batch_size, v.channels, v.height, v.width), dtype=torch.uint8, device=device)
             for v in teacher.views]
    with torch.inference_mode():
        teacher(views)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        for _ in range(batches):
            teacher(views)
        synchronize(device)
    return batches * batch_size / (time.perf_counter() - start)


def synchronize(device: str | torch.device) -> None:
    """Waits for the queued work of a CUDA ``device`` (a no-op on CPU), so that a timer reads finished work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_pipeline(dataset, teacher, args, directory: str, accelerator=None) -> tuple[float, float, list[dict]]:
    """Views per second of :func:`reinforce` from call to return (a fresh output folder each time), the Parquet
    bytes per stored reinforcement and the manifest's shard records (sizes and SHA-256)."""
    output_dir = tempfile.mkdtemp(dir=directory)
    views = len(dataset) * args.num_samples
    start = time.perf_counter()
    reinforce(dataset, teacher, args.policy, args.num_samples, 10, 0, output_dir, label_column=None,
              shard_size=args.shard_size, batch_size=args.batch_size, num_workers=args.num_workers, progress=False,
              accelerator=accelerator)
    seconds = time.perf_counter() - start
    shards = verify_run(output_dir)["shards"]
    return views / seconds, sum(s["num_bytes"] for s in shards) / views, shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet18", help="timm architecture (random weights, saved locally)")
    parser.add_argument("--policy", default="rrc+ra_re")
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=None, help="default: reinforce's (0 on CPU)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dataset = photo_crops(args.rows)
    with tempfile.TemporaryDirectory() as directory:
        teacher = create_teacher(save_random_teacher(args.teacher, directory), channels_last=args.channels_last)
        view = teacher.views[0]
        print(f"teacher {args.teacher} at {view.height}x{view.width}, {torch.get_num_threads()} threads; "
              f"{args.rows} photos x N={args.num_samples}, batch {args.batch_size}, num_workers={args.num_workers}")
        forward, pipeline = [], []
        for _ in range(args.repeats):
            forward.append(time_forward(teacher, args.rows * args.num_samples // args.batch_size, args.batch_size))
            rate, size, _ = time_pipeline(dataset, teacher, args, directory)
            pipeline.append(rate)
            print(f"forward on ready batches: {forward[-1]:.1f} img/s; full pipeline: {rate:.1f} img/s; ratio "
                  f"{rate / forward[-1]:.2f} (load average {os.getloadavg()[0]:.1f})")
    print(f"parquet_bytes_per_reinforcement: {size:.1f} (k=10 of 1000 classes, random-weight teacher)")
    print(f"forward_img_per_s: {statistics.median(forward):.1f}")
    print(f"pipeline_img_per_s: {statistics.median(pipeline):.1f}")
    ratios = [p / f for p, f in zip(pipeline, forward, strict=True)]
    print(f"pipeline_over_forward: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
