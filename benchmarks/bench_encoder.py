"""setr_edu's ViTEncoder vs timm's VisionTransformer: same shape, same weights, interleaved in one process.

    python benchmarks/bench_encoder.py --encoder base --img-size 384 --batch-size 2 --repeats 9 --threads 2
    python benchmarks/bench_encoder.py --encoder tiny --depth 4 --img-size 256 --batch-size 8 --repeats 11
    python benchmarks/bench_encoder.py --encoder large --img-size 512 --batch-size 8 --device cuda   # bf16, MFU

Same as ``python -m setr_edu bench encoder ...``; ``--help`` lists every option. speedup > 1: setr_edu is faster.
"""
import sys

from setr_edu.perf.bench import main

if __name__ == "__main__":
    sys.exit(main(["encoder", *sys.argv[1:]]))
