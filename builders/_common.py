"""Text shared by the recipes whose teacher is fine-tuned on the target dataset (CIFAR-100+, Flowers-102+, Food-101+).

Data only: the base checkpoint, the number of members, the fine-tuning resolution, and the notes that say what differs
from the paper and why.
"""

FINETUNE_BASE = "resnet152.tv2_in1k"
FINETUNE_SEEDS = (0, 1, 2, 3)
FINETUNE_INPUT_SIZE = 224
# Fine-tuning epochs per member: starting points (about 8k-12k SGD steps at batch 64 on CIFAR-100 and Food-101, 1.6k on
# the 1,020 Flowers images), not tuned here (no GPU); the paper does not give its teachers' schedule.
FINETUNE_EPOCHS = {"cifar100_plus": 10, "flowers102_plus": 100, "food101_plus": 10}

FINETUNE_NOTES = (
    "Teacher base: the paper fine-tunes 4 copies of an ImageNet+-pretrained ResNet-152 (apple/ml-dr checkpoints, "
    "which are not in the timm registry). This recipe fine-tunes `resnet152.tv2_in1k` instead, the ResNet-152 of "
    "torchvision's improved recipe (about 82.3% ImageNet top-1, BSD-3-Clause): a registered, strong ImageNet "
    "ResNet-152 that keeps the paper's architecture and ensemble size. The 4 members differ by seed (0-3): head "
    "initialisation, data order and augmentation draws.",
    "The fine-tuned teachers are not published checkpoints: run `hf-dr finetune-teacher --builder NAME` first and "
    "pass its `teacher_spec.json` with `--teacher-spec`; the run records every member's weight hash.",
    "Teachers see every view at 224 x 224 like the paper's; small images are upsampled by the random-resized-crop "
    "(the paper pads CIFAR-100 by 16 pixels before resizing, which is not replicated).",
)
