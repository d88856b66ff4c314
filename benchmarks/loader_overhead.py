"""Loader CPU per sample: hf-dr's replay (float32 output, and the fast uint8 output + ReinforcedCollate) vs a plain
torchvision RandomResizedCrop + flip + RandAugment + RandomErasing pipeline and the decode floor, same images,
alternating runs, medians.

Images: real photos (random crops of scikit-learn's two sample photos): ImageNet-like 375 x 500 JPEGs (q90) read at
224 px, and CIFAR-like 32 x 32 PNGs read at 32 px. Reinforcements: N=20 records per image of ``rrc+ra_re`` with k=10
soft labels over 1000 (224 px) or 100 (32 px) classes. CPU is the loading process's (and its workers') CPU time, so
other load on a shared machine does not count; run with ``OMP_NUM_THREADS=1``.

Pipelines: ``decode`` (read the row and decode the image: the floor), ``torchvision`` (the plain pipeline, PIL ops as
torchvision's ImageNet references use), ``replay`` (``ReinforcedTransform``, default float32 output), ``fast``
(``ReinforcedTransform(output="uint8")`` with ``collate_fn=transform.collate()``) and ``fast_nokeep`` (the same with
``keep_memory=False``: glibc's default malloc, each batch faulted in afresh). The hook replays a batch at once
(:mod:`hf_dr.data.batch_replay`); ``replay_1by1`` and ``fast_1by1`` are ``replay`` and ``fast`` with the hook called
one sample at a time (:meth:`ReinforcedTransform.sample` per row: the path before batching), for the batched path's
gain; ``pixels`` is ``fast`` with each key's params and top-k decoded before the run (:class:`PixelsOnly`): the image
work alone, so ``fast - pixels`` is the replay's overhead per sample (record lookup, choice, decode, label tensors).
Goals of the fast output over torchvision: <= 0.75 at 224 px, <= 1.0 at 32 px. Headline (last line): the worse of the
two ratios over its goal.

    python benchmarks/loader_overhead.py [--images 512] [--small-images 4096] [--workers 0] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import statistics
import time
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

import hf_dr
from hf_dr.augment.seeding import generator_for
from hf_dr.data import schema
from hf_dr.data.codec import RecordCodec

GOALS = {224: 0.75, 32: 1.0}
PIPELINES = ("decode", "torchvision", "replay", "fast", "fast_nokeep", "replay_1by1", "fast_1by1", "pixels")


def make_images(count: int, side: int | None = None) -> datasets.Dataset:
    """``count`` crops of the two photos: 375 x 500 JPEGs, or ``side`` x ``side`` PNGs (the crop resized)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        top, left = rng.integers(0, 427 - 375 + 1), rng.integers(0, 640 - 500 + 1)
        image = Image.fromarray(photos[i % 2][top:top + 375, left:left + 500])
        buffer = io.BytesIO()
        if side is None:
            image.save(buffer, format="JPEG", quality=90)
        else:
            image.resize((side, side), Image.Resampling.BILINEAR).save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=1000),
                                  "key": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"image": images, "label": [i % 1000 for i in range(count)], "key": [f"img-{i}" for i in range(count)]},
        features=features,
    )


def reinforce_synthetic(images: datasets.Dataset, num_samples: int, image_size: tuple[int, int],
                        num_classes: int) -> datasets.Dataset:
    policy = hf_dr.create_policy("rrc+ra_re")
    rng = np.random.default_rng(0)
    rows = []
    for key in images["key"]:
        probs = torch.softmax(torch.tensor(rng.normal(0, 2, (num_samples, num_classes))), -1)
        params = [policy.sample_params(image_size, generator_for(0, key, j)) for j in range(num_samples)]
        records, _ = RecordCodec().encode_row(policy, params, probs, 10, 0, key)
        rows.append({"key": key, "reinforcements": records})
    return datasets.Dataset.from_list(rows, features=schema.reinforcement_features(policy, 10, num_classes))


class PlainTransform:
    """The standard online pipeline (PIL ops, as torchvision's ImageNet references use)."""

    def __init__(self, size: int = 224) -> None:
        self.ops = v2.Compose([
            v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), v2.RandAugment(), v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            v2.RandomErasing(0.25),
        ])

    def __call__(self, batch: dict) -> dict:
        return {"pixel_values": [self.ops(im.convert("RGB")) for im in batch["image"]], "labels": batch["label"]}


