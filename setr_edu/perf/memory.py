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
#: GiB taken by the CUDA context and the cuBLAS/cuDNN workspaces (0.3-0.6 GiB on current drivers; unverified).
CUDA_CONTEXT_GIB = 0.5
#: The caching allocator's rounding and fragmentation, as a fraction of the tensors' peak (an assumption).
ALLOCATOR_HEADROOM = 0.10
#: What ``torch.cuda.get_device_properties(0).total_memory`` reports, in GiB, by GPU (datasheet GB less ECC and
#: reserved memory; approximate, unverified).
GPU_MEMORY_GIB = {"T4 16 GB": 14.7, "V100 16 GB": 15.8, "L4 24 GB": 22.0, "A100 40 GB": 39.4, "A100 80 GB": 79.1}


@dataclass
class MemoryEstimate:
    """Bytes of training memory (whole micro-batch) and the peak of one step.

    ``params``, ``grads``, ``optimizer``: fp32 tensors per parameter. ``activations``: what autograd saves for
    backward (with checkpointing: only the blocks' inputs). ``transient``: what lives only around the start of the
    backward pass: the logits the step still holds and the first gradients (of the ``(B, K, H, W)`` fp32
    log-probabilities and of their input). ``last_block``: the saved activations of one transformer block, alive
    (recomputed, with checkpointing) while the last gradients are computed. ``grads_held``: gradients of earlier
    micro-batches are alive during the forward (gradient accumulation).

    ``total`` is the peak, the number to compare with ``torch.cuda.max_memory_allocated``: weights + optimizer
    state + the larger of **backward start** (activations + transient, + grads when held) and **backward end**
    (every gradient + one block's activations). ``at_peak()`` gives the parts of that moment.
    """

    params: int
    grads: int
    optimizer: int
    activations: int
    batch_size: int
    transient: int = 0
    last_block: int = 0
    grads_held: bool = False

    @property
    def backward_start(self) -> int:
        return self.activations + self.transient + (self.grads if self.grads_held else 0)

    @property
    def backward_end(self) -> int:
        return self.grads + self.last_block

    @property
    def peak_at(self) -> str:
        return "backward start" if self.backward_start >= self.backward_end else "backward end"

    @property
    def total(self) -> int:
        return self.params + self.optimizer + max(self.backward_start, self.backward_end)

    def at_peak(self) -> dict[str, int]:
        """The bytes alive at the peak, by kind (they add up to ``total``)."""
        if self.peak_at == "backward end":
            return dict(params=self.params, optimizer=self.optimizer, grads=self.grads, activations=self.last_block,
                        transient=0)
        return dict(params=self.params, optimizer=self.optimizer, grads=self.grads if self.grads_held else 0,
                    activations=self.activations, transient=self.transient)

    def as_gib(self) -> dict[str, float]:
        keys = ("params", "grads", "optimizer", "activations", "transient", "last_block", "total")
        return {k: round(getattr(self, k) / GiB, 3) for k in keys}


def fits(estimate: "MemoryEstimate | int", gpu_gib: float, context_gib: float = CUDA_CONTEXT_GIB,
         headroom: float = ALLOCATOR_HEADROOM) -> bool:
    """Whether a training step of ``estimate`` fits a GPU of ``gpu_gib`` GiB (``torch.cuda.mem_get_info`` total).

    The estimate is what tensors need (``max_memory_allocated``). The GPU also holds the CUDA context (kernels,
    cuBLAS/cuDNN handles: ``CUDA_CONTEXT_GIB``) and the caching allocator rounds and fragments blocks
    (``ALLOCATOR_HEADROOM``, a fraction of the tensors' peak). What each GPU offers: ``GPU_MEMORY_GIB``
    (a 16 GB T4 shows about 14.7 GiB).
    """
    need = estimate.total if isinstance(estimate, MemoryEstimate) else int(estimate)
    return need * (1 + headroom) / GiB + context_gib <= gpu_gib


