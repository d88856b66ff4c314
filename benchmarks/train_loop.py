"""The training loop's cost on CPU: steps/s of :func:`hf_dr.fit` on the reinforced replay against the same ``fit`` on
torchvision's RandomResizedCrop + flip + RandAugment + RandomErasing (same student, seed, workers and batch; ImageNet-
sized JPEGs of real photos). It is ``benchmarks/gpu.py``'s training part at a CPU size; the headline (last line) is the
reinforced run's time per step over the plain run's (goal <= 1.05).

    python benchmarks/train_loop.py                       # test_resnet at 112 px, 256 images, 2 workers, 3 pairs
    python benchmarks/train_loop.py --student resnet18 --size 224
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu import parse_args, training_part  # noqa: E402

CPU_DEFAULTS = ["--device", "cpu", "--tiny", "--part", "training", "--student", "test_resnet", "--size", "112",
                "--images", "256", "--train-samples", "4", "--train-batch-size", "32", "--train-workers", "2",
                "--train-epochs", "1", "--repeats", "3"]


def main(argv: list[str] | None = None) -> float:
    from accelerate import Accelerator

    args = parse_args(CPU_DEFAULTS + list(sys.argv[1:] if argv is None else argv))  # later flags win
    ratio = training_part(args, Accelerator(cpu=True))
    time_ratio = 1.0 / ratio
    print(f"fit_time_reinforced_over_plain: {time_ratio:.3f}")
    return time_ratio


if __name__ == "__main__":
    main()
