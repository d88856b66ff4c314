"""ImageNet+ at scale: every per-start cost of hf-dr measured on schema-exact synthetic runs, fitted and extrapolated.

Runs are written by the project's own shard writer (``write_shard``, ``write_manifest``, ``ReinforceConfig``) with the
features a real ``rrc+ra_re`` run at k=10 over 1,000 classes has (description included); params are real draws of
the policy (a pool of 4,096, taken at random), ids random, probabilities sorted Dirichlet draws in fp16. Each step
is timed at S = --sizes images (N=400) and the N sweep at the smallest S; a line ``a + b*S`` is fitted per step and
evaluated at S = 1,281,167. Image-bound steps (content hashing, header reads) are timed per image on real photo
JPEGs (crops of scikit-learn's sample photos, ImageNet's 375x500 mean size) and multiplied out. Per-worker memory is
the private memory (``/proc/self/smaps_rollup``) a DataLoader worker holding the replay has above one holding nothing,
for fork and spawn workers. Teacher speed, which no CPU can measure, is an assumption (``--teacher-views-per-s``).

The time to the first batch of a local run is measured on the path training takes (``open_run_records``: row-level
columns read at once, records decoded by row group when first looked up), in one process with a cold row-group
cache: no credit is taken for other processes decoding at the same time. The first batch's cost is the row groups its
``--batch-size`` random rows fall in, times the measured cost of one group (flat in S: groups hold ~2 MB of records),
so it is extrapolated by the expected count of groups touched; the steps that grow with S are fitted as above. The
full conversion (``load_run_records``) is still measured, with the processes this machine has and no more.

    python benchmarks/scale.py                       # S = 10k, 50k, 200k (about 25 minutes on 2 cores)
    python benchmarks/scale.py --sizes 2000 5000     # a quick look

The last line is the worst extrapolated time to the first training batch (after download), in seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.reduction import ForkingPickler

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from hf_dr import ReinforcedTransform, create_policy
from hf_dr.augment.seeding import generator_for
from hf_dr.data.description import RunDescription
from hf_dr.data.keys import content_key
from hf_dr.data.source_keys import header_size, keys_sha256, scan_keys
from hf_dr.files import file_sha256
from hf_dr.generate import loading, storage
from hf_dr.generate.parquet import write_parquet
from hf_dr.generate.plan import ChunkPlan, plan_shards
from hf_dr.generate.run_config import ReinforceConfig, library_versions
from hf_dr.generate.shard_table import ShardTable, output_features

TARGET_S, TARGET_N, TOPK, CLASSES, SHARD = 1_281_167, 400, 10, 1000, 1000
POLICY = create_policy("rrc+ra_re")


# -- synthetic runs -----------------------------------------------------------------------------------------------
def synthetic_run(folder: str, rows: int, num_samples: int, seed: int = 0) -> str:
    """A complete run folder of ``rows`` images x ``num_samples`` records, written by the project's writer."""
    config = ReinforceConfig(
        policy=POLICY.config(), num_samples=num_samples, topk=TOPK, seed=0, shard_size=SHARD,
        teacher=[{"spec": {"arch": "resnet50"}}], columns={"image": "image", "label": "label", "key": "key",
                                                            "key_source": "column"},
        image_mode="RGB", dataset={"id": "synthetic", "split": "train", "num_rows": rows}, num_classes=CLASSES,
        versions=library_versions())
    os.makedirs(folder, exist_ok=True)
    config.save(folder)
    label = datasets.ClassLabel(num_classes=CLASSES)
    features = output_features(POLICY, TOPK, CLASSES, "key", "label", label,
                               RunDescription.from_run(config.to_dict(), label, "key"))
    params_type = datasets.Features({"params": POLICY.features()}).arrow_schema.field("params").type
    pool = pa.array([POLICY.encode(POLICY.sample_params((375, 500), generator_for(0, f"p{i}", 0)))
                     for i in range(4096)], type=params_type)
    rng = np.random.default_rng(seed)
    keys, labels = [f"n{i % 1000:08d}_{i}.JPEG" for i in range(rows)], rng.integers(0, CLASSES, rows).tolist()
    shards = plan_shards(rows, SHARD)
    for shard in shards:
        count = shard.num_rows * num_samples
        table = ShardTable(shard, features, keys, labels, num_samples)
        probs = np.sort(rng.dirichlet(np.full(TOPK, 0.3), count).astype(np.float32), axis=1)[:, ::-1].copy()
        table.add(0, count, pool.take(pa.array(rng.integers(0, len(pool), count))),
                  torch.from_numpy(rng.integers(0, CLASSES, (count, TOPK))), torch.from_numpy(probs))
        storage.write_shard(folder, shard, table.build(), config.fingerprint())
    storage.write_manifest(folder, shards, config.fingerprint(), num_samples)
    return folder


