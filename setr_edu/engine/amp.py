"""Which mixed precision a run uses: the training policy behind the recipes' ``amp=auto`` (chapter 12).

The Trainer, the benchmarks and the GPU check all ask :func:`resolve_amp`, so "auto" means one thing everywhere.
(``setr_edu.perf.fastpaths`` re-exports it next to the other fast paths of chapter 15.)
"""
from __future__ import annotations

import torch

AMP_CHOICES = ("auto", "none", "bf16", "fp16")


def resolve_amp(amp: str | None, device: torch.device | str) -> str | None:
    """The autocast precision to use: ``None`` (fp32), ``"bf16"`` or ``"fp16"``.

    ``"auto"`` picks by hardware: on a CUDA GPU of compute capability 8.0 or newer (A100, A10, L4, RTX 30xx/40xx,
    H100) ``"bf16"``, which has bf16 tensor cores and needs no loss scaling; on older GPUs (T4 = 7.5, V100 = 7.0)
    ``"fp16"``, whose small range needs a ``GradScaler``; on a CPU (or MPS) ``None``: without bf16 units a CPU
    runs bf16 *slower* than fp32 (chapter 15). ``"none"``/``None`` is fp32; ``"bf16"``/``"fp16"`` are kept as asked.
    """
    if amp not in (None, *AMP_CHOICES):
        raise ValueError(f"amp must be one of {list(AMP_CHOICES)}, got {amp!r}")
    if amp != "auto":
        return None if amp in (None, "none") else amp
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _minor = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"
