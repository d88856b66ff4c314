"""Per-sample cost of streamed reinforced datasets (both layouts) against the same rows loaded map-style.

Rows: small real photos (random 128-192 px crops of scikit-learn's two sample photos, PNG and JPEG in turn), a key,
a label and N records each (``rrc+ra_re``, k=10 soft labels over 1000 classes: the ImageNet+ layout at N=400). The
records are synthetic but schema-exact: params from ``policy.sample_params`` seeded by (seed, key, index), top-k of
random teacher probabilities, assembled by the run's own :class:`hf_dr.generate.shard_table.ShardTable` and written
to one Parquet file. Map-style loads it with ``datasets.load_dataset("parquet", ...)`` and attaches
:class:`hf_dr.ReinforcedTransform` (``ds[i]`` per sample); the stream is ``load_dataset(..., streaming=True)`` mapped
by :func:`hf_dr.data.streaming.stream_replay`, as ``load_reinforced(repo, streaming=True)`` builds it. The same file
cut into source images and reinforcement rows gives the metadata-only layout: map-style attaches the transform to the
images, the stream zips both streamed files (:func:`hf_dr.data.streaming.zip_records`). Both replay the same records
of the same epoch. Map-style and stream are timed in turn ``--repeats`` times per layout; the headline (last line) is
the worse layout's median ratio stream / map-style of the per-sample cost (the stream's after its first sample). Also
printed: the time to the first streamed sample (building the stream included) and the RSS while streaming (it should
stay flat).

Workers (issue 23): each layout's stream as ``load_reinforced`` shards it, read by a DataLoader with 1 and with 2
persistent workers, in turn, ``--repeats`` epochs each after a warm-up epoch: samples/s of each, and the share of
the CPU time (and of the samples) each of the 2 workers spent. The self-contained file (one row group, as a small
push writes it) streams in :data:`hf_dr.data.parquet_rows.MIN_PARTS` row ranges
(:func:`hf_dr.hub.shards.pushed_stream`); the metadata-only source is written as ``--source-files`` Parquet files,
one part each (:func:`hf_dr.hub.shards.stream_parts`), zipped with ranges of the reinforcement file. The headline
(last line) gives the worse layout's stream / map-style ratio, its 2-vs-1-worker samples/s ratio and the smallest
worker's CPU share.

    python benchmarks/streaming_cost.py [--rows 200] [--num-samples 400] [--size 112] [--repeats 3] [--source-files 4]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import datasets
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from hf_dr import ReinforcedTransform, create_policy, sparsify
from hf_dr.augment.seeding import generator_for
from hf_dr.data.parquet_rows import ParquetRows, plan_parts
from hf_dr.data.streaming import ReinforcedIterableDataset, empty_reinforcements, stream_replay, zip_records
from hf_dr.generate.plan import Shard
from hf_dr.generate.shard_table import ShardTable, output_features

POLICY, TOPK, NUM_CLASSES = "rrc+ra_re", 10, 1000


def photo_cells(rows: int, seed: int = 0) -> tuple[list[dict], list[tuple[int, int]]]:
    """``rows`` encoded photos (undecoded Image cells, PNG and JPEG in turn) and their (height, width)."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    cells, sizes = [], []
    for i in range(rows):
        photo = photos[i % 2]
        h, w = int(rng.integers(128, 193)), int(rng.integers(128, 193))
        y, x = int(rng.integers(0, photo.shape[0] - h + 1)), int(rng.integers(0, photo.shape[1] - w + 1))
        buffer = io.BytesIO()
        Image.fromarray(photo[y : y + h, x : x + w]).save(buffer, format="PNG" if i % 2 else "JPEG", quality=90)
        cells.append({"bytes": buffer.getvalue(), "path": None})
        sizes.append((h, w))
    return cells, sizes


def self_contained_table(rows: int, num_samples: int, seed: int = 0) -> pa.Table:
    """A self-contained reinforced table (image, key, label, N records per row) with its ``datasets`` features."""
    policy = create_policy(POLICY)
    cells, sizes = photo_cells(rows, seed)
    keys, labels = [f"photo-{i:05d}" for i in range(rows)], [i % NUM_CLASSES for i in range(rows)]
    features = output_features(policy, TOPK, NUM_CLASSES, "key", "label", datasets.ClassLabel(num_classes=NUM_CLASSES))
    shard = ShardTable(Shard(0, 0, rows), features, keys, labels, num_samples)
    params_type = datasets.Features({"params": policy.features()}).arrow_schema.field("params").type
    logits = torch.Generator().manual_seed(seed)
    for row, key in enumerate(keys):
        params = [policy.encode(policy.sample_params(sizes[row], generator_for(seed, key, j)))
                  for j in range(num_samples)]
        probs = torch.softmax(2 * torch.randn(num_samples, NUM_CLASSES, generator=logits), -1)
        ids, values = sparsify(probs, TOPK)
        shard.add(row * num_samples, (row + 1) * num_samples, pa.array(params, type=params_type), ids, values)
    records = shard.build()
    full = datasets.Features({"image": datasets.Image(), **features})
    image = pa.array(cells, type=full.arrow_schema.field("image").type)
    return pa.Table.from_arrays([image, *records.columns], schema=full.arrow_schema)


