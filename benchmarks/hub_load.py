"""Time to the first batch of a map-style Hub load (``hf_dr.load_reinforced``), before and after opening the pushed
Parquet files by row group instead of converting every record into the ``datasets`` cache.

Runs are schema-exact synthetic ``rrc+ra_re`` runs at N=400, k=10 over 1,000 classes (``benchmarks/scale.py``'s
``synthetic_run``, the project's own shard writer), pushed metadata-only to the local Hub test server
(``tests/hub_server.py``) this script starts, then loaded map-style in a fresh process with cold caches (its own Hub
and ``datasets`` caches), with ``num_proc=1``: one process, no credit for others. The source is given as a loaded
dataset of tiny images under the run's keys (``verify_images="off"``: the image digests are per-image work, the same
before and after). The data files are downloaded first, timed apart (into the Hub cache, where ``datasets`` and the
opened load both read them): the load is timed after download, as ``scale.py`` does. Each process reports the load's
wall time and the records of a first batch of ``--batch-size`` random rows (``ReinforcedTransform.record``; decoding
and augmenting the images is the same per-image work in both and left out).

Three pipelines, each at every size:

- before: the library at ``--before`` (a checkout of the code before this change) pushes (row groups of up to 64 MiB)
  and loads (``datasets.load_dataset`` converts every record first, then the first batch reads converted rows);
- after: this checkout pushes (row groups of about a local run's rows) and loads (the downloaded files opened, each
  row group decoded when a row of it is first read);
- old push, new load: the ``before`` push loaded by this checkout (each first lookup in a group decodes 64 MiB).

The load is fitted as ``a + b*S``. After a conversion the first batch is flat in S; opened by row group, it is the
groups its rows fall in times the measured cost of one group (flat in S), so it is extrapolated by the expected count
of groups touched at S = 1,281,167. The growth of each pipeline is its total's ratio between the largest and the
smallest size.

    python benchmarks/hub_load.py --before /tmp/open-base                 # S = 2000, 5000, 10000 (minutes)

The last line is the extrapolated time to the first batch of the new load of ImageNet+, per process, in seconds.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]

from tests.hub_server import configure_session, start_session_server  # noqa: E402  (before huggingface_hub)

configure_session()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

from scale import TARGET_N, TARGET_S, expected_groups, fit, synthetic_run  # noqa: E402

PUSH = """
import sys
from hf_dr import push_to_hub
push_to_hub(sys.argv[1], sys.argv[2], layout="metadata-only", source_revision="0" * 40, license="other")
"""

LOAD = """
import io, json, os, random, sys, time
import datasets
from PIL import Image
from hf_dr import load_reinforced
from hf_dr.data.epochs import transform_of

repo, rows, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys = [f"n{i % 1000:08d}_{i}.JPEG" for i in range(rows)]  # synthetic_run's keys
buffer = io.BytesIO()
Image.new("RGB", (8, 8), (120, 60, 30)).save(buffer, format="PNG")
features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image(),
                              "label": datasets.ClassLabel(num_classes=1000)})
images = datasets.Dataset.from_dict({"key": keys, "image": [{"bytes": buffer.getvalue(), "path": None}] * rows,
                                     "label": [0] * rows}, features=features)
from huggingface_hub import HfApi, hf_hub_download
from hf_dr.files import read_json
commit = HfApi().dataset_info(repo).sha
start = time.perf_counter()  # the download alone, into the Hub cache, which both loads read the files from
for name in read_json(hf_hub_download(repo, "hf_dr.json", repo_type="dataset", revision=commit))["data_files"]:
    hf_hub_download(repo, name, repo_type="dataset", revision=commit)
download_s = time.perf_counter() - start
start = time.perf_counter()
loaded = load_reinforced(repo, source=images, verify_images="off", size=32, num_proc=1)
load_s = time.perf_counter() - start
transform = transform_of(loaded)
batch = random.Random(1).sample(keys, min(batch_size, rows))
start = time.perf_counter()
for key in batch:
    transform.record(key)
first_batch_s = time.perf_counter() - start
records = getattr(transform, "_records", None)
groups = len(os.listdir(records.cache_dir)) if records is not None else 0
print(json.dumps({"load_s": load_s, "download_s": download_s, "first_batch_s": first_batch_s, "groups": groups,
                  "total_groups": len(records._groups) if records is not None else 0}))
"""


def run(code: str, library: str, work: str, *args: str) -> str:
    """``code`` in a fresh process importing ``hf_dr`` from ``library``, with cold Hub and ``datasets`` caches."""
    cache = os.path.join(work, f"cache-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "PYTHONPATH": library, "OMP_NUM_THREADS": "1", "HF_HUB_CACHE": os.path.join(cache, "hub"),
           "HF_DATASETS_CACHE": os.path.join(cache, "datasets")}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=work)
    shutil.rmtree(cache, ignore_errors=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def measure(folder: str, rows: int, before: str, work: str, batch_size: int) -> dict[str, dict[str, float]]:
    """Each pipeline's load and first batch at ``rows``."""
    repos = {}
    for name, library in (("before", before), ("after", ROOT)):
        repos[name] = f"tester/hub-load-{name}-{rows}-{uuid.uuid4().hex[:6]}"
        run(PUSH, library, work, folder, repos[name])
    out = {}
    for name, library, repo in (("before", before, repos["before"]), ("after", ROOT, repos["after"]),
                                ("old push, new load", ROOT, repos["before"])):
        out[name] = json.loads(run(LOAD, library, work, repo, str(rows), str(batch_size)))
    return out


