"""Counting FLOPs: measured on the ``meta`` device, and the textbook formula for a ViT (book chapter 15).

Convention: one multiply-add is **2 FLOPs** (as in ``torch.utils.flop_counter``); fvcore and timm's
benchmark tables count MACs, i.e. half these numbers.

Two ways to count, tested to agree:

* :func:`count_flops` runs a model on the ``meta`` device under ``torch.utils.flop_counter.FlopCounterMode``.
  A meta tensor has a shape and a dtype but no data, so even SETR-L at 768x768 is "run" in a second or two with no
  memory. Counting on meta matters for a second reason: on a real CPU tensor, ``scaled_dot_product_attention``
  dispatches to a fused kernel that has no registered FLOP formula, so the attention matmuls would be silently
  dropped. On meta, SDPA decomposes into ``bmm`` calls, which are counted.
* :func:`vit_flops` is the formula for one transformer layer with ``N`` tokens of width ``D`` and MLP width ``rD``:
  ``qkv 6ND^2 + QK^T 2N^2D + AV 2N^2D + proj 2ND^2 + MLP 4rND^2`` (= ``24ND^2 + 4N^2D`` for ``r = 4``),
  plus the patch embedding ``2 (N-1) D (C p^2)``. LayerNorm, softmax, GELU and the residual adds are not counted
  (they are memory-bound and small in FLOPs; FlopCounterMode ignores them too).

Backward costs about twice the forward (a gradient for the weights and one for the inputs of every matmul),
so a training step is about 3x the forward FLOPs.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..config import EncoderConfig, encoder_config


@dataclass
class FlopCount:
    """FLOPs of one call, for the whole batch. ``by_op``: FLOPs per aten op (forward and backward added)."""

    forward: int
    backward: int = 0
    batch_size: int = 1
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Forward + backward (just the forward when the backward was not counted)."""
        return self.forward + self.backward

    def per_image(self, which: str = "forward") -> float:
        """FLOPs per image of ``"forward"``, ``"backward"`` or ``"total"``."""
        return getattr(self, which) / self.batch_size

    def gflops(self, which: str = "forward") -> float:
        """GFLOPs per image (the unit of the book's tables)."""
        return self.per_image(which) / 1e9


def _as_meta_model(model: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    """A copy of ``model`` on the meta device. Pass a factory (``lambda: build_setr(...)``) for big models:
    it is then *built* on meta and never allocates its weights."""
    if isinstance(model, nn.Module):
        params = list(model.parameters())
        if params and params[0].device.type == "meta":
            return model
        return copy.deepcopy(model).to("meta")
    with torch.device("meta"):
        return model()


def _scalar(out) -> torch.Tensor:
    """Reduce any nest of tensors (a SETR ``(logits, [aux])`` tuple, an encoder's list of maps) to one scalar."""
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    if isinstance(out, dict):
        out = list(out.values())
    return sum(_scalar(o) for o in out)


def count_flops(model: nn.Module | Callable[[], nn.Module], input_shape: Sequence[int], backward: bool = False,
                forward_fn: Callable[[nn.Module, torch.Tensor], object] | None = None) -> FlopCount:
    """Count the FLOPs of ``forward_fn(model, x)`` (default ``model(x)``) for ``x`` of ``input_shape``, on meta.

    Args:
        model: a module (copied to meta; the original is untouched) or a zero-argument factory (built on meta).
        input_shape: e.g. ``(2, 3, 512, 512)``; the result is for the whole batch, see :meth:`FlopCount.per_image`.
        backward: also count the backward of ``sum(outputs)`` (the loss does not change the count).
        forward_fn: what to run, e.g. ``lambda m, x: m(x, with_aux=True)`` or timm's ``forward_intermediates``.
    """
    meta = _as_meta_model(model)
    meta.train(backward)
    x = torch.empty(*input_shape, device="meta")
    run = forward_fn or (lambda m, inp: m(inp))
    with FlopCounterMode(display=False) as fwd_counter:
        out = run(meta, x)
    by_op = {str(k): v for k, v in fwd_counter.get_flop_counts()["Global"].items()}
    count = FlopCount(forward=fwd_counter.get_total_flops(), batch_size=int(input_shape[0]), by_op=by_op)
    if backward:
        loss = _scalar(out)
        with FlopCounterMode(display=False) as bwd_counter:
            loss.backward()
        count.backward = bwd_counter.get_total_flops()
        for k, v in bwd_counter.get_flop_counts()["Global"].items():
            count.by_op[str(k)] = count.by_op.get(str(k), 0) + v
    return count


def train_flops(model: nn.Module | Callable[[], nn.Module], input_shape: Sequence[int]) -> int:
    """Model FLOPs of one SETR training step for ``input_shape`` (whole batch): forward with the auxiliary heads +
    backward, counted on meta. No activation-checkpointing recompute: these are the FLOPs of MFU
    (:func:`setr_edu.perf.timing.mfu`)."""
    return count_flops(model, input_shape, backward=True, forward_fn=lambda m, x: m(x, with_aux=True)).total


def vit_flops(encoder: str | EncoderConfig = "base", img_size: int | tuple[int, int] = 384,
              cls_token: bool = True, **overrides) -> dict[str, float]:
    """The analytic forward FLOPs **per image** of a ViT backbone (every block, no final norm, no head).

    Returns a dict with ``tokens`` (N), ``per_layer``, ``attention_matmuls`` (the ``4N^2D`` part of all layers),
    ``patch_embed`` and ``total``. ``vit_flops("base", 384)["total"]`` is 110.97e9;
    ``vit_flops("large", 512)["total"]`` is 723.97e9.
    """
    cfg = encoder_config(encoder, **overrides)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    p, D, L, r = cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.mlp_ratio
    patches = (h // p) * (w // p)
    N = patches + int(cls_token)
    linear = (6 + 2 + 4 * r) * N * D * D  # qkv (D -> 3D), proj (D -> D), fc1 + fc2 (D -> rD -> D)
    attn = 4 * N * N * D  # Q K^T and A V: each 2 N^2 D over all heads
    patch = 2 * patches * D * (cfg.in_chans * p * p)  # the patch projection, one (C p p -> D) matmul per patch
    return dict(tokens=N, per_layer=linear + attn, attention_matmuls=L * attn, patch_embed=patch,
                total=L * (linear + attn) + patch)