class OneByOne:
    """A replay hook that replays each row of a batch alone (:meth:`ReinforcedTransform.sample`), as it did before
    the batched replay."""

    def __init__(self, transform: hf_dr.ReinforcedTransform) -> None:
        self.transform = transform

    def __call__(self, batch: dict) -> dict:
        columns: dict[str, list] = {name: [] for name in self.transform.output_columns}
        for image, key in zip(batch["image"], batch["key"], strict=True):
            for name, value in self.transform.sample(image, key).items():
                columns[name].append(value)
        return columns


class PixelsOnly:
    """The image work of the replay alone: each key's params and top-k (of its epoch-0 record) decoded up front, so a
    sample is only its image decoded and replayed (the ``uint8`` view, for the same collate as ``fast``)."""

    def __init__(self, transform: hf_dr.ReinforcedTransform, keys: list[str]) -> None:
        self.transform, self.records = transform, {key: transform.record(key) for key in keys}
        self.labels = {key: (torch.tensor(r["ids"]), torch.tensor(r["probs"])) for key, r in self.records.items()}

    def __call__(self, batch: dict) -> dict:
        t = self.transform
        views = [t.policy.apply(t.as_teacher_saw(image, key), self.records[key]["params"], t.size)
                 for image, key in zip(batch["image"], batch["key"], strict=True)]
        return {"pixel_values": views, "target_ids": [self.labels[key][0] for key in batch["key"]],
                "target_probs": [self.labels[key][1] for key in batch["key"]]}


class DecodeOnly:
    """The floor: the row read and its image decoded, nothing else."""

    def __call__(self, batch: dict) -> dict:
        return {"decoded": [im.convert("RGB").height for im in batch["image"]]}