OLD_ROW_GROUP_BYTES = 64 * 2**20  # what pushes wrote before this change


def target_group_rows(group_bytes: int | None, folder: str) -> int:
    """Rows per row group of ImageNet+'s push (``plan_files`` of this checkout at the run's bytes per row), with
    ``MAX_ROW_GROUP_BYTES`` set to ``group_bytes`` (None: this checkout's)."""
    from hf_dr.generate.run_config import ReinforceConfig
    from hf_dr.generate.storage import verify_run
    from hf_dr.hub import packing

    shards = packing.read_shards(folder, verify_run(folder), ReinforceConfig.load(folder))
    saved = packing.MAX_ROW_GROUP_BYTES
    packing.MAX_ROW_GROUP_BYTES = group_bytes or saved
    try:
        per_row = sum(shards.num_bytes) / sum(shards.num_rows)
        shard_count = -(-TARGET_S // 1000)
        plan = packing.plan_files("train", [1000] * shard_count, [per_row * 1000] * shard_count,
                                  max(shards.row_bytes))
    finally:
        packing.MAX_ROW_GROUP_BYTES = saved
    return plan.row_group_rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--before", required=True, help="a checkout of hf-dr before the change (its root folder)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--results", help="a JSON file the measurements are written to (and read from, if it exists: "
                                          "the report again without measuring)")
    args = parser.parse_args()
    start_session_server()
    work = tempfile.mkdtemp(prefix="hf-dr-hub-load-")
    sizes, results = sorted(args.sizes), {}
    if args.results and os.path.exists(args.results):
        with open(args.results) as f:
            results = {int(rows): value for rows, value in json.load(f).items()}
        sizes = sorted(results)
        args.folder = synthetic_run(os.path.join(work, "run"), 1000, TARGET_N)
    for rows in [s for s in sizes if s not in results]:
        folder = synthetic_run(os.path.join(work, f"run-{rows}"), rows, TARGET_N)
        results[rows] = measure(folder, rows, args.before, work, args.batch_size)
        if rows != sizes[0]:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            args.folder = folder  # kept: the bytes per row of the ImageNet+ push's plan
        if args.results:
            with open(args.results, "w") as f:
                json.dump(results, f)
        print(f"S={rows}: " + "; ".join(
            f"{name}: load {r['load_s']:.2f} s, first batch {r['first_batch_s']:.2f} s ({r['groups']} of "
            f"{r['total_groups']} row groups)" for name, r in results[rows].items()), flush=True)
    download = fit(sizes, [results[s]["after"]["download_s"] for s in sizes])[1]
    print(f"\n## Map-style Hub load, metadata-only, N={TARGET_N}, one process, cold caches, after download "
          f"(download from the local server: {download * 1e3:.3f} ms/row, {download * TARGET_S:.0f} s at ImageNet+)")
    print("| pipeline | " + " | ".join(f"S={s:,} load + first batch (s)" for s in sizes)
          + f" | growth x{sizes[-1] / sizes[0]:.0f} rows | at ImageNet+ (S={TARGET_S:,}) |")
    print("|---|" + "---|" * (len(sizes) + 2))
    at_target = {}
    flat = sum(results[s]["before"]["first_batch_s"] for s in sizes) / len(sizes)  # reading converted records
    for name in results[sizes[0]]:
        rows = [results[s][name] for s in sizes]
        a, b = fit(sizes, [r["load_s"] for r in rows])
        first, model = flat, ""  # converted: the first batch reads converted rows, flat in S
        if rows[-1]["groups"]:  # opened: the groups a first batch touches at the target, decoded at the measured cost
            decoded = [s * r["groups"] / r["total_groups"] for s, r in zip(sizes, rows, strict=True)]
            per_row = sum(max(r["first_batch_s"] - flat, 0.0) / d for r, d in zip(rows, decoded, strict=True)) / len(
                rows)
            group_rows = target_group_rows(OLD_ROW_GROUP_BYTES if name == "old push, new load" else None, args.folder)
            first = flat + expected_groups(TARGET_S / group_rows, args.batch_size) * group_rows * per_row
            model = f"; first batch {first:.1f} s: groups of {group_rows} rows, decoded at {per_row * 1e6:.0f} us/row"
        at_target[name] = a + b * TARGET_S + first
        totals = [r["load_s"] + r["first_batch_s"] for r in rows]
        print(f"| {name} | " + " | ".join(f"{t:.2f}" for t in totals) + f" | x{totals[-1] / totals[0]:.2f} | "
              f"{at_target[name]:.0f} s (load {a:.2f} s + {b * 1e3:.3f} ms/row{model}) |")
    speedup = at_target["before"] / at_target["after"]
    print(f"\n- after vs before at ImageNet+: {speedup:.1f}x less time to the first batch, per process")
    shutil.rmtree(work, ignore_errors=True)
    print(f"hub_map_load_first_batch_imagenet_plus_s: {at_target['after']:.1f}")


if __name__ == "__main__":
    main()
