"""How much memory does training need? An estimate computed from the model itself (book chapter 15).

Training memory on a GPU is roughly

* **weights** (fp32 master copy, 4 bytes per parameter), their **gradients** (4 bytes), and the **optimizer
  state** (SGD with momentum, SETR's optimizer: one more fp32 tensor per parameter; AdamW: two);
* **activations saved for the backward pass**: every op keeps some of its inputs or outputs until the gradient
  reaches it. This part grows with batch size and resolution (and with ``N^2`` for explicit attention), and it is
  usually the largest.

:func:`estimate_training_memory` measures the second part exactly, without allocating anything: the model is
built on the ``meta`` device, turned into *fake* CPU tensors (``torch._subclasses.fake_tensor.FakeTensorMode``:
shapes, dtypes and autocast rules, no data), and run once under
``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor autograd saves. Storages are counted
once, however many views point into them. Mixed precision uses the CPU autocast rules, which cast the same ops
(linear, matmul, conv) to bf16/fp16 as CUDA's do.

Activation checkpointing (``model.encoder.grad_checkpointing = True``) keeps only each transformer block's input
and recomputes the block in the backward pass; the estimate then adds one block's activations for the
recomputation. Not counted: the CUDA context (~0.5 GB), allocator fragmentation, kernel workspaces and transient
gradient buffers, so a measured ``torch.cuda.max_memory_allocated`` is somewhat higher.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from .fastpaths import AMP_DTYPES
from .flops import _as_meta_model

GiB = 2**30


@dataclass
class MemoryEstimate:
    """Bytes of training memory (whole batch). ``activations`` = tensors saved for backward (incl. recompute)."""

    params: int
    grads: int
    optimizer: int
    activations: int
    batch_size: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer + self.activations

    def as_gib(self) -> dict[str, float]:
        keys = ("params", "grads", "optimizer", "activations", "total")
        return {k: round(getattr(self, k) / GiB, 3) for k in keys}


def _encoder_blocks(model: nn.Module) -> tuple[nn.Module | None, list[nn.Module]]:
    """The ViTEncoder inside ``model`` (or ``model`` itself) and its blocks; ``(None, [])`` for other models."""
    enc = getattr(model, "encoder", model)
    blocks = list(getattr(enc, "blocks", []))
    return (enc if blocks else None), blocks


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, amp: str | None = None,
                           forward_fn: Callable | None = None) -> dict[str, int]:
    """Run ``forward_fn(model, x)`` once (train mode) and measure what autograd keeps for backward.

    Returns bytes: ``total`` (all saved storages, parameters excluded), ``blocks`` (the part saved inside the
    encoder's transformer blocks) and ``block_inputs`` (the blocks' input token tensors). Works on real or fake
    tensors; :func:`estimate_training_memory` calls it on fake ones.
    """
    param_storages = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}
    in_block: dict[int, int] = {}
    inputs: dict[int, int] = {}
    depth = [0]  # > 0 while inside a transformer block

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s._cdata not in param_storages and s._cdata not in seen:
            seen[s._cdata] = s.nbytes()
            if depth[0]:
                in_block[s._cdata] = s.nbytes()
        return t

    def enter(_module, args):
        s = args[0].untyped_storage()
        inputs[s._cdata] = s.nbytes()
        depth[0] += 1

    def leave(_module, _args, _out):
        depth[0] -= 1

    _, blocks = _encoder_blocks(model)
    handles = [h for b in blocks for h in (b.register_forward_pre_hook(enter), b.register_forward_hook(leave))]
    run = forward_fn or (lambda m, inp: m(inp))
    device_type = x.device.type if x.device.type in ("cpu", "cuda") else "cpu"
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast(device_type, dtype=AMP_DTYPES.get(amp, torch.bfloat16), enabled=amp is not None):
            out = run(model, x)
    finally:
        for h in handles:
            h.remove()
    del out
    return dict(total=sum(seen.values()), blocks=sum(in_block.values()), block_inputs=sum(inputs.values()))


def setr_training_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The forward half of a SETR training step: main and auxiliary logits, then SETR's loss (CE + 0.4 x each aux).

    The loss matters for memory: each head's cross-entropy keeps its log-probabilities, ``(B, K, H, W)`` in fp32
    at the *input* resolution, for the backward pass; with 150 classes that rivals the encoder's activations.
    """
    from ..engine.losses import pixel_cross_entropy

    logits, aux = model(x, with_aux=True)
    target = torch.zeros(x.shape[0], *x.shape[-2:], dtype=torch.long, device=x.device)  # any labels will do
    loss = pixel_cross_entropy(logits, target, check=False)
    return loss + sum(0.4 * pixel_cross_entropy(a, target, check=False) for a in aux)


def estimate_training_memory(model: nn.Module | Callable[[], nn.Module], input_shape: Sequence[int],
                             amp: str | None = None, checkpointing: bool = False, optimizer_states: int = 1,
                             forward_fn: Callable | None = None) -> MemoryEstimate:
    """Estimate the training memory of ``model`` for a batch of ``input_shape`` (nothing is allocated).

    Args:
        model: a module (copied) or a zero-argument factory (``lambda: build_setr("pup", "large")``, built on meta).
        input_shape: ``(B, 3, H, W)``.
        amp: ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast. Weights, grads and optimizer state stay fp32.
        checkpointing: estimate with activation checkpointing of the encoder's blocks.
        optimizer_states: fp32 tensors per parameter kept by the optimizer (SGD+momentum 1, AdamW 2).
        forward_fn: what a training step runs before ``backward``: default :func:`setr_training_forward` for a
            SETR (logits, auxiliary logits and the loss), ``m(x)`` otherwise.
    """
    both = estimate_training_memory_both(model, input_shape, amp, optimizer_states, forward_fn)
    return both[bool(checkpointing)]


def estimate_training_memory_both(model: nn.Module | Callable[[], nn.Module], input_shape: Sequence[int],
                                  amp: str | None = None, optimizer_states: int = 1,
                                  forward_fn: Callable | None = None) -> dict[bool, MemoryEstimate]:
    """:func:`estimate_training_memory` without (``[False]``) and with (``[True]``) checkpointing, in one pass."""
    if amp not in (None, *AMP_DTYPES):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    meta = copy.deepcopy(_as_meta_model(model))  # converted to fake tensors below: never touch the caller's
    if forward_fn is None:
        forward_fn = setr_training_forward if hasattr(meta, "decode_head") else (lambda m, inp: m(inp))
    n_params = sum(p.numel() for p in meta.parameters())
    n_trainable = sum(p.numel() for p in meta.parameters() if p.requires_grad)
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake = meta.to_empty(device="cpu").train()
        enc, blocks = _encoder_blocks(fake)
        if enc is not None:
            enc.grad_checkpointing = False  # measure everything once; checkpointing is derived below
        saved = saved_activation_bytes(fake, torch.empty(*input_shape), amp, forward_fn)
    fixed = dict(params=4 * n_params, grads=4 * n_trainable, optimizer=4 * optimizer_states * n_trainable,
                 batch_size=int(input_shape[0]))
    with_ckpt = saved["total"]
    if blocks:  # keep only the blocks' inputs; recompute one block at a time in the backward pass
        with_ckpt += saved["block_inputs"] - saved["blocks"] + saved["blocks"] // len(blocks)
    return {False: MemoryEstimate(activations=saved["total"], **fixed),
            True: MemoryEstimate(activations=with_ckpt, **fixed)}
