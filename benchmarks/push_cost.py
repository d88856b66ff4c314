"""What a metadata-only push of ImageNet+ costs: CPU per N=400 row, bytes per zstd level, and an unchanged re-push.

Runs are schema-exact synthetic ``rrc+ra_re`` runs at k=10 over 1,000 classes, written by the project's own shard
writer (``benchmarks/scale.py``'s ``synthetic_run``). Each size is pushed for real, by ``hf_dr.push_to_hub`` in a
fresh process, to the local Hub test server (``tests/hub_server.py``) this script starts; the push process reports its
CPU time (``resource.getrusage``: itself and its writing processes, user + system) and wall time around the call, the
card's imports done before. Then the same run is pushed again (nothing changed: the build record skips every data
file). Costs are fitted as ``a + b * S`` and evaluated at S = 1,281,167.

The level table writes the middle-sized run as one data file in this process (``hf_dr.hub.build.write_files``: shards
read and checked, rows compressed) at each zstd level, and times the push's main-process steps that grow with the run
(``verify_run``, ``read_shards``, the card's statistics), the least CPU of 2 tries each (the machine is shared). A
push at level L costs ``a + (main + write_L) * S``, ``a`` the measured pushes' mean residual (the measured slope is
printed beside the model's). The writing step is the part that runs in ``num_proc`` processes; its efficiency with 2
processes is measured here (CPU of 4 files, 1 vs 2 processes) and the 8-core wall time assumes 8 idle cores. An
unchanged re-push reads only the shards' footers and stamps: its cost at ImageNet+ is the measured re-push plus those
steps' CPU per shard times the shards it lacks. The levels whose whole push stays within ``--goal-cpu-minutes`` are
listed, the one with the fewest bytes first (docs/push.md: how the default was chosen from several such runs).

    python benchmarks/push_cost.py                    # S = 500, 1000, 2000 rows at N=400 (about 2 minutes)
    python benchmarks/push_cost.py --sizes 1000 4000 --levels 3 19

The last line is the extrapolated CPU-minutes of a metadata-only push of ImageNet+ at the default level.
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
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from scale import TARGET_N, TARGET_S, fit, synthetic_run  # noqa: E402

from hf_dr.generate.run_config import ReinforceConfig  # noqa: E402
from hf_dr.generate.storage import verify_run  # noqa: E402
from hf_dr.hub.build import plan_jobs, write_files  # noqa: E402
from hf_dr.hub.card import reinforcement_stats  # noqa: E402
from hf_dr.hub.packing import FilePlan, file_schema, read_shards  # noqa: E402
from hf_dr.hub.push import DATA_COMPRESSION_LEVEL  # noqa: E402

PUSH = """
import json, resource, sys, time
import hf_dr.hub.card  # matplotlib and jinja: imported once per push, not per row
from hf_dr import push_to_hub

def cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime

own, children = cpu()
start = time.perf_counter()
push_to_hub(*sys.argv[1:3], layout="metadata-only", source_revision="0" * 40, license="other",
            compression_level=int(sys.argv[3]))