def photo_jpegs(count: int) -> list[bytes]:
    from sklearn.datasets import load_sample_images

    photos, rng, out = load_sample_images().images, np.random.default_rng(0), []
    for i in range(count):
        top, left = rng.integers(0, 427 - 375 + 1), rng.integers(0, 640 - 500 + 1)
        buffer = io.BytesIO()
        Image.fromarray(photos[i % 2][top:top + 375, left:left + 500]).save(buffer, format="JPEG", quality=95)
        out.append(buffer.getvalue())
    return out


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


# -- per-worker private memory ------------------------------------------------------------------------------------
class Probe(torch.utils.data.Dataset):
    """Looks up a record per sample (when holding a transform) and reports the worker's private memory in MB."""

    def __init__(self, transform: ReinforcedTransform | None, keys: list[str]) -> None:
        self.transform, self.keys = transform, keys

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> float:
        if self.transform is not None:
            for key in self.keys[index::64]:
                self.transform.record(key)
        with open("/proc/self/smaps_rollup") as f:  # dirty pages: the private memory no file backs
            return sum(int(line.split()[1]) for line in f if line.startswith("Private_Dirty")) / 1024


def worker_private_mb(transform: ReinforcedTransform | None, keys: list[str], method: str) -> tuple[float, float]:
    """The largest private memory of 2 workers (MB), and the seconds to the first batch."""
    loader = torch.utils.data.DataLoader(Probe(transform, keys), batch_size=8, num_workers=2,
                                         multiprocessing_context=method)
    start, batches = time.perf_counter(), iter(loader)
    memory = [float(next(batches).max())]
    first = time.perf_counter() - start
    return max(memory + [float(batch.max()) for batch in batches]), first


# -- the measurements ---------------------------------------------------------------------------------------------
def measure_size(rows: int, num_samples: int, work: str, memory: bool, batch_size: int = 256
                 ) -> dict[str, float]:
    folder = synthetic_run(os.path.join(work, f"run-{rows}-{num_samples}"), rows, num_samples)
    files = [os.path.join(folder, r["path"]) for r in storage.read_manifest(folder)["shards"]]
    out = {"parquet_bytes_per_record": sum(os.path.getsize(f) for f in files) / rows / num_samples}
    out["verify_hash_all"] = timed(lambda: [file_sha256(f) for f in files])[0]
    storage._HASHED.clear()
    out["verify_run"] = timed(storage.verify_run, folder)[0]
    cache = os.path.join(work, f"cache-{rows}-{num_samples}")
    out["first_load_one_process"] = timed(loading.load_run_records, folder, cache_dir=cache + "-1", num_proc=1)[0]
    shutil.rmtree(cache + "-1")
    processes = min(8, os.cpu_count() or 1)  # what the default gives at ImageNet+ on this machine
    out["first_load"], reinforced = timed(loading.load_run_records, folder, cache_dir=cache, num_proc=processes)
    out["arrow_bytes_per_record"] = sum(os.path.getsize(f["filename"]) for f in reinforced.cache_files) / (
        rows * num_samples)
    out["cached_load"], reinforced = timed(loading.load_run_records, folder, cache_dir=cache)
    out["transform_init"], transform = timed(ReinforcedTransform, reinforced, size=224)
    keys = reinforced.data.column("key").to_pylist()
    sample = [keys[i] for i in np.random.default_rng(0).choice(len(keys), 2000)]
    out["key_checks"] = timed(lambda: (set(keys), keys_sha256(keys)))[0]
    shards = plan_shards(rows, SHARD)
    fingerprint = ReinforceConfig.load(folder).fingerprint()
    storage._HASHED.clear()
    out["resume_shard_checks"] = timed(lambda: [storage.shard_record(folder, s, fingerprint) for s in shards])[0]
    if memory:
        for method in ("fork", "spawn"):
            base = worker_private_mb(None, sample, method)[0]
            memory, out[f"first_batch_{method}"] = worker_private_mb(transform, sample, method)
            out[f"worker_mb_{method}"] = memory - base
        buffer = io.BytesIO()
        ForkingPickler(buffer).dump(transform)  # what a spawn worker receives
        out["worker_pickle_kb"] = len(buffer.getvalue()) / 1e3
    if memory:
        out["keep_in_memory_peak_x"] = keep_in_memory_peak(folder, reinforced)
    # after the worker memory probes, whose forked workers would count the memory these leave in this process:
    # where a conversion's time goes (decoding the Parquet records alone, nothing kept), and the opened path
    out["decode_only"] = timed(lambda: [pq.read_table(f, use_threads=False) and None for f in files])[0]
    out.update(opened_costs(folder, transform, keys, os.path.join(work, f"groups-{rows}-{num_samples}"), batch_size))
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return out


