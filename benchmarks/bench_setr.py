"""Whole SETR models: images/s for training (with and without activation checkpointing) and inference, memory.

    python benchmarks/bench_setr.py                                  # the active profile's model (a toy on CPU)
    python benchmarks/bench_setr.py --decoder naive pup mla --encoder base large --img-size 512 768 \\
        --batch-size 8 --device cuda --json setr_gpu.json            # the paper's variants, bf16 on a GPU
    python benchmarks/bench_setr.py --decoder pup --encoder large --img-size 512 --batch-size 8 --checkpointing on

Same as ``python -m setr_edu bench setr ...``. FLOPs and memory estimates without a GPU:
``python -m setr_edu bench flops``.
"""
import sys

from setr_edu.perf.bench import main

if __name__ == "__main__":
    sys.exit(main(["setr", *sys.argv[1:]]))
