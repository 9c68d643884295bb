"""Give a student's module the reference's weights, layer by layer, by *meaning*, and find where they diverge.

:func:`align` copies a reference module's weights into the student's: a student layer (any sub-module that owns
weights) takes the weights of the reference layer that receives the same input (found with forward hooks and
propagated pass by pass), so layers may be named, grouped and registered in any order. Layers that cannot be told
apart that way fall back to their order within each kind (same parameter names and sizes), and the result says
so. :func:`first_divergence` then says, in the reference's execution order, up to which layer the student's
computation reproduces the reference's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .compare import close, to_device


def forward_on(*args) -> Callable[[nn.Module], object]:
    """The ``run`` of :func:`align`: ``module(*args)`` with the tensors moved to the module's device."""
    return lambda m: m(*to_device(args, next(m.parameters()).device))


def units(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The sub-modules that own weights themselves (Linear, Conv2d, norms...), in registration order."""
    return [(n, m) for n, m in module.named_modules()
            if any(True for _ in m.parameters(recurse=False)) or _own_buffers(m)]


def _own_buffers(m: nn.Module) -> dict:
    return {k: b for k, b in m.named_buffers(recurse=False) if b.is_floating_point()}


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(m.named_parameters(recurse=False)), **_own_buffers(m)}


def signature(m: nn.Module) -> tuple:
    """What a layer holds, independent of layout: ``(("bias", 16), ("weight", 4608))``."""
    return tuple(sorted((k, t.numel()) for k, t in _state(m).items()))


def describe_unit(path: str, m: nn.Module) -> str:
    shapes = ", ".join(f"{k} {tuple(t.shape)}" for k, t in _state(m).items())
    return f"`{path}` ({type(m).__name__}: {shapes})"


def describe_params(module: nn.Module) -> str:
    """``"qkv.weight (72, 24), qkv.bias (72,), ..."``: what a module holds, for messages."""
    return ", ".join(f"{k} {tuple(t.shape)}" for k, t in module.state_dict().items()
                     if not k.endswith("num_batches_tracked"))


def _fingerprint(t) -> torch.Tensor | None:
    """A layer's input, independent of its layout (sorted values): a (B, h, w, D) view matches (B, D, h, w)."""
    return t.detach().cpu().double().flatten().sort().values if isinstance(t, torch.Tensor) else None


def record_inputs(module: nn.Module, run: Callable[[nn.Module], object]) -> tuple[dict, list[str]]:
    """``({unit path: fingerprint of its first input}, unit paths in the order they were first called)``."""
    seen, order, handles = {}, [], []
    for path, m in units(module):
        def hook(_, args, path=path):
            if path not in seen and args:
                seen[path] = _fingerprint(args[0])
                order.append(path)
        handles.append(m.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            run(module)
    finally:
        for h in handles:
            h.remove()
    return seen, order


def same_input(a, b) -> bool:
    return a is not None and b is not None and a.shape == b.shape and close(a, b, 1e-5)


@dataclass
class Alignment:
    """How the student's layers were matched to the reference's (``pairs``: student path -> reference path)."""

    ok: bool = True
    pairs: dict[str, str] = field(default_factory=dict)
    by: dict[str, str] = field(default_factory=dict)  # student path -> "name" | "input" | "order"
    missing: list[str] = field(default_factory=list)  # reference layers nothing was matched to
    extra: list[str] = field(default_factory=list)  # student layers that match no reference layer
    ambiguous: list[list[str]] = field(default_factory=list)  # groups of student layers placed by order only

    def messages(self) -> list[str]:
        return ([f"your module has no layer for the reference's {', '.join(self.missing)}"] if self.missing else []) \
            + ([f"layers that match none of the assignment's: {', '.join(self.extra)}"] if self.extra else [])

    def ambiguity(self) -> str:
        """One sentence naming the layers whose role could only be guessed from their definition order."""
        if not self.ambiguous:
            return ""
        flat = [f"`{s}`" for grp in self.ambiguous for s in grp]
        names = ", ".join(flat[:8]) + (f" and {len(flat) - 8} more" if len(flat) > 8 else "")
        return (f"note: the grader could not tell from what they compute which of your layers is which among "
                f"{names}; it assumed the order in which they are defined (the table's order)")


def _copy(s: nn.Module, r: nn.Module) -> None:
    rs = _state(r)
    with torch.no_grad():
        for k, t in _state(s).items():
            t.copy_(rs[k].reshape(t.shape).to(t.device))


def align(student: nn.Module, reference: nn.Module, run: Callable[[nn.Module], object] | None = None) -> Alignment:
    """Copy ``reference``'s weights into ``student`` layer by layer (see the module docstring) and say how.

    ``run(module)`` runs a forward pass on the grader's input; without it (or for layers it cannot place) the
    layers are matched by their order within each kind (same parameter names and sizes).
    """
    res = Alignment()
    s_units, r_units = dict(units(student)), dict(units(reference))
    s_sd, r_sd = student.state_dict(), reference.state_dict()
    if all(k in r_sd and r_sd[k].shape == t.shape for k, t in s_sd.items()) and s_units.keys() <= r_units.keys():
        for p in s_units:  # the assignment's own names: nothing to guess
            _copy(s_units[p], r_units[p])
            res.pairs[p], res.by[p] = p, "name"
    elif run is not None:
        r_in, _ = record_inputs(reference, run)
        while True:  # each pass places the layers whose input now equals a reference layer's input
            try:
                s_in, _ = record_inputs(student, run)
            except Exception:
                break
            free = [r for r in r_units if r not in res.pairs.values()]
            placed = 0
            for s, fp in s_in.items():
                if s in res.pairs:
                    continue
                cands = [r for r in free
                         if signature(r_units[r]) == signature(s_units[s]) and same_input(fp, r_in.get(r))]
                if len(cands) == 1:
                    _copy(s_units[s], r_units[cands[0]])
                    res.pairs[s], res.by[s] = cands[0], "input"
                    free.remove(cands[0])
                    placed += 1
            if not placed:
                break
    # what is left: the i-th remaining student layer of each kind takes the i-th remaining reference layer
    groups: dict[tuple, list[list[str]]] = {}
    for side, us in enumerate((r_units, s_units)):
        done = set(res.pairs.values()) if side == 0 else set(res.pairs)
        for p, m in us.items():
            if p not in done:
                groups.setdefault(signature(m), [[], []])[side].append(p)
    for rs, ss in groups.values():
        for r, s in zip(rs, ss):
            _copy(s_units[s], r_units[r])
            res.pairs[s], res.by[s] = r, "order"
        res.missing += rs[len(ss):]
        res.extra += [describe_unit(s, s_units[s]) for s in ss[len(rs):]]
        if min(len(rs), len(ss)) > 1 and run is not None:
            res.ambiguous.append(ss[:len(rs)])
    res.ok = not res.extra
    return res


def first_divergence(student: nn.Module, reference: nn.Module, alignment: Alignment,
                     run: Callable[[nn.Module], object]) -> tuple[str | None, str | None, str]:
    """Stage by stage: ``(last reference layer whose input the student reproduces, first one it does not, why)``
    in the reference's execution order, ``why`` being "missing" (no student layer), "unused" (never called) or
    "input"; ``(last, None, "")`` if every layer's input matches."""
    r_in, r_order = record_inputs(reference, run)
    try:
        s_in, _ = record_inputs(student, run)
    except Exception:
        return None, None, ""
    back = {r: s for s, r in alignment.pairs.items()}
    last = None
    for r in r_order:
        s = back.get(r)
        why = "missing" if s is None else "unused" if s not in s_in else \
            "" if same_input(s_in[s], r_in[r]) else "input"
        if why:
            return last, r, why
        last = r
    return last, None, ""
