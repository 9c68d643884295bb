"""Timing that survives a noisy machine: interleaved repetitions, warm-up, median and min (book chapter 15).

Benchmarking two implementations one after the other is unfair on a shared machine: a neighbour's job that
starts halfway through slows only the second. :func:`time_interleaved` runs the candidates in turns (A B, B A,
A B, ...) so both see the same conditions, after a few warm-up calls (first calls pay for memory allocation,
kernel selection and caches). It reports the **median** (typical speed) and the **min** (the speed with the least
interference). It also records the process's CPU time per call, which on a crowded CPU does not count the time
spent waiting for a core (but still feels contention for caches and memory bandwidth).
On a GPU, work is asynchronous: the clock is only read after ``torch.cuda.synchronize()``.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# Dense (no sparsity) peaks from the vendors' datasheets, TFLOP/s, per precision: "bf16"/"fp16" on tensor cores,
# "fp32" without TF32 (PyTorch's default for matmuls). Matched against torch.cuda.get_device_name() by substring,
# first match wins; pass --peak-tflops for any other GPU. A precision a GPU has no tensor cores for is missing.
PEAK_TFLOPS = {
    "H200": dict(bf16=989.4, fp16=989.4, fp32=66.9),  # same GH100 tensor cores as the H100 SXM
    "H100 PCIe": dict(bf16=756.0, fp16=756.0, fp32=51.2),
    "H100": dict(bf16=989.4, fp16=989.4, fp32=66.9),  # SXM
    "A100": dict(bf16=312.0, fp16=312.0, fp32=19.5),
    "L40S": dict(bf16=362.0, fp16=362.0, fp32=91.6),  # before "L4": first match wins
    "L4": dict(bf16=121.0, fp16=121.0, fp32=30.3),
    "A10": dict(bf16=125.0, fp16=125.0, fp32=31.2),
    "T4": dict(fp16=65.0, fp32=8.1),  # compute capability 7.5: no bf16 tensor cores
    "V100": dict(fp16=125.0, fp32=15.7),  # 7.0: no bf16 tensor cores (SXM2 figures)
}

def peak_tflops(device_name: str, amp: str | None = "bf16") -> float | None:
    """The datasheet peak of a GPU for the precision actually used (``amp`` ``"bf16"``, ``"fp16"`` or ``None`` for
    fp32), or ``None`` when the GPU (or that precision on it) is not in :data:`PEAK_TFLOPS`. MFU must be computed
    against the peak of the precision that ran: an fp16 run on a T4 against 65, an fp32 run against 8.1."""
    for key, peaks in PEAK_TFLOPS.items():
        if key in device_name:
            return peaks.get(amp or "fp32")
    return None


def mfu(model_flops_per_image: float, images_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation, the one definition used by ``bench``, ``benchmarks/gpu_check.py`` and the plan.

    ``model FLOPs per image x images/s / peak FLOP/s`` (PaLM, Chowdhery et al. 2022, appendix B): the model FLOPs
    are those of forward + backward of the model as defined (:func:`setr_edu.perf.flops.train_flops`), **without**
    the recomputation of activation checkpointing. A checkpointed run executes more FLOPs for the same model FLOPs,
    so its MFU is lower; the hardware's view (recompute included) is "HFU". ``peak`` in TFLOP/s for the precision
    used (:func:`peak_tflops`); ``None`` when it is unknown.
    """
    return model_flops_per_image * images_per_s / (peak * 1e12) if peak else None


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work; a no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Seconds per call of one candidate over the repetitions, plus its peak memory (CUDA only)."""

    name: str
    times: list[float] = field(default_factory=list)  # wall-clock seconds per call
    cpu_times: list[float] = field(default_factory=list)  # process CPU seconds per call (all threads)
    batch_size: int = 1
    peak_memory: int | None = None  # bytes, max over the repetitions

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def cpu_median(self) -> float:
        """Median CPU time: on a crowded machine, time spent waiting for a core is not counted."""
        return statistics.median(self.cpu_times)

    @property
    def images_per_s(self) -> float:
        """Throughput at the median time."""
        return self.batch_size / self.median


def paired_ratio(slow: Timing, fast: Timing) -> float:
    """Median over the repetitions of ``slow``'s time / ``fast``'s time in that repetition: each repetition ran
    both back to back (:func:`time_interleaved`), so slow drifts of the machine's load cancel in each ratio."""
    return statistics.median(s / f for f, s in zip(fast.times, slow.times))


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
                     device: torch.device | str = "cpu", batch_size: int = 1) -> dict[str, Timing]:
    """Time each zero-argument function in ``fns``, alternating their order every repetition.

    Returns ``{name: Timing}``. On CUDA, ``Timing.peak_memory`` is ``torch.cuda.max_memory_allocated`` during
    that function's calls (the counter is reset before each call).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    names = list(fns)
    result = {n: Timing(n, batch_size=batch_size) for n in names}
    for i in range(warmup + repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            synchronize(device)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            if i >= warmup:
                result[name].times.append(elapsed)
                result[name].cpu_times.append(cpu)
                if cuda:
                    peak = torch.cuda.max_memory_allocated(device)
                    result[name].peak_memory = max(result[name].peak_memory or 0, peak)
    return result