def transform_options(size: int) -> dict:
    return {"policy": POLICY, "num_classes": NUM_CLASSES, "size": size, "seed": 0}


def map_style(path: str, cache_dir: str, size: int) -> datasets.Dataset:
    dataset = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache_dir)
    return ReinforcedTransform(dataset, **transform_options(size)).attach(dataset)


def streamed(path: str, size: int, parts: bool = False) -> ReinforcedIterableDataset:
    """The stream as ``load_reinforced(..., streaming=True)`` builds it for a self-contained repo (``parts``: in row
    ranges, as it reads a pushed repo; else the one file as one shard)."""
    stream = datasets.load_dataset("parquet", data_files=path, split="train", streaming=True)
    if parts:
        stream = ParquetRows.read([path]).stream(stream.features)
    table = empty_reinforcements(stream.features, "key", "reinforcements")
    return stream_replay(stream, ReinforcedTransform(table, **transform_options(size)), "image", "key",
                         "reinforcements")


def split_layout(path: str, folder: str, source_files: int) -> tuple[list[str], str]:
    """The self-contained file cut into a metadata-only pair: the source images (``source_files`` files) and the
    reinforcement rows."""
    table = pq.read_table(path)
    images, records = [], os.path.join(folder, "records.parquet")
    for i in range(source_files):
        start, stop = table.num_rows * i // source_files, table.num_rows * (i + 1) // source_files
        images.append(os.path.join(folder, f"images-{i:05d}.parquet"))
        pq.write_table(table.select(["image", "key", "label"]).slice(start, stop - start), images[-1],
                       compression="zstd")
    pq.write_table(table.select(["key", "label", "reinforcements"]), records, compression="zstd")
    return images, records


def map_style_metadata_only(images: list[str], records: str, cache_dir: str, size: int) -> datasets.Dataset:
    source = datasets.load_dataset("parquet", data_files=images, split="train", cache_dir=cache_dir)
    table = datasets.load_dataset("parquet", data_files=records, split="train", cache_dir=cache_dir)
    return ReinforcedTransform(table, **transform_options(size)).attach(source)


def streamed_metadata_only(images: list[str], records: str, size: int, parts: bool = False
                           ) -> ReinforcedIterableDataset:
    """Both sides streamed and zipped, as ``load_reinforced(..., streaming=True)`` builds a metadata-only repo's
    (``parts``: one part per source file, as for a push that recorded them; else one shard)."""
    source = datasets.load_dataset("parquet", data_files=images, split="train", streaming=True)
    rows = datasets.load_dataset("parquet", data_files=records, split="train", streaming=True)
    transform = ReinforcedTransform(empty_reinforcements(rows.features, "key", "reinforcements"),
                                    **transform_options(size))
    sharding = None
    if parts:
        record_files = ParquetRows.read([records])
        files = [{"path": os.path.basename(path), "num_rows": pq.read_metadata(path).num_rows} for path in images]
        sharding = (plan_parts(files, [], record_files.total), record_files)
    return zip_records(source, rows, transform, "image", "key", "key", "reinforcements", parts=sharding)


def tag_worker(row: dict) -> dict:
    """Adds the DataLoader worker's id and its CPU seconds so far (read where the row is made)."""
    info = torch.utils.data.get_worker_info()
    return {**row, "worker": -1 if info is None else info.id, "cpu": time.process_time()}


def measure_workers(name: str, make: Callable[[], ReinforcedIterableDataset], rows: int, repeats: int
                    ) -> tuple[float, float]:
    """Samples/s with 1 and 2 persistent workers (epochs in turn after a warm-up epoch) and each of the 2 workers'
    share of the CPU time and samples; returns (2-vs-1 samples/s ratio, smallest worker CPU share)."""
    stream = make().map(tag_worker)
    print(f"{name} stream: {stream.num_shards} shards")
    loaders = {n: torch.utils.data.DataLoader(stream, batch_size=16, num_workers=n, persistent_workers=True)
               for n in (1, 2)}
    rates, cpu, samples = {1: [], 2: []}, {0: 0.0, 1: 0.0}, {0: 0, 1: 0}
    for epoch in range(repeats + 1):
        for workers, loader in loaders.items():
            stream.set_epoch(epoch)
            start, first, last, count = time.perf_counter(), {}, {}, 0
            for batch in loader:
                for worker, seconds in zip(batch["worker"].tolist(), batch["cpu"].tolist(), strict=True):
                    first.setdefault(worker, seconds)
                    last[worker] = seconds
                    if workers == 2 and epoch:
                        samples[worker] += 1
                count += len(batch["key"])
            assert count == rows, (name, workers, count)
            if epoch:  # the first epoch starts the workers
                rates[workers].append(count / (time.perf_counter() - start))
                if workers == 2:
                    for worker in first:
                        cpu[worker] += last[worker] - first[worker]
    total_cpu, total = sum(cpu.values()) or 1.0, sum(samples.values())
    shares = {worker: cpu[worker] / total_cpu for worker in cpu}
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"{name} workers: 1 worker {one:.0f} samples/s, 2 workers {two:.0f} samples/s (x{two / one:.2f}); "
          "2-worker split: " + ", ".join(f"worker {w} {shares[w]:.0%} of the CPU, {samples[w] / total:.0%} of the "
                                         "samples" for w in sorted(shares)))
    return two / one, min(shares.values())


