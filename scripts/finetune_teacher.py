"""Fine-tune a teacher ensemble to reinforce a dataset with (paper Sec. 2.3): the code of ``hf-dr finetune-teacher``.

    python scripts/finetune_teacher.py --builder cifar100_plus --output-dir teachers/cifar100_plus
    python scripts/finetune_teacher.py --dataset ./my_imagefolder --eval-split test --arch resnet50.a1_in1k \\
        --num-members 4 --output-dir teachers/mine
    hf-dr reinforce --builder cifar100_plus --teacher-spec teachers/cifar100_plus/teacher_spec.json

Writes member-{i}.safetensors, teacher_spec.json and finetune_metrics.json. See ``hf-dr finetune-teacher --help``.
"""

import sys

from hf_dr.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune-teacher", *sys.argv[1:]]))
