"""Where does the time go? ``torch.profiler`` on one training step, grouped into kinds of work (chapter 15).

The profiler records every aten operator with its *self* time (time inside the op, not in the ops it calls), so
the self times add up to the step. :func:`profile_step` groups them into a few kinds of work: the matmuls
that hold nearly all the FLOPs, and the memory-bound rest (normalisation, element-wise ops, copies, upsampling)
that holds almost none of the FLOPs but a real share of the time.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

# (kind, substrings of the aten op name); the first kind that matches wins, so the order matters.
OP_KINDS = (
    ("attention (SDPA)", ("scaled_dot_product", "attention")),
    ("upsampling", ("upsample", "interpolate")),  # before matmul: "upsample_bilinear2d" contains "linear"
    ("matmul (linear, bmm)", ("addmm", "bmm", "aten::mm", "matmul", "linear")),
    ("convolution", ("conv",)),
    ("normalisation", ("layer_norm", "batch_norm", "native_norm")),
    ("softmax / loss", ("softmax", "nll_loss", "cross_entropy")),
    ("optimizer", ("sgd", "_foreach", "adam")),
    ("copies / reshapes", ("copy_", "cat", "clone", "contiguous", "transpose", "permute", "reshape", "view",
                           "_to_copy", "fill_", "zero_", "empty", "expand", "slice", "unbind", "select")),
    ("element-wise", ("gelu", "relu", "threshold", "clamp", "add", "mul", "div", "sub", "sum", "mean", "neg",
                      "where")),
)


def op_kind(name: str) -> str:
    """The kind of work of an aten op (``"aten::addmm"`` -> ``"matmul (linear, bmm)"``); ``"other"`` if unknown."""
    low = name.lower()
    for kind, keys in OP_KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence C++ log lines the profiler writes straight to file descriptor 2 when it starts and stops
    (``USDT ... profiler_start``); Python exceptions are unaffected."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _profiled(step: Callable[[], object], activities) -> profile:
    prof = profile(activities=activities)
    with _quiet_native_stderr():
        prof.start()
    try:
        step()
    finally:
        with _quiet_native_stderr():
            prof.stop()
            prof.key_averages()  # computed once here, cached by the profiler
    return prof


def profile_step(step: Callable[[], object], warmup: int = 1) -> tuple[list[dict], list[dict]]:
    """Profile one call of ``step`` (after ``warmup`` unprofiled calls) on CPU (and CUDA if available).

    Returns ``(by_kind, top_ops)``: rows ``{"kind", "ms", "share"}`` sorted by time, and the aten ops
    ``{"op", "kind", "calls", "ms", "share"}`` sorted by self time. Times are self CPU time (on a GPU the
    CPU time of an op is its launch cost; read ``self_device_time_total`` from the profiler for kernel time).
    """
    for _ in range(warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    prof = _profiled(step, activities)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::") and e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    top = [dict(op=e.key, kind=op_kind(e.key), calls=e.count, ms=e.self_cpu_time_total / 1e3,
                share=e.self_cpu_time_total / total) for e in events]
    top.sort(key=lambda r: -r["ms"])
    by_kind: dict[str, float] = {}
    for r in top:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0.0) + r["ms"]
    kinds = [dict(kind=k, ms=v, share=v / (total / 1e3)) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])]
    return kinds, top


def op_calls(step: Callable[[], object], warmup: int = 1) -> dict[str, int]:
    """How many times ``step()`` calls each aten op (after ``warmup`` calls): compare two implementations
    op for op (ops that do no work, such as views, are included)."""
    for _ in range(warmup):
        step()
    prof = _profiled(step, [ProfilerActivity.CPU])
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}
