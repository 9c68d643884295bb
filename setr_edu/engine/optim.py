"""The paper's optimiser and learning-rate schedule (paper §4 "Implementation details"; fudan-zvg/SETR ``configs/SETR/*.py``: ``optimizer``, ``lr_config``).

(AdamW is offered too, for training a ViT from scratch, which SGD does badly; see ``build_optimizer``.)

* **SGD**, momentum 0.9, **weight decay 0** (the official configs override the schedule file's 5e-4).
* **Head learning-rate multiplier**: every parameter whose *name* contains ``"head"`` trains at 10x the base
  learning rate. The official code does this with mmcv's ``paramwise_cfg=dict(custom_keys={'head':
  dict(lr_mult=10.)})``, a substring match, so ``decode_head.*`` and ``auxiliary_heads.*`` get 10x while the
  encoder *and SETR-MLA's neck* (``neck.*``) stay at 1x.
* **Poly schedule**, per parameter group ``g`` with start learning rate ``lr_g`` (base x multiplier)::

      lr_g(it) = (lr_g - min_lr) * (1 - it / max_iters) ** 0.9 + min_lr

  This is mmcv's ``PolyLrUpdaterHook``: ``min_lr`` is an **absolute** floor shared by every group, *not* scaled by
  the group's multiplier. With the paper's base lr 1e-3 and ``min_lr=1e-4`` the encoder therefore ends at 10% of
  its start and the heads (1e-2 at the start) at 1%.
* **Optional linear warm-up** (not used by the paper), mmcv's ``warmup='linear'`` semantics: during the first
  ``warmup_iters`` iterations the poly learning rate is multiplied by ``1 - (1 - it / warmup_iters) * (1 -
  warmup_ratio)``, rising linearly from ``warmup_ratio`` x to 1x.

    >>> import torch
    >>> poly_lr(0.01, 0, 100, min_lr=1e-4), round(poly_lr(0.01, 100, 100, min_lr=1e-4), 6)
    (0.01, 0.0001)
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

HEAD_KEY = "head"  # the official ``custom_keys`` substring


def param_groups(model: nn.Module, lr: float, head_lr_mult: float = 10.0, weight_decay: float = 0.0,
                 head_key: str = HEAD_KEY) -> list[dict]:
    """Split ``model``'s trainable parameters into a 1x group and a ``head_lr_mult`` x group.

    A parameter joins the head group when ``head_key`` is a substring of its name (``decode_head.cls.weight``,
    ``auxiliary_heads.0.norm.bias``; never ``neck.*`` or ``encoder.*``). Each group records ``lr_mult`` and
    ``initial_lr`` so a schedule can recompute its learning rate from the iteration alone.
    Empty groups are dropped (a model without heads gets one group).
    """
    base, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if head_key in name else base).append(p)
    groups = [dict(params=base, lr_mult=1.0, name="base"), dict(params=head, lr_mult=float(head_lr_mult), name=head_key)]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    for g in groups:
        g["lr"] = g["initial_lr"] = lr * g["lr_mult"]
        g["weight_decay"] = weight_decay
    return groups


def _fast_impl(groups: Iterable[dict], name: str = "sgd") -> dict:
    """``fused=True`` where PyTorch has a fused kernel for these tensors, else ``foreach=True``."""
    devices = {p.device.type for g in groups for p in g["params"]}
    fused_ok = devices <= {"cuda", "cpu"} and (devices != {"cpu"} or _cpu_fused(name))
    return dict(fused=True) if fused_ok else dict(foreach=True)


def _cpu_fused(name: str) -> bool:
    try:  # fused SGD/AdamW on CPU appeared in PyTorch 2.4; probe once instead of parsing version strings
        p = nn.Parameter(torch.zeros(1))
        p.grad = torch.zeros(1)
        (torch.optim.SGD([p], lr=0.1, fused=True) if name == "sgd" else torch.optim.AdamW([p], fused=True)).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def build_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                    head_lr_mult: float = 10.0, impl: str = "auto", name: str = "sgd") -> torch.optim.Optimizer:
    """SGD (the paper's) or AdamW with the two parameter groups of ``param_groups``.

    ``name="sgd"``: momentum ``momentum``, the paper's optimiser for *fine-tuning* an ImageNet-pretrained ViT.
    ``name="adamw"``: betas (``momentum``, 0.999); what a ViT trained *from scratch* needs (our synthetic
    recipes: with SGD a from-scratch SETR stays stuck at the local-CNN solution for hundreds of iterations).
    ``impl``: ``"auto"`` (fused kernel where available, else the multi-tensor ``foreach`` path), ``"fused"``,
    ``"foreach"`` or ``"loop"`` (the plain per-parameter reference implementation). All give the same update up
    to floating-point rounding.
    """
    groups = param_groups(model, lr, head_lr_mult, weight_decay)
    kw = {"auto": None, "fused": dict(fused=True), "foreach": dict(foreach=True), "loop": dict(foreach=False)}
    if impl not in kw:
        raise ValueError(f"impl must be one of {sorted(kw)}, got {impl!r}")
    fast = kw[impl] if kw[impl] is not None else _fast_impl(groups, name)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, **fast)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay, **fast)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


def poly_lr(initial_lr: float, it: int, max_iters: int, power: float = 0.9, min_lr: float = 1e-4,
            warmup_iters: int = 0, warmup_ratio: float = 1e-6) -> float:
    """The learning rate at iteration ``it`` (0-based, ``0 <= it <= max_iters``) for a group starting at ``initial_lr``."""
    if max_iters <= 0:
        raise ValueError(f"max_iters must be positive, got {max_iters}")
    progress = min(max(it, 0), max_iters) / max_iters
    lr = (initial_lr - min_lr) * (1 - progress) ** power + min_lr
    if warmup_iters > 0 and it < warmup_iters:
        lr *= 1 - (1 - it / warmup_iters) * (1 - warmup_ratio)
    return lr


class PolySchedule:
    """Sets every group's learning rate from the iteration number alone (so resuming needs no scheduler state).

    ``schedule.step(it)`` -> the learning rates it set, one per group (the first is the base/encoder lr).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_iters: int, power: float = 0.9, min_lr: float = 1e-4,
                 warmup_iters: int = 0, warmup_ratio: float = 1e-6):
        self.optimizer, self.max_iters, self.power, self.min_lr = optimizer, max_iters, power, min_lr
        self.warmup_iters, self.warmup_ratio = warmup_iters, warmup_ratio
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])

    def lr_at(self, it: int, initial_lr: float) -> float:
        return poly_lr(initial_lr, it, self.max_iters, self.power, self.min_lr, self.warmup_iters, self.warmup_ratio)

    def step(self, it: int) -> list[float]:
        lrs = []
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(it, g["initial_lr"])
            lrs.append(g["lr"])
        return lrs