def opened_costs(folder: str, converted: ReinforcedTransform, keys: list[str], cache: str, batch_size: int
                 ) -> dict[str, float]:
    """The run opened without a conversion pass (``open_run_records``), in one process with a cold row-group cache:
    opening, the transform, the records of a first batch of ``batch_size`` random rows (each row group they fall in
    decoded and written once), and a warm lookup against the converted table's on the same keys."""
    out: dict[str, float] = {}
    out["open_rows"], (rows, records) = timed(loading.open_run_records, folder, cache_dir=cache)
    out["open_transform_init"], opened = timed(ReinforcedTransform, rows, records=records, size=224)
    batch = [keys[i] for i in np.random.default_rng(1).choice(len(keys), min(batch_size, len(keys)), replace=False)]
    out["first_batch_records"] = timed(lambda: [opened.record(key) for key in batch])[0]
    out["first_batch_groups"] = len(os.listdir(records.cache_dir))
    out["row_group_s"] = out["first_batch_records"] / out["first_batch_groups"]
    out["rows_per_group"] = len(keys) / len(records._groups)
    assert all(opened.record(key) == converted.record(key) for key in batch[:64])  # the same records
    for name, transform in (("record_read_us", converted), ("record_read_us_opened", opened)):
        out[name] = min(timed(lambda t=transform: [t.record(key) for key in batch])[0] for _ in range(3)) / len(
            batch) * 1e6
        out[name.replace("record_read", "lookup")] = min(
            timed(lambda t=transform: [t._records_of(key) for key in batch])[0] for _ in range(3)) / len(batch) * 1e6
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(opened)  # what a spawn worker receives
    out["worker_pickle_kb_opened"] = len(buffer.getvalue()) / 1e3
    shutil.rmtree(cache, ignore_errors=True)
    return out


def expected_groups(num_groups: float, batch_size: int) -> float:
    """Row groups a batch of ``batch_size`` distinct random rows falls in, on average, among ``num_groups`` equal
    ones."""
    return num_groups * (1 - (1 - 1 / num_groups) ** batch_size)


def keep_in_memory_peak(folder: str, reinforced: datasets.Dataset) -> float:
    """Peak Arrow memory of a process loading the run with ``keep_in_memory=True``, over the table's size."""
    code = ("import sys, pyarrow as pa; from hf_dr.generate.loading import load_run_records; "
            "load_run_records(sys.argv[1], keep_in_memory=True); print(pa.default_memory_pool().max_memory())")
    peak = int(subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True,
                              check=True).stdout.split()[-1])
    return peak / reinforced.data.nbytes


def cached_keys_cost(rows: int, work: str) -> tuple[float, float]:
    """(first scan, cached scan) of content keys of a key-less dataset on disk with ``rows`` tiny PNGs."""
    rng = np.random.default_rng(rows)
    cells = []
    for _ in range(rows):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": None})
    folder = os.path.join(work, f"keys-{rows}")
    datasets.Dataset.from_dict({"image": cells}, features=datasets.Features({"image": datasets.Image()})
                               ).save_to_disk(folder)
    first = timed(scan_keys, datasets.load_from_disk(folder), "image")[0]
    again = timed(scan_keys, datasets.load_from_disk(folder), "image")[0]
    shutil.rmtree(folder)
    return first, again


def generation_costs(work: str, teacher_views_per_s: float) -> dict[str, float]:
    """One N=400 shard of 1,000 rows: table build, writes at level 3 (runs) and 19 (before), and the plan."""
    folder = synthetic_run(os.path.join(work, "gen"), SHARD, TARGET_N)
    table = pa.parquet.read_table(os.path.join(folder, "shards", "reinforcements-00000.parquet"))
    out = {"write_level_3": timed(write_parquet, table, os.path.join(work, "l3.parquet"), 3)[0],
           "write_level_19": timed(write_parquet, table, os.path.join(work, "l19.parquet"), 19)[0]}
    out["bytes_level_19_vs_3"] = os.path.getsize(os.path.join(work, "l19.parquet")) / os.path.getsize(
        os.path.join(work, "l3.parquet"))
    out["teacher_s_per_shard"] = SHARD * TARGET_N / teacher_views_per_s
    shards = plan_shards(TARGET_S, SHARD)
    out["plan_s"], plan = timed(ChunkPlan, shards, TARGET_N, 128)
    out["plan_chunks"], out["plan_pickle_kb"] = len(plan), len(pickle.dumps(plan)) / 1e3
    shutil.rmtree(folder)
    return out