def measure(name: str, mapped: datasets.Dataset, make: Callable[[], ReinforcedIterableDataset], rows: int,
            repeats: int) -> float:
    """Median stream / map-style cost per sample of one layout, printed with its first-sample time and RSS."""
    check_same(mapped, make())
    time_map(mapped)  # warm the page cache and the import paths
    ratios, firsts, rss = [], [], []
    for repeat in range(repeats):
        per_map = time_map(mapped)
        per_stream, first, count = time_stream(make, rss)
        assert count == rows
        ratios.append(per_stream / per_map)
        firsts.append(first)
        print(f"{name} run {repeat}: map-style {per_map * 1e3:.2f} ms/sample, stream {per_stream * 1e3:.2f} "
              f"ms/sample, first sample {first:.2f} s")
    print(f"{name} stream RSS every 50 samples (MB): {[round(r) for r in rss]}")
    print(f"first streamed sample ({name}): median {statistics.median(firsts):.2f} s")
    print(f"{name} stream_vs_map: {statistics.median(ratios):.2f}")
    return statistics.median(ratios)


def check_same(mapped: datasets.Dataset, stream: ReinforcedIterableDataset, count: int = 8) -> None:
    """The first ``count`` streamed samples equal the map-style ones of their keys (same records, same pixels)."""
    rows = {key: row for row, key in enumerate(mapped.with_format("arrow")[:].column("key").to_pylist())}
    for sample in stream.take(count):
        expected = mapped[rows[sample["key"]]]
        assert torch.equal(sample["pixel_values"], expected["pixel_values"]), sample["key"]
        assert torch.equal(sample["labels"], expected["labels"]), sample["key"]


def time_map(dataset: datasets.Dataset) -> float:
    """Seconds per sample of ``dataset[i]`` over every row."""
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return (time.perf_counter() - start) / len(dataset)


def time_stream(make: Callable[[], ReinforcedIterableDataset], rss: list[float]) -> tuple[float, float, int]:
    """Seconds per sample after the first one, seconds to the first sample (building the stream included) and the
    number of samples; appends the RSS (MB) every 50 samples to ``rss``."""
    process = psutil.Process()
    start = time.perf_counter()
    iterator = iter(make())
    next(iterator)
    first, count = time.perf_counter() - start, 1
    for _ in iterator:
        count += 1
        if count % 50 == 0:
            rss.append(process.memory_info().rss / 2**20)
    return (time.perf_counter() - start - first) / (count - 1), first, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--num-samples", type=int, default=400)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source-files", type=int, default=4)
    parser.add_argument("--workers-only", action="store_true", help="skip the stream / map-style comparison")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = os.path.join(tmp, "train.parquet")
        pq.write_table(self_contained_table(args.rows, args.num_samples), path, compression="zstd")
        print(f"built {args.rows} rows x N={args.num_samples} in {time.perf_counter() - start:.1f} s "
              f"({os.path.getsize(path) / 2**20:.1f} MB Parquet)")
        images, records = split_layout(path, tmp, args.source_files)
        ratios, speedups, shares = [], [], []
        if not args.workers_only:
            mapped = map_style(path, os.path.join(tmp, "cache"), args.size)
            ratios.append(measure("self-contained", mapped, lambda: streamed(path, args.size, parts=True), args.rows,
                                  args.repeats))
            mapped = map_style_metadata_only(images, records, os.path.join(tmp, "cache"), args.size)
            ratios.append(measure("metadata-only", mapped, lambda: streamed_metadata_only(
                images, records, args.size, parts=True), args.rows, args.repeats))
        for name, make in [("self-contained", lambda: streamed(path, args.size, parts=True)),
                           ("metadata-only", lambda: streamed_metadata_only(images, records, args.size, parts=True))]:
            speedup, share = measure_workers(name, make, args.rows, args.repeats)
            speedups.append(speedup)
            shares.append(share)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    headline = f"stream_vs_map: {max(ratios):.2f}, " if ratios else ""
    print(f"{headline}2_vs_1_workers: x{min(speedups):.2f}, smallest_worker_cpu_share: {min(shares):.0%}")


if __name__ == "__main__":
    main()