def _encoder_blocks(model: nn.Module) -> tuple[nn.Module | None, list[nn.Module]]:
    """The ViTEncoder inside ``model`` (or ``model`` itself) and its blocks; ``(None, [])`` for other models."""
    enc = getattr(model, "encoder", model)
    blocks = list(getattr(enc, "blocks", []))
    return (enc if blocks else None), blocks


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, amp: str | None = None,
                           forward_fn: Callable | None = None) -> dict[str, int]:
    """Run ``forward_fn(model, x)`` once (train mode) and measure what autograd keeps for backward.

    Returns bytes: ``total`` (all saved storages, parameters excluded), ``blocks`` (the part saved inside the
    encoder's transformer blocks), ``block_inputs`` (the blocks' input token tensors), ``largest`` (the largest
    saved storage) and ``outputs`` (storages of the tensors ``forward_fn`` returns that autograd did not save:
    what the training step keeps alive through backward, e.g. the logits). Works on real or fake tensors;
    :func:`estimate_training_memory` calls it on fake ones.
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
    kept = {}
    for t in _tensors(out):
        st = t.untyped_storage()
        if st._cdata not in seen and st._cdata not in param_storages:
            kept[st._cdata] = st.nbytes()
    del out
    return dict(total=sum(seen.values()), blocks=sum(in_block.values()), block_inputs=sum(inputs.values()),
                largest=max(seen.values(), default=0), outputs=sum(kept.values()))


def _tensors(out) -> list[torch.Tensor]:
    """Every tensor in a nest of tuples, lists and dicts."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def setr_training_forward(model: nn.Module, x: torch.Tensor) -> tuple:
    """The forward half of a SETR training step as the Trainer runs it: main and auxiliary logits, then SETR's
    loss (CE + 0.4 x each aux) on fp32 copies of them. Returns ``(loss, logits, aux_logits)``: the step holds all
    three until ``backward`` is done.

    The loss matters for memory: each head's cross-entropy keeps its log-probabilities, ``(B, K, H, W)`` in fp32
    at the *input* resolution, for the backward pass; with 150 classes that rivals the encoder's activations.
    """
    from ..engine.losses import pixel_cross_entropy

    logits, aux = model(x, with_aux=True)
    target = torch.zeros(x.shape[0], *x.shape[-2:], dtype=torch.long, device=x.device)  # any labels will do
    loss = pixel_cross_entropy(logits.float(), target, check=False)
    loss = loss + sum(0.4 * pixel_cross_entropy(a.float(), target, check=False) for a in aux)
    return loss, logits, aux


def estimate_training_memory(model: nn.Module | Callable[[], nn.Module], input_shape: Sequence[int],
                             amp: str | None = None, checkpointing: bool = False, optimizer_states: int = 1,
                             forward_fn: Callable | None = None, grad_accum_steps: int = 1) -> MemoryEstimate:
    """Estimate the peak training memory of ``model`` for a batch of ``input_shape`` (nothing is allocated).

    Args:
        model: a module (copied) or a zero-argument factory (``lambda: build_setr("pup", "large")``, built on meta).
        input_shape: ``(B, 3, H, W)``, the micro-batch that runs forward and backward at once.
        amp: ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast. Weights, grads and optimizer state stay fp32.
        checkpointing: estimate with activation checkpointing of the encoder's blocks.
        optimizer_states: fp32 tensors per parameter kept by the optimizer (SGD+momentum 1, AdamW 2).
        forward_fn: what a training step runs before ``backward``, returning what it holds until then:
            default :func:`setr_training_forward` for a SETR, ``m(x)`` otherwise.
        grad_accum_steps: > 1 when gradients accumulate over micro-batches: the second micro-batch's forward
            then runs while the first one's gradients are held.

    The peak (``total``) is the larger of two moments of a step (both after the first step, when the optimizer
    state exists and ``zero_grad(set_to_none=True)`` has freed the gradients):

    * **backward start**: weights + optimizer state + every saved activation + the logits still held + the first
      gradients (``2 x`` the largest saved tensor: the gradient of the fp32 log-probabilities and of their input);
      + the gradients when accumulating;
    * **backward end**: weights + optimizer state + every gradient + the activations of the one block whose
      backward runs last (with checkpointing: recomputed).

    Checked against PyTorch's own tracker of a whole step (:func:`tracked_training_peak`) in
    ``tests/test_memory.py`` and ``benchmarks/memory_grid.py``: within 10% on the book's configurations.
    """
    both = estimate_training_memory_both(model, input_shape, amp, optimizer_states, forward_fn, grad_accum_steps)
    return both[bool(checkpointing)]