def image_costs(count: int = 300) -> dict[str, float]:
    jpegs = photo_jpegs(count)
    cells = [{"bytes": b, "path": None} for b in jpegs]
    return {"jpeg_kb": statistics.mean(map(len, jpegs)) / 1e3,
            "content_key_s": timed(lambda: [content_key(c) for c in cells])[0] / count,
            "header_size_s": timed(lambda: [header_size(c) for c in cells])[0] / count}


def fit(sizes: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares ``a + b * S``; b >= 0."""
    b, a = np.polyfit(np.asarray(sizes, float), np.asarray(values, float), 1) if len(sizes) > 1 else (
        values[0] / sizes[0], 0.0)
    return float(a), max(float(b), 0.0)


def stream_costs() -> dict[str, float]:
    """Self-contained streaming vs map-style per sample and first sample (``benchmarks/streaming_cost.py``)."""
    result = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "streaming_cost.py")],
                            capture_output=True, text=True, check=True)
    values = {}
    for line in result.stdout.strip().splitlines():
        if line.startswith("first streamed sample ("):
            layout = line.split("(")[1].split(")")[0]
            values[f"first_sample_s {layout}"] = float(line.split("median")[1].split()[0])
        elif line.startswith("stream_vs_map:"):
            values["stream_vs_map"] = float(line.split()[1])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--num-samples", type=int, nargs="+", default=[10, 100, 400])
    parser.add_argument("--teacher-views-per-s", type=float, default=3000.0,
                        help="assumed teacher throughput per GPU (4 ResNet-50-class members, bf16, H100)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="rows of the first batch one DataLoader worker builds (its row groups are decoded cold)")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--json", default=None, help="also write every measurement to this JSON file")
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="hf-dr-scale-")
    torch.set_num_threads(1)
    images = image_costs()
    print(f"real JPEGs: {images['jpeg_kb']:.0f} KB, content key {images['content_key_s'] * 1e3:.2f} ms, "
          f"header {images['header_size_s'] * 1e3:.2f} ms per image", flush=True)
    per_size = {}
    for rows in args.sizes:
        per_size[rows] = measure_size(rows, TARGET_N, work, memory=True, batch_size=args.batch_size)
        per_size[rows]["keys_first"], per_size[rows]["keys_cached"] = cached_keys_cost(rows, work)
        print(f"S={rows}: " + ", ".join(f"{k} {v:.3g}" for k, v in per_size[rows].items()), flush=True)
    smallest = min(args.sizes)
    for n in args.num_samples:
        if n != TARGET_N:
            row = measure_size(smallest, n, work, memory=False, batch_size=args.batch_size)
            print(f"S={smallest} N={n}: first_load {row['first_load']:.2f} s, cached_load {row['cached_load']:.2f} s, "
                  f"parquet {row['parquet_bytes_per_record']:.1f} B/record", flush=True)
    generation, stream = generation_costs(work, args.teacher_views_per_s), stream_costs()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"per_size": per_size, "images": images, "generation": generation, "stream": stream}, f)
    report(per_size, images, generation, stream, args)
    shutil.rmtree(work, ignore_errors=True)


def report(per_size: dict, images: dict, generation: dict, stream: dict, args: argparse.Namespace) -> None:
    sizes = sorted(per_size)

    def at_target(step: str) -> float:
        a, b = fit(sizes, [per_size[s][step] for s in sizes])
        return a + b * TARGET_S

    steps = ["verify_hash_all", "verify_run", "decode_only", "first_load_one_process", "first_load", "cached_load",
             "transform_init", "open_rows", "open_transform_init", "first_batch_records", "key_checks",
             "resume_shard_checks", "keys_cached", "worker_mb_fork", "worker_mb_spawn", "first_batch_spawn"]
    print(f"\n## Extrapolated to ImageNet+ (S={TARGET_S:,}, N={TARGET_N}), linear fit over S={sizes}")
    print("| step | " + " | ".join(f"S={s:,}" for s in sizes) + " | at ImageNet+ |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for step in steps:
        print(f"| {step} | " + " | ".join(f"{per_size[s][step]:.3g}" for s in sizes) + f" | {at_target(step):.3g} |")
    hashing = images["content_key_s"] * TARGET_S
    print(f"| content keys, first scan ({images['jpeg_kb']:.0f} KB JPEGs) | | | | {hashing:.0f} s once per "
          "dataset version |")
    print(f"| image sizes, first scan | | | | {images['header_size_s'] * TARGET_S:.0f} s once per dataset version |")
    for step in ("first_batch_groups", "row_group_s", "record_read_us", "record_read_us_opened", "lookup_us",
                 "lookup_us_opened", "keep_in_memory_peak_x", "worker_pickle_kb", "worker_pickle_kb_opened"):
        print(f"| {step} | " + " | ".join(f"{per_size[s][step]:.3g}" for s in sizes) + " | |")
    one, local = at_target("first_load_one_process"), min(8, os.cpu_count() or 1)
    decode = at_target("decode_only")
    print(f"(a conversion in one process would take {one:.0f} s, of which decoding the Parquet records "
          f"{decode:.0f} s; with the {local} processes measured here {at_target('first_load'):.0f} s)")
    # the first batch of a run opened without conversion: one worker, cold cache, no help from other processes
    row_group_s = statistics.median(per_size[s]["row_group_s"] for s in sizes)  # per group of equal rows: flat in S
    groups = TARGET_S / statistics.mean(per_size[s]["rows_per_group"] for s in sizes)
    cold_batch = row_group_s * expected_groups(groups, args.batch_size)
    model = {s: row_group_s * expected_groups(s / per_size[s]["rows_per_group"], args.batch_size) for s in sizes}
    touched = expected_groups(groups, args.batch_size)
    print(f"(first batch of {args.batch_size} rows, one process, cold: measured "
          + ", ".join(f"{per_size[s]['first_batch_records']:.1f} s" for s in sizes) + " vs the model "
          + ", ".join(f"{model[s]:.1f} s" for s in sizes) + f"; at ImageNet+ {touched:.0f} of {groups:.0f} row "
          f"groups x {row_group_s:.3f} s = {cold_batch:.1f} s. The rest of the run is decoded by the loader workers "
          f"over the first epoch: {groups * row_group_s:.0f} s of one core in all)")
    shared = at_target("key_checks") + at_target("keys_cached") + statistics.mean(
        per_size[s]["first_batch_spawn"] for s in sizes)
    opened = at_target("open_rows") + at_target("open_transform_init") + shared
    warm_batch = args.batch_size * statistics.median(per_size[s]["record_read_us_opened"] for s in sizes) / 1e6
    scenarios = {
        "map-style local run, later starts (row groups decoded)": opened + warm_batch,
        "map-style local run, first start on a node (the first batch's row groups decoded by one process)":
            opened + cold_batch,
        "streaming, self-contained": stream.get("first_sample_s self-contained", float("nan")),
        "streaming, metadata-only (both sides streamed)": stream.get("first_sample_s metadata-only", float("nan")),
    }
    converted = {  # load_run_records: still the API returning one datasets.Dataset with every record
        f"converted first (load_run_records), {local} processes as measured here":
            at_target("first_load") + at_target("transform_init") + shared,
        "converted, cache warm": at_target("cached_load") + at_target("transform_init") + shared,
    }
    print("\n## Time to the first training batch after download (s)")
    for name, value in {**scenarios, **converted}.items():
        print(f"- {name}: {value:.1f}")
    resume = at_target("resume_shard_checks") + at_target("keys_cached") + at_target("key_checks")
    write_share = max(0.0, generation["write_level_3"] - generation["teacher_s_per_shard"]) / generation[
        "teacher_s_per_shard"]
    print("\n## Generation")
    print(f"- plan of ImageNet+: {generation['plan_chunks']:,} chunks in {generation['plan_s'] * 1e3:.1f} ms, "
          f"pickled {generation['plan_pickle_kb']:.1f} KB")
    print(f"- resume decision at ImageNet+: {resume:.1f} s (shard checks by stat, cached keys, key checks)")
    print(f"- shard write: level 3 {generation['write_level_3']:.1f} s, level 19 {generation['write_level_19']:.1f} s "
          f"({generation['bytes_level_19_vs_3']:.3f}x the bytes); teacher {generation['teacher_s_per_shard']:.0f} s "
          f"per shard at {args.teacher_views_per_s:.0f} views/s; main-process write share with the background writer "
          f"{write_share:.1%} (inline at level 19 before: "
          f"{generation['write_level_19'] / (generation['teacher_s_per_shard'] + generation['write_level_19']):.1%})")
    print(f"- streaming: stream/map per sample, the worse layout {stream.get('stream_vs_map', float('nan')):.2f}x")
    worst = max(v for v in scenarios.values() if v == v)
    print(f"worst_time_to_first_batch_s: {worst:.1f}")


if __name__ == "__main__":
    main()