wall = time.perf_counter() - start
own_after, children_after = cpu()
print(json.dumps({"cpu": own_after - own + children_after - children, "wall": wall}))
"""


def push(folder: str, repo: str, level: int) -> dict[str, float]:
    """A metadata-only push of ``folder`` in a fresh process: its CPU seconds (with its children) and wall seconds."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", PUSH, folder, repo, str(level)], capture_output=True, text=True,
                            env=env)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def jobs_of(folder: str, level: int, files: int = 1) -> list:
    """The run's rows as ``files`` data files of equal rows, one row group each."""
    shards = read_shards(folder, verify_run(folder), ReinforceConfig.load(folder))
    total = sum(shards.num_rows)
    rows = [total * (i + 1) // files - total * i // files for i in range(files)]
    plan = FilePlan([f"data/train-{i:05d}-of-{files:05d}.parquet" for i in range(files)], rows, rows)
    return plan_jobs(plan, shards, file_schema(shards), level)


def write_cost(folder: str, level: int, work: str) -> tuple[float, int]:
    """(CPU seconds, bytes) of writing the run as one data file in this process at ``level``."""
    jobs = jobs_of(folder, level)
    cpu = least_cpu(lambda: list(write_files(jobs, work, 1)))
    return cpu, sum(os.path.getsize(os.path.join(work, job.name)) for job in jobs)


def least_cpu(function, *args, tries: int = 2) -> float:
    """The least CPU seconds of ``tries`` calls."""
    cpu = []
    for _ in range(tries):
        start = time.process_time()
        function(*args)
        cpu.append(time.process_time() - start)
    return min(cpu)


def main_steps(folder: str) -> tuple[float, float]:
    """CPU seconds of the push's main-process steps that grow with the run: (all of them, those a re-push repeats)."""
    config = ReinforceConfig.load(folder)

    def again() -> None:
        read_shards(folder, verify_run(folder), config)

    def first() -> None:
        manifest = verify_run(folder)
        reinforcement_stats(read_shards(folder, manifest, config).paths, manifest, config)

    return least_cpu(first), least_cpu(again)


def parallel_efficiency(folder: str, work: str, level: int) -> float:
    """CPU of 4 files written in this process over the CPU of the same files written by 2 processes (this one's and
    its children's): 1.0 when the processes add no work. (Wall times on a machine shared by other jobs say nothing.)"""
    jobs, cpu = jobs_of(folder, level, files=4), {}
    for num_proc in (1, 2):
        own, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        list(write_files(jobs, work, num_proc))  # the pool is shut down (its processes reaped) when this returns
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[num_proc] = (time.process_time() - own + after.ru_utime + after.ru_stime - children.ru_utime
                         - children.ru_stime)
    return cpu[1] / cpu[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6, 9, 12, 19])
    parser.add_argument("--cores", type=int, default=8, help="cores of the machine the push is extrapolated to")
    parser.add_argument("--goal-cpu-minutes", type=float, default=15.0)
    args = parser.parse_args()
    start_session_server()
    work = tempfile.mkdtemp(prefix="hf-dr-push-cost-")
    level = DATA_COMPRESSION_LEVEL
    first, again, folders = {}, {}, {}
    for rows in args.sizes:
        folders[rows] = synthetic_run(os.path.join(work, f"run-{rows}"), rows, TARGET_N)
        repo = f"tester/push-cost-{rows}"
        first[rows] = push(folders[rows], repo, level)
        again[rows] = push(folders[rows], repo, level)
        print(f"S={rows}: push {first[rows]['cpu']:.2f} CPU-s ({first[rows]['cpu'] / rows * 1e3:.2f} ms/row), "
              f"{first[rows]['wall']:.2f} s wall; unchanged re-push {again[rows]['cpu']:.2f} CPU-s, "
              f"{again[rows]['wall']:.2f} s wall", flush=True)
    sizes = sorted(args.sizes)
    rows = sizes[len(sizes) // 2]
    b = fit(sizes, [first[s]["cpu"] for s in sizes])[1]
    main_cpu, again_cpu = main_steps(folders[rows])
    writes = {lv: write_cost(folders[rows], lv, os.path.join(work, f"level-{lv}"))
              for lv in sorted({*args.levels, level})}
    efficiency = min(1.0, parallel_efficiency(folders[max(sizes)], os.path.join(work, "parallel"), level))
    write_row = {lv: cpu / rows for lv, (cpu, _) in writes.items()}
    serial_row = main_cpu / rows  # the main process: card statistics, footers, checks
    a = sum(first[s]["cpu"] - (serial_row + write_row[level]) * s for s in sizes) / len(sizes)
    print(f"\nwriting processes: pyarrow compresses a file on one thread (CPU = wall); 2 processes spend "
          f"{1 / efficiency:.2f}x the CPU of one on the same 4 files ({os.cpu_count()} cores here)")
    reference_level = 19 if 19 in writes else max(writes)
    reference = writes[reference_level][1]
    print(f"\n## Metadata-only push of ImageNet+ (S={TARGET_S:,}, N={TARGET_N}) per zstd level "
          f"(a + b*S; pushes at S={sizes}, steps timed at S={rows:,})")
    print(f"| zstd level | bytes / row | bytes vs {reference_level} | write ms / row | push CPU-minutes | push "
          f"minutes on {args.cores} cores |")
    print("|---|---|---|---|---|---|")
    results = {}
    for lv, (_, size) in sorted(writes.items()):
        per_row = serial_row + write_row[lv]
        cpu_minutes = (a + per_row * TARGET_S) / 60
        wall_minutes = (a + serial_row * TARGET_S + write_row[lv] * TARGET_S / (args.cores * efficiency)) / 60
        results[lv] = cpu_minutes
        print(f"| {lv} | {size / rows:,.0f} | {size / reference:.3f} | {write_row[lv] * 1e3:.2f} | {cpu_minutes:.1f} "
              f"| {wall_minutes:.1f} |")
    shards = [-(-s // 1000) for s in sizes]  # the synthetic runs' shards of 1,000 rows
    per_shard = again_cpu / shards[len(sizes) // 2]
    lacking = -(-TARGET_S // 1000) - sum(shards) / len(sizes)
    repush_wall = sum(again[s]["wall"] for s in sizes) / len(sizes) + per_shard * lacking
    repush_cpu = sum(again[s]["cpu"] for s in sizes) / len(sizes) + per_shard * lacking
    print(f"\n- push per N=400 row at level {level}: {(serial_row + write_row[level]) * 1e3:.2f} CPU-ms (writing "
          f"{write_row[level] * 1e3:.2f} in parallel processes, {serial_row * 1e3:.2f} in the main process; the "
          f"pushes' own slope {b * 1e3:.2f}), fixed {a:.1f} CPU-s")
    within = sorted((lv for lv in writes if results[lv] <= args.goal_cpu_minutes), key=lambda lv: writes[lv][1])
    print(f"- levels within {args.goal_cpu_minutes:g} CPU-minutes, fewest bytes first: {within} (default: {level})")
    print(f"- unchanged re-push: {per_shard * 1e3:.2f} CPU-ms per shard of 1,000 rows -> {repush_wall:.1f} s wall "
          f"({repush_cpu:.1f} CPU-s) at ImageNet+, writing no data file")
    shutil.rmtree(work, ignore_errors=True)
    print(f"push_cpu_minutes_imagenet_plus_{args.cores}_cores: {results[level]:.1f}")


if __name__ == "__main__":
    main()