def estimate_training_memory_both(model: nn.Module | Callable[[], nn.Module], input_shape: Sequence[int],
                                  amp: str | None = None, optimizer_states: int = 1,
                                  forward_fn: Callable | None = None,
                                  grad_accum_steps: int = 1) -> dict[bool, MemoryEstimate]:
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
    P, G, O = 4 * n_params, 4 * n_trainable, 4 * optimizer_states * n_trainable
    one_block = saved["blocks"] // len(blocks) if blocks else 0
    fixed = dict(params=P, grads=G, optimizer=O, batch_size=int(input_shape[0]), last_block=one_block,
                 transient=saved["outputs"] + 2 * saved["largest"], grads_held=grad_accum_steps > 1)
    out = {}
    for ckpt in (False, True):
        acts = saved["total"]
        if ckpt and blocks:  # only the blocks' inputs are kept; one block at a time is recomputed in backward
            acts += saved["block_inputs"] - saved["blocks"]
        out[ckpt] = MemoryEstimate(activations=acts, **fixed)
    return out


def tracked_training_peak(model: Callable[[], nn.Module], input_shape: Sequence[int], amp: str | None = None,
                          checkpointing: bool = False, num_classes: int = 150, grad_accum_steps: int = 1) -> dict:
    """The peak memory of a real SETR training step, tracked by PyTorch itself on fake tensors (CPU, no data).

    Runs what :class:`setr_edu.engine.trainer.Trainer` runs: ``grad_accum_steps`` micro-batches of forward under
    autocast with the auxiliary heads, the loss on fp32 logits, backward; then an SGD-momentum step and
    ``zero_grad(set_to_none=True)``. Two steps (the momentum buffers exist in the second); the peak of both.
    ``torch.distributed._tools.mem_tracker.MemTracker`` counts every storage alive at each moment, rounded
    as the CUDA caching allocator rounds (512 bytes). Returns bytes: ``peak`` and its parts by kind
    (``Parameter``, ``Gradient``, ``Activation``, ``Temp``, ``Optstate``).

    Independent of :func:`estimate_training_memory` (which measures only what autograd saves, then adds up the
    phases); slow: ~30-150 s for T-Large at 512 on 2 CPU cores.
    """
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError as e:  # an old PyTorch, or one built without torch.distributed
        raise RuntimeError(f"tracked_training_peak needs torch.distributed._tools.mem_tracker ({e})") from None
    from ..engine.losses import pixel_cross_entropy

    meta = _as_meta_model(model)
    B, _, H, W = input_shape
    micro = [torch.Size(input_shape)] * grad_accum_steps
    with FakeTensorMode(allow_non_fake_inputs=True):
        net = meta.to_empty(device="cpu").train()
        net.encoder.grad_checkpointing = checkpointing
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, foreach=False)
        tracker = MemTracker()
        tracker.track_external(net, opt)
        with tracker:
            for step in range(2):
                for shape in micro:
                    tracker.reset_mod_stats()  # per-module stats only; the overall peak is kept
                    x, y = torch.randn(shape), torch.randint(0, num_classes, (B, H, W))
                    with torch.autocast("cpu", dtype=AMP_DTYPES.get(amp, torch.bfloat16), enabled=amp is not None):
                        logits, aux = net(x, with_aux=True)
                    loss = pixel_cross_entropy(logits.float(), y, check=False)
                    loss = loss + sum(0.4 * pixel_cross_entropy(a.float(), y, check=False) for a in aux)
                    (loss / grad_accum_steps).backward()
                    del x, y, logits, aux, loss
                opt.step()
                opt.zero_grad(set_to_none=True)
        snap = tracker.get_tracker_snapshot("peak")
    parts: dict = {}
    for per_device in snap.values():
        for k, v in per_device.items():
            key = getattr(k, "value", k)
            parts[key] = parts.get(key, 0) + v
    return dict(peak=parts.pop("Total"), **parts)
