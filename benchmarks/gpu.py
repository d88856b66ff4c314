"""GPU truth: does hf-dr's generation keep an accelerator busy, and does the replay loader feed a student on it?

Part 1, generation: :func:`hf_dr.reinforce` end to end (DataLoader workers decoding and rendering ``rrc+ra_re``
views, teacher forward, top-k, background shard writes) against the same teacher object's forward alone on uint8
views already on the device: same teacher, batch and precision, timed back to back (``benchmarks/generation.py``'s
timers). It is swept over DataLoader worker counts, with the GPU's utilisation sampled during each pipeline run
(``torch.cuda.utilization``, which needs ``nvidia-ml-py``), and checks that the shards are byte-identical whatever the
worker count. Goal: pipeline / forward >= 0.9 at some worker count.

Part 2, training: :func:`hf_dr.fit` on the reinforced replay (:class:`hf_dr.ReinforcedTransform`) against the same
``fit`` on torchvision's RandomResizedCrop + flip + RandAugment + RandomErasing, same student, seed, workers and
batch, on ImageNet-sized JPEGs of real photos (``benchmarks/loader_overhead.py``'s data and transform). Goal:
reinforced / plain img/s >= 0.97. The loaders alone give the img/s one worker process supplies.

On CUDA (the default where there is one): 2 x resnet50 + 2 x convnext_base teachers at 224 (random weights: cost is
the point), bf16 autocast, channels-last; a ResNet-50 student at 224 trained in bf16. ``--tiny`` (with
``--device cpu``): timm's test networks at 160 px / 64 px on a few images, a smoke run of every step. The last line
is the headline: the worse of the two ratios over its goal (>= 1 meets both goals).

    python benchmarks/gpu.py                          # on a GPU machine
    python benchmarks/gpu.py --device cpu --tiny      # CPU smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from types import SimpleNamespace

import datasets
import timm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmarks, when imported from a test

from generation import photo_crops, save_random_teacher, time_forward, time_pipeline  # noqa: E402
from loader_overhead import PlainTransform, epoch_cpu_per_sample, make_images, reinforce_synthetic  # noqa: E402

from hf_dr import ReinforcedTransform, TrainConfig, fit  # noqa: E402
from hf_dr.models.teacher import create_teacher  # noqa: E402

GOALS = {"generation": 0.9, "training": 0.97}
CORES = os.cpu_count() or 1
PRESETS = {  # the settings a run takes unless given: on a GPU, and the CPU smoke run
    "gpu": dict(teachers="resnet50,resnet50,convnext_base,convnext_base", precision="bf16", channels_last=True,
                rows=1024, num_samples=4, batch_size=256, shard_size=64, repeats=2,
                workers=",".join(str(w) for w in sorted({max(1, CORES // 4), max(1, CORES // 2), max(1, CORES - 2)})),
                student="resnet50", size=224, images=4096, train_samples=8, train_batch_size=256,
                train_workers=max(1, CORES - 2), train_epochs=2),
    "tiny": dict(teachers="test_resnet,test_convnext", precision="fp32", channels_last=False, rows=16, num_samples=2,
                 batch_size=16, shard_size=8, repeats=1, workers="0,1", student="test_resnet", size=64, images=32,
                 train_samples=2, train_batch_size=8, train_workers=1, train_epochs=1),
}


class UtilisationSampler:
    """Samples ``torch.cuda.utilization`` every ``interval`` seconds in a thread while in the ``with`` block;
    :attr:`summary` is the mean and the maximum in percent, or ``"n/a"`` with the reason (CPU, no ``nvidia-ml-py``)."""

    def __init__(self, device: torch.device, interval: float = 0.1) -> None:
        self.device, self.interval, self.samples = device, interval, []
        self.summary = "n/a (CPU)"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(torch.cuda.utilization(self.device))

    def __enter__(self) -> UtilisationSampler:
        if self.device.type == "cuda":
            try:
                torch.cuda.utilization(self.device)
            except Exception as err:  # torch reads it through pynvml: missing, or NVML refuses (MIG, containers)
                self.summary = f"n/a ({type(err).__name__}: {err}; pip install nvidia-ml-py)"
            else:
                self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            if self.samples:
                self.summary = f"mean {statistics.mean(self.samples):.0f}%, max {max(self.samples)}%"


def generation_part(args: argparse.Namespace, accelerator, directory: str) -> float:
    """Prints views/s of the pipeline and of the forward alone per worker count; returns the best median ratio."""
    device = accelerator.device
    dataset = photo_crops(args.rows)
    specs = []
    for i, arch in enumerate(args.teachers.split(",")):  # distinct random weights: an ensemble refuses copies
        os.makedirs(os.path.join(directory, f"member{i}"))
        specs.append(save_random_teacher(arch, os.path.join(directory, f"member{i}")))
    teacher = create_teacher(specs, precision=args.precision, channels_last=args.channels_last).to(device)
    view = teacher.views[0]
    print(f"[generation] teachers {args.teachers} ({len(teacher.views)} distinct view(s), first {view.height}x"
          f"{view.width}), {args.precision}, channels_last={args.channels_last}; {args.rows} photos x N="
          f"{args.num_samples}, batch {args.batch_size}, shards of {args.shard_size} rows, on {device}")
    batches = args.rows * args.num_samples // args.batch_size
    best, needed, digests = 0.0, None, set()
    for workers in [int(w) for w in args.workers.split(",")]:
        run = SimpleNamespace(policy="rrc+ra_re", num_samples=args.num_samples, shard_size=args.shard_size,
                              batch_size=args.batch_size, num_workers=workers)
        forward, pipeline, utilisation = [], [], []
        for _ in range(args.repeats):
            forward.append(time_forward(teacher, batches, args.batch_size, device))
            with UtilisationSampler(device) as sampler:
                rate, _, shards = time_pipeline(dataset, teacher, run, directory, accelerator)
            pipeline.append(rate)
            utilisation.append(sampler.summary)
            digests.add(tuple(s["sha256"] for s in shards))
        ratio = statistics.median(p / f for p, f in zip(pipeline, forward, strict=True))
        per_worker = f" ({statistics.median(pipeline) / workers:.1f} per worker)" if workers else ""
        print(f"[generation] {workers} workers: pipeline {statistics.median(pipeline):.1f} views/s{per_worker}, "
              f"forward alone {statistics.median(forward):.1f} views/s, ratio {ratio:.3f}; GPU utilisation "
              f"{'; '.join(dict.fromkeys(utilisation))}")
        best = max(best, ratio)
        if needed is None and ratio >= GOALS["generation"]:
            needed = workers
    print(f"[generation] shards byte-identical across worker counts and repeats: {len(digests) == 1}")
    print(f"[generation] workers needed for ratio >= {GOALS['generation']}: "
          f"{needed if needed is not None else 'not reached in ' + args.workers}")
    print(f"generation_ratio: {best:.3f}")
    return best


def training_part(args: argparse.Namespace, accelerator) -> float:
    """Prints img/s of ``fit`` on each loader and of each loader alone per worker; returns the median ratio."""
    images = make_images(args.images)
    plain = images.with_format(None)
    plain.set_transform(PlainTransform(args.size))
    reinforced = images.with_format(None)
    table = reinforce_synthetic(images, args.train_samples, (375, 500), 1000)
    ReinforcedTransform(table, policy="rrc+ra_re", size=args.size, num_classes=1000).attach(reinforced)
    loaders = {"plain": plain, "reinforced": reinforced}
    config = TrainConfig(epochs=args.train_epochs, batch_size=args.train_batch_size, num_workers=args.train_workers,
                         seed=0, channels_last=args.channels_last, log_every=10**6)
    print(f"[training] student {args.student} at {args.size}, {args.images} JPEGs 375x500 x {args.train_epochs} "
          f"epochs, batch "
          f"{args.train_batch_size}, {args.train_workers} workers, mixed precision {accelerator.mixed_precision}, "
          f"on {accelerator.device}")

    def train_rate(dataset, max_steps: int | None = None) -> float:
        model = timm.create_model(args.student, num_classes=1000)  # fit seeds it: same weights every run
        result = fit(model, dataset, TrainConfig.from_dict({"max_steps": max_steps}, config), accelerator=accelerator)
        accelerator.free_memory()
        return result.samples / result.wall_time

    train_rate(plain, max_steps=2)  # warm-up: kernels, allocator, page cache
    rates: dict[str, list[float]] = {"plain": [], "reinforced": []}
    for repeat in range(args.repeats):
        for name in sorted(loaders, reverse=repeat % 2 == 1):  # alternate which goes first
            rates[name].append(train_rate(loaders[name]))
    for name, dataset in loaders.items():
        # the loader alone, as CPU per sample over the process and its workers: img/s one worker process supplies
        per_worker = 1e6 / epoch_cpu_per_sample(dataset, None, args.train_workers, args.train_batch_size)
        print(f"[training] {name} loader: fit {statistics.median(rates[name]):.1f} img/s (runs "
              f"{[round(r, 1) for r in rates[name]]}); loader alone {per_worker:.1f} img/s per worker process")
    ratio = statistics.median(r / p for r, p in zip(rates["reinforced"], rates["plain"], strict=True))
    print(f"train_ratio: {ratio:.3f}")
    return ratio


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the CPU smoke sizes (see PRESETS); others override them")
    parser.add_argument("--part", choices=["all", "generation", "training"], default="all")
    for name, value in PRESETS["gpu"].items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=type(value), default=None, help=f"GPU default {value}")
    args = parser.parse_args(argv)
    for name, value in PRESETS["tiny" if args.tiny else "gpu"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> float:
    from accelerate import Accelerator

    args = parse_args(argv)
    datasets.disable_progress_bars()
    cuda = args.device == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    # one Accelerator for both parts (its state is process-wide): the student trains in bf16 on CUDA
    accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")
    print(f"device {accelerator.device}{' (' + torch.cuda.get_device_name() + ')' if cuda else ''}, {CORES} CPU "
          f"cores, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    ratios = {}
    with tempfile.TemporaryDirectory() as directory:
        if args.part in ("all", "generation"):
            ratios["generation"] = generation_part(args, accelerator, directory)
        if args.part in ("all", "training"):
            ratios["training"] = training_part(args, accelerator)
    worst = min(ratio / GOALS[name] for name, ratio in ratios.items())
    print(f"worst_ratio_over_goal: {worst:.3f}")
    return worst


if __name__ == "__main__":
    main()
