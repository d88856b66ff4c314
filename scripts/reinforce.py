"""Reinforce a dataset, on one or several processes: the same code as ``hf-dr reinforce``.

    python scripts/reinforce.py --dataset DIR --teacher ARCH=weights.safetensors --output-dir out
    accelerate launch --multi_gpu --num_processes 4 scripts/reinforce.py ...   # one process per GPU
    torchrun --nproc_per_node 2 scripts/reinforce.py ...                         # CPU processes (gloo) or GPUs

Every process takes its own shards; the output is the same for any number of processes. Rerun the same command to
resume an interrupted run. See ``hf-dr reinforce --help`` for the flags.
"""

import sys

from hf_dr.cli import main

if __name__ == "__main__":
    sys.exit(main(["reinforce", *sys.argv[1:]]))
