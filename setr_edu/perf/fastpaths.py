"""The fast paths of chapter 15, each a switch next to the readable default, and each tested to agree with it.

* fused attention: :func:`set_fused_attention` toggles ``F.scaled_dot_product_attention`` vs the explicit
  ``softmax(QK^T/sqrt(d)) V`` in every attention layer (ours and timm's);
* mixed precision: :func:`autocast` runs matmuls and convolutions in bf16 (or fp16), keeping weights in fp32;
  :func:`~setr_edu.engine.amp.resolve_amp` (re-exported here) picks the precision for the hardware (``amp="auto"``);
* channels-last: :func:`to_channels_last` stores 4-D conv weights (and what flows through them) as NHWC;
* ``torch.compile``: :func:`graph_breaks` checks that Dynamo captures a module as a single graph;
* fused optimizer: :func:`fused_sgd_available` tells whether ``torch.optim.SGD(..., fused=True)`` works on a device.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..engine.amp import AMP_CHOICES, resolve_amp  # noqa: F401  (the training policy lives in engine; re-exported)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_fused_attention(model: nn.Module, enabled: bool = True) -> int:
    """Switch every attention layer of ``model`` (setr_edu's ``.fused``, timm's ``.fused_attn``) to SDPA or the
    explicit path. Returns how many layers were switched."""
    n = 0
    for m in model.modules():
        for attr in ("fused", "fused_attn"):
            if isinstance(getattr(m, attr, None), bool):
                setattr(m, attr, enabled)
                n += 1
    return n


def autocast(device: torch.device | str, amp: str | None):
    """``torch.autocast`` for ``amp`` in {None, "bf16", "fp16"} on the device's type (a no-op for ``None``)."""
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    return torch.autocast(torch.device(device).type, dtype=AMP_DTYPES[amp])


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the model's 4-D weights as channels-last (NHWC) in place; convolutions fed NHWC data then stay NHWC.

    On a GPU this lets cuDNN use tensor-core kernels without layout transposes; on CPU oneDNN also prefers NHWC.
    (SETR's encoder maps are already NHWC in memory: ``to_map`` returns a permuted view of ``(B, h, w, D)``.)
    """
    return model.to(memory_format=torch.channels_last)


def fused_sgd_available(device: torch.device | str = "cpu") -> bool:
    """Whether ``torch.optim.SGD(params, momentum=0.9, fused=True)`` can take a step on ``device``."""
    try:
        p = nn.Parameter(torch.ones(4, device=device))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
        return bool(torch.allclose(p.detach().cpu(), torch.full((4,), 0.9)))
    except (RuntimeError, ValueError, TypeError):
        return False


def graph_breaks(fn, *args) -> tuple[int, list[str]]:
    """How many graph breaks ``torch.compile`` hits on ``fn(*args)``, and why.

    Uses ``torch._dynamo.explain``, which only traces the Python code into graphs (Dynamo); it compiles
    nothing, so it needs no C compiler and takes seconds. Zero breaks means ``torch.compile(fn, fullgraph=True)``
    works and the compiler sees the whole model at once.
    """
    import torch._dynamo

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args)
    reasons = [str(getattr(b, "reason", b)) for b in explanation.break_reasons]
    return explanation.graph_break_count, reasons