def pipelines(images: datasets.Dataset, table: datasets.Dataset, size: int, num_classes: int) -> dict[str, tuple]:
    """Each pipeline's dataset and collate_fn."""
    made = {}
    for name in PIPELINES:
        dataset = images.with_format(None)
        collate = None
        if name == "decode":
            dataset.set_transform(DecodeOnly(), columns=["image"])
        elif name == "torchvision":
            dataset.set_transform(PlainTransform(size), columns=["image", "label"])
        else:
            fast = name.startswith("fast") or name == "pixels"
            transform = hf_dr.ReinforcedTransform(table, policy="rrc+ra_re", size=size, num_classes=num_classes,
                                                  output="uint8" if fast else "float32")
            transform.attach(dataset)
            if name.endswith("_1by1"):
                dataset.set_transform(OneByOne(transform), columns=transform.input_columns)
            elif name == "pixels":
                dataset.set_transform(PixelsOnly(transform, images["key"]), columns=transform.input_columns)
            collate = transform.collate(keep_memory=name != "fast_nokeep") if fast else None
        made[name] = (dataset, collate)
    return made


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DataLoader workers of a finished epoch)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def epoch_cpu_per_sample(dataset: datasets.Dataset, collate, workers: int, batch_size: int) -> float:
    """CPU microseconds per sample of one shuffled epoch (workers are joined at its end, so their CPU counts)."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
    start = cpu_seconds()
    for batch in loader:
        del batch
    del loader
    return (cpu_seconds() - start) * 1e6 / len(dataset)


_MADE: dict[str, tuple] = {}  # the pipelines, read by the forked processes that run them


def _run_epoch(name: str, workers: int, batch_size: int, results: Any) -> None:
    results.put(epoch_cpu_per_sample(*_MADE[name], workers, batch_size))


def isolated_epoch(name: str, workers: int, batch_size: int) -> float:
    """:func:`epoch_cpu_per_sample` of pipeline ``name`` in a forked process: each run starts from the same process
    state (the fast collate's malloc settings, or any pipeline's heap, do not carry over to the next run)."""
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    process = context.Process(target=_run_epoch, args=(name, workers, batch_size, results))
    process.start()
    value = results.get()
    process.join()
    return value


def measure(size: int, count: int, args: argparse.Namespace) -> dict[str, float]:
    """Median CPU per sample (us) of each pipeline at ``size``, alternating runs; prints them."""
    num_classes = 1000 if size == 224 else 100
    images = make_images(count, None if size == 224 else size)
    table = reinforce_synthetic(images, args.num_samples, (375, 500) if size == 224 else (size, size), num_classes)
    _MADE.clear()
    _MADE.update(pipelines(images, table, size, num_classes))
    for dataset, _ in _MADE.values():  # first-use imports and caches, inherited by the forks (no collate runs here)
        dataset[:8]
    runs: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for _ in range(args.repeats):
        for name in PIPELINES:
            runs[name].append(isolated_epoch(name, args.workers, args.batch_size))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    for name, values in runs.items():
        print(f"[{size} px] {name:11s} CPU per sample: median {medians[name]:7.1f} us "
              f"({medians[name] / medians['decode']:.2f}x decode, {medians[name] / medians['torchvision']:.2f}x "
              f"torchvision), runs {[round(v) for v in values]}")
    hook_costs(images, _MADE["fast"][0], size, args)
    return medians


def hook_costs(images: datasets.Dataset, attached: datasets.Dataset, size: int, args: argparse.Namespace) -> None:
    """CPU per sample of the replay hook alone on decoded images (no row reading, no collate): batched, one sample
    at a time, and the image work alone (:class:`PixelsOnly`), the three interleaved batch by batch (their order
    rotating) so that a load that changes over the run weighs on each alike; prints medians over the rounds and the
    replay's overhead above the image work."""
    transform = attached.format["format_kwargs"]["transform"]
    decoded = images.with_format(None)[:]
    for image in decoded["image"]:
        image.load()  # decoded now, not by whichever hook reads it first
    hooks = {"batched": transform, "one_by_one": OneByOne(transform), "pixels": PixelsOnly(transform, images["key"])}
    names = list(hooks)
    rounds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        totals = dict.fromkeys(names, 0.0)
        for number, start in enumerate(range(0, len(images), args.batch_size)):
            batch = {column: decoded[column][start:start + args.batch_size] for column in ("image", "key")}
            for name in names[number % 3:] + names[:number % 3]:
                begin = time.process_time()
                hooks[name](batch)
                totals[name] += time.process_time() - begin
        for name in names:
            rounds[name].append(totals[name] * 1e6 / len(images))
    med = {name: statistics.median(values) for name, values in rounds.items()}
    print(f"[{size} px] hook alone, CPU per sample (median of {args.repeats} rounds, interleaved by batch): "
          + ", ".join(f"{name} {med[name]:.1f} us" for name in names))
    print(f"[{size} px] hook overhead above the image work: batched {med['batched'] - med['pixels']:.1f} us "
          f"({(med['batched'] - med['pixels']) / med['pixels']:.3f} of it), one by one "
          f"{med['one_by_one'] - med['pixels']:.1f} us ({(med['one_by_one'] - med['pixels']) / med['pixels']:.3f}); "
          f"hook batched / one by one: {med['batched'] / med['one_by_one']:.3f}")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="375 x 500 JPEGs read at 224 px")
    parser.add_argument("--small-images", type=int, default=4096, help="32 x 32 PNGs read at 32 px")
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 32], choices=[224, 32])
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at the start")
    ratios = {}
    for size, count in ((224, args.images), (32, args.small_images)):
        if size not in args.sizes:
            continue
        medians = measure(size, count, args)
        ratios[size] = medians["fast"] / medians["torchvision"]
        print(f"[{size} px] fast / torchvision: {ratios[size]:.3f} (goal <= {GOALS[size]}); replay / torchvision: "
              f"{medians['replay'] / medians['torchvision']:.3f}; fast / replay: "
              f"{medians['fast'] / medians['replay']:.3f}; fast / decode floor: "
              f"{medians['fast'] / medians['decode']:.2f}")
        print(f"[{size} px] batched / one by one: fast {medians['fast'] / medians['fast_1by1']:.3f}, replay "
              f"{medians['replay'] / medians['replay_1by1']:.3f}; fast_1by1 / torchvision: "
              f"{medians['fast_1by1'] / medians['torchvision']:.3f}; CPU above the decode floor, batched / one by "
              f"one: {(medians['fast'] - medians['decode']) / (medians['fast_1by1'] - medians['decode']):.3f}")
        pixels = medians["pixels"] - medians["decode"]
        print(f"[{size} px] replay overhead above the image work (fast - pixels) per sample: batched "
              f"{medians['fast'] - medians['pixels']:.1f} us ({(medians['fast'] - medians['pixels']) / pixels:.3f} of "
              f"the image work past decoding), one by one {medians['fast_1by1'] - medians['pixels']:.1f} us "
              f"({(medians['fast_1by1'] - medians['pixels']) / pixels:.3f})")
    print(f"machine: load average {os.getloadavg()[0]:.2f} (1 min) at the end (other processes do not count in CPU "
          "time, but they share caches and cores)")
    headline = max(ratios[size] / GOALS[size] for size in ratios)
    for size, ratio in ratios.items():
        print(f"fast_cpu_over_torchvision_{size}: {ratio:.3f}")
    print(f"loader_worst_ratio_over_goal: {headline:.3f}")
    return headline


if __name__ == "__main__":
    main()
