"""DataLoader epoch time: ReinforcedTransform (replay stored params + soft label) vs a plain torchvision
RandomResizedCrop + flip + RandAugment + RandomErasing pipeline, same images, same workers, alternating runs.

Images: 512 real photos (random crops of scikit-learn's two sample photos, JPEG, ImageNet-like 375 x 500).
Reinforcements: N=20 records per image of ``rrc+ra_re`` with k=10 soft labels over 1000 classes.
Headline (last line): median reinforced / plain epoch time (the paper reports 0.97-1.12).

    python benchmarks/loader_overhead.py [--images 512] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

import hf_dr
from hf_dr.augment.seeding import generator_for
from hf_dr.data import schema


def make_images(count: int) -> datasets.Dataset:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        photo = photos[i % 2]
        top, left = rng.integers(0, 427 - 375 + 1), rng.integers(0, 640 - 500 + 1)
        buffer = io.BytesIO()
        Image.fromarray(photo[top:top + 375, left:left + 500]).save(buffer, format="JPEG", quality=90)
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=1000),
                                  "key": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"image": images, "label": [i % 1000 for i in range(count)], "key": [f"img-{i}" for i in range(count)]},
        features=features,
    )


def reinforce_synthetic(images: datasets.Dataset, num_samples: int) -> datasets.Dataset:
    policy = hf_dr.create_policy("rrc+ra_re")
    rng = np.random.default_rng(0)
    rows = []
    for key in images["key"]:
        probs = torch.softmax(torch.tensor(rng.normal(0, 2, (num_samples, 1000))), -1)
        ids, values = hf_dr.sparsify(probs, 10)
        records = [schema.encode_record(policy, policy.sample_params((375, 500), generator_for(0, key, j)), i, p)
                   for j, (i, p) in enumerate(zip(ids.tolist(), values.tolist(), strict=True))]
        rows.append({"key": key, "reinforcements": records})
    return datasets.Dataset.from_list(rows, features=schema.reinforcement_features(policy, 10, 1000))


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


def epoch_seconds(dataset: datasets.Dataset, workers: int, batch_size: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for batch in loader:
        assert batch["pixel_values"].ndim == 4 and batch["pixel_values"].shape[1] == 3
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    images = make_images(args.images)
    table = reinforce_synthetic(images, args.num_samples)
    plain = images.with_format(None)
    plain.set_transform(PlainTransform())
    reinforced = images.with_format(None)
    hf_dr.ReinforcedTransform(table, policy="rrc+ra_re", size=224, num_classes=1000).attach(reinforced)
    epoch_seconds(plain, args.workers, args.batch_size)  # warm the page cache and worker start-up paths
    times: dict[str, list[float]] = {"plain": [], "reinforced": []}
    for _ in range(args.repeats):
        times["plain"].append(epoch_seconds(plain, args.workers, args.batch_size))
        times["reinforced"].append(epoch_seconds(reinforced, args.workers, args.batch_size))
    for name, values in times.items():
        print(f"{name:10s} epoch: median {statistics.median(values):.2f} s over {args.images} images "
              f"({args.images / statistics.median(values):.0f} img/s), runs {[round(v, 2) for v in values]}")
    ratios = [r / p for r, p in zip(times["reinforced"], times["plain"], strict=True)]
    print(f"per-run ratios: {[round(r, 3) for r in ratios]}")
    print(f"loader_overhead_ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
