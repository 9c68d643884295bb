"""The training-memory estimator against PyTorch's own tracker, on the configurations the book and recipes use.

    PYTHONPATH=. python3 benchmarks/memory_grid.py --out benchmarks/results/memory_grid   # ~1 h on 2 CPU cores
    PYTHONPATH=. python3 benchmarks/memory_grid.py --quick --out /tmp/grid                # 4 configurations

For each configuration: :func:`setr_edu.perf.estimate_training_memory` (what autograd saves + the phases of a
step) and :func:`setr_edu.perf.memory.tracked_training_peak` (``MemTracker`` over two whole Trainer-like steps on
fake tensors). Writes ``OUT.json`` and ``OUT.md``; exits 1 if any estimate is off by more than 10%.
The configurations: the Colab recipes (per-GPU micro-batch, accumulation, checkpointing, fp16 on a T4 and bf16 on
an L4/A100), the paper recipes' per-GPU batch under ``amp=auto`` on an sm80+ GPU (bf16), chapter 12's and 15's
tables (T-Large and T-Base, 512 and 768, fp32/bf16, with and without checkpointing). The tests
(``tests/test_memory.py``) run the same comparison on small models.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import setr_edu
from setr_edu.perf.memory import GiB, estimate_training_memory, tracked_training_peak

# (label, decoder, encoder, crop, classes, per-GPU micro-batch, amp, checkpointing, accumulation steps)
GRID = [
    ("ade20k_pup_colab T4", "pup", "large", 512, 150, 4, "fp16", True, 2),
    ("ade20k_pup_colab L4/A100", "pup", "large", 512, 150, 4, "bf16", True, 2),
    ("ade20k_naive_colab T4", "naive", "large", 512, 150, 4, "fp16", True, 2),
    ("cityscapes_pup_colab T4", "pup", "large", 768, 19, 2, "fp16", True, 4),
    ("ade20k_pup per GPU (paper)", "pup", "large", 512, 150, 2, "bf16", False, 1),
    ("ade20k_mla per GPU (paper)", "mla", "large", 512, 150, 2, "bf16", False, 1),
    ("cityscapes_pup per GPU (paper)", "pup", "large", 768, 19, 1, "bf16", False, 1),
    ("ch12 PUP-L 512 b2 fp32", "pup", "large", 512, 150, 2, None, False, 1),
    ("ch12 Naive-L 512 b2 bf16+ckpt", "naive", "large", 512, 150, 2, "bf16", True, 1),
    ("ch12 PUP-L 768 b2 bf16+ckpt", "pup", "large", 768, 19, 2, "bf16", True, 1),
    ("ch15 PUP-L 512 b8 bf16", "pup", "large", 512, 150, 8, "bf16", False, 1),
    ("ch15 PUP-L 512 b8 bf16+ckpt", "pup", "large", 512, 150, 8, "bf16", True, 1),
    ("ch15 PUP-L 512 b8 fp16+ckpt (T4 row)", "pup", "large", 512, 150, 8, "fp16", True, 1),
    ("ch15 MLA-B 768 b8 bf16", "mla", "base", 768, 150, 8, "bf16", False, 1),
    ("ch15 Naive-B 512 b8 fp32+ckpt", "naive", "base", 512, 150, 8, None, True, 1),
    ("gpu_check PUP-L 512 b8 fp16", "pup", "large", 512, 150, 8, "fp16", False, 1),
]
QUICK = [GRID[i] for i in (0, 3, 7, 13)]


def compare(row: tuple) -> dict:
    label, dec, enc, size, K, B, amp, ckpt, accum = row
    make = lambda: setr_edu.build_setr(dec, enc, num_classes=K, img_size=size)
    shape = (B, 3, size, size)
    t0 = time.perf_counter()
    est = estimate_training_memory(make, shape, amp=amp, checkpointing=ckpt, grad_accum_steps=accum)
    t1 = time.perf_counter()
    tracked = tracked_training_peak(make, shape, amp=amp, checkpointing=ckpt, num_classes=K, grad_accum_steps=accum)
    return dict(label=label, decoder=dec, encoder=enc, crop=size, classes=K, batch=B, amp=amp or "fp32",
                ckpt=ckpt, accum=accum, estimate_gib=est.total / GiB, tracked_gib=tracked["peak"] / GiB,
                ratio=est.total / tracked["peak"], peak_at=est.peak_at, estimate_s=t1 - t0,
                tracker_s=time.perf_counter() - t1)


def to_markdown(rows: list[dict]) -> str:
    lines = ["| configuration | amp | ckpt | micro-batch x accum | estimate GiB | tracked GiB | estimate / tracked |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['amp']} | {'on' if r['ckpt'] else 'off'} | {r['batch']} x {r['accum']} | "
                     f"{r['estimate_gib']:.2f} | {r['tracked_gib']:.2f} | {r['ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    ap.add_argument("--quick", action="store_true", help="4 configurations instead of the whole grid")
    args = ap.parse_args(argv)
    rows = []
    for row in QUICK if args.quick else GRID:
        rows.append(compare(row))
        r = rows[-1]
        print(f"{r['label']}: estimate {r['estimate_gib']:.2f} GiB, tracked {r['tracked_gib']:.2f} GiB, "
              f"ratio {r['ratio']:.3f} ({r['tracker_s']:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        args.out.with_suffix(".md").write_text(to_markdown(rows))
    return 0 if all(abs(r["ratio"] - 1) <= 0.10 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
