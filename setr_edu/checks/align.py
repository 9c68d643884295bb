"""Give a student's module the reference's weights, layer by layer, by *what each layer computes*, and find where
they diverge.

:func:`align` copies a reference module's weights into the student's. A *layer* is a sub-module that owns
parameters itself (Linear, Conv2d, a norm, a hand-written LayerNorm...); parameter-free modules (activations,
containers) and modules that only hold buffers (a registered attention scale) are never layers. Names play no
part: a student layer takes the weights of the reference layer that receives the same input (found with forward
hooks and propagated pass by pass) and holds tensors of the same sizes, so layers may be named, grouped and
registered in any order. Inside a layer, tensors of the same size (a LayerNorm's ``weight``/``bias``, or
``gamma``/``beta``, or ``g``/``b``; BatchNorm's running mean and variance) get their roles from what the layer
computes: the assignment whose output on the recorded input comes closest to the reference layer's. Layers that
cannot be told apart by their input fall back to their order within each kind (same parameter sizes), and the
result says so. :func:`first_divergence` then says, in the reference's execution order, up to which layer the
student's computation reproduces the reference's; :func:`config_differences` names settings (eps, padding,
stride...) in which a matched layer differs from its reference.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .compare import close, rel_diff, to_device


def forward_on(*args) -> Callable[[nn.Module], object]:
    """The ``run`` of :func:`align`: ``module(*args)`` with the tensors moved to the module's device."""
    return lambda m: m(*to_device(args, next(m.parameters()).device))


def units(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The sub-modules that own parameters themselves (Linear, Conv2d, norms...), in registration order."""
    return [(n, m) for n, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]


def _params(m: nn.Module) -> dict[str, torch.Tensor]:
    return dict(m.named_parameters(recurse=False))


def _buffers(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: b for k, b in m.named_buffers(recurse=False) if b.is_floating_point()}


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {**_params(m), **_buffers(m)}


def signature(m: nn.Module) -> tuple:
    """What a layer holds, independent of names and layout: the sorted sizes of its parameters, ``(16, 4608)``."""
    return tuple(sorted(t.numel() for t in _params(m).values()))


def _shapes(m: nn.Module) -> str:
    return ", ".join(f"{k} {tuple(t.shape)}" for k, t in _params(m).items())


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


def record_inputs(module: nn.Module, run: Callable[[nn.Module], object],
                  keep: dict | None = None) -> tuple[dict, list[str]]:
    """``({unit path: fingerprint of its first input}, unit paths in the order they were first called)``;
    ``keep``, if given, receives ``{unit path: (its positional inputs, its output)}`` of that first call."""
    seen, order, handles = {}, [], []
    for path, m in units(module):
        def hook(_, args, path=path):
            if path not in seen and args:
                seen[path] = _fingerprint(args[0])
                order.append(path)
                if keep is not None:
                    keep[path] = [tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args),
                                  None]

        def out_hook(_, args, out, path=path):
            if keep is not None and path in keep and keep[path][1] is None and isinstance(out, torch.Tensor):
                keep[path][1] = out.detach().clone()
        handles += [m.register_forward_pre_hook(hook), m.register_forward_hook(out_hook)]
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
    by: dict[str, str] = field(default_factory=dict)  # student path -> "input" | "order"
    missing: list[str] = field(default_factory=list)  # reference layers nothing was matched to
    extra: list[str] = field(default_factory=list)  # student layers that match no reference layer
    ambiguous: list[list[str]] = field(default_factory=list)  # groups of student layers placed by order only
    # (student path, reference path, student shapes, reference shapes): a layer of the right kind and wrong size
    misfits: list[tuple[str, str, str, str]] = field(default_factory=list)

    def messages(self, name: Callable[[str], str] | None = None) -> list[str]:
        """Plain-words problems; ``name(reference path)`` says what a reference layer is (default: its path)."""
        name = name or (lambda r: f"the reference's `{r}`")
        out = [f"your `{s}` stands where the assignment has {name(r)}, but holds {mine} instead of {want}: check its "
               "kernel size, channels and bias" for s, r, mine, want in self.misfits]
        fitted = {r for _, r, _, _ in self.misfits}
        missing = [name(r) for r in self.missing if r not in fitted]
        extra = [e for e in self.extra if not any(e.startswith(f"`{s}`") for s, _, _, _ in self.misfits)]
        return out + ([f"your module has no layer for {', '.join(missing)}"] if missing else []) \
            + ([f"layers that match none of the assignment's: {', '.join(extra)}"] if extra else [])

    def ambiguity(self) -> str:
        """One sentence naming the layers whose role could only be guessed from their definition order."""
        if not self.ambiguous:
            return ""
        flat = [f"`{s}`" for grp in self.ambiguous for s in grp]
        names = ", ".join(flat[:8]) + (f" and {len(flat) - 8} more" if len(flat) > 8 else "")
        return (f"note: the grader could not tell from what they compute which of your layers is which among "
                f"{names}; it assumed the order in which they are defined (the table's order)")


def _groups(tensors: dict[str, torch.Tensor]) -> dict[int, list[str]]:
    """Tensor names by size, in registration order."""
    out: dict[int, list[str]] = {}
    for k, t in tensors.items():
        out.setdefault(t.numel(), []).append(k)
    return out


def _roles(s: nn.Module, r: nn.Module, s_call=None, r_out=None) -> dict[str, str]:
    """Which reference tensor each student tensor of a matched layer stands for (parameters with parameters,
    float buffers with buffers). Tensors of a unique size pair up directly; for tensors of the same size, every
    assignment is tried on the layer's recorded input ``s_call`` and the one whose output comes closest to the
    reference layer's ``r_out`` wins (registration order if nothing can be run)."""
    options = []  # per (kind, size): the possible {student name: reference name} pairings
    for get in (_params, _buffers):
        sg, rg = _groups(get(s)), _groups(get(r))
        for size, names in sg.items():
            refs = rg.get(size, [])[: len(names)]
            names = names[: len(refs)]
            options.append([dict(zip(names, perm)) for perm in itertools.permutations(refs)] or [{}])
    choices = [dict(itertools.chain.from_iterable(d.items() for d in combo))
               for combo in itertools.product(*options)]
    if len(choices) == 1 or s_call is None or r_out is None:
        return choices[0]
    rs, ss, fp = _state(r), _state(s), _fingerprint(r_out)
    saved = {k: t.detach().clone() for k, t in ss.items()}
    best, best_d = choices[0], float("inf")
    for roles in choices:
        try:
            _copy(s, r, roles)
            with torch.no_grad():
                out = s(*to_device(s_call, next(iter(ss.values())).device))
            d = rel_diff(_fingerprint(out), fp) if _fingerprint(out) is not None and \
                _fingerprint(out).shape == fp.shape else float("inf")
        except Exception:  # an assignment the layer cannot run with (e.g. a negative variance): not this one
            d = float("inf")
        if d < best_d:
            best, best_d = roles, d
    with torch.no_grad():
        for k, t in ss.items():
            t.copy_(saved[k])
    return best


def _copy(s: nn.Module, r: nn.Module, roles: dict[str, str] | None = None) -> None:
    rs, ss = _state(r), _state(s)
    roles = _roles(s, r) if roles is None else roles
    with torch.no_grad():
        for k, rk in roles.items():
            t = ss[k]
            if rs[rk].numel() == t.numel():
                t.copy_(rs[rk].reshape(t.shape).to(t.device, t.dtype))


def align(student: nn.Module, reference: nn.Module, run: Callable[[nn.Module], object] | None = None) -> Alignment:
    """Copy ``reference``'s weights into ``student`` layer by layer (see the module docstring) and say how.

    ``run(module)`` runs a forward pass on the grader's input; without it (or for layers it cannot place) the
    layers are matched by their order within each kind (same parameter sizes). Names are never compared.
    """
    res = Alignment()
    s_units, r_units = dict(units(student)), dict(units(reference))
    if run is not None:
        r_keep: dict = {}
        r_in, _ = record_inputs(reference, run, r_keep)
        while True:  # each pass places the layers whose input now equals a reference layer's input
            s_keep: dict = {}
            try:
                s_in, _ = record_inputs(student, run, s_keep)
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
                    r = cands[0]
                    roles = _roles(s_units[s], r_units[r], s_keep[s][0], r_keep.get(r, [None, None])[1])
                    _copy(s_units[s], r_units[r], roles)
                    res.pairs[s], res.by[s] = r, "input"
                    free.remove(r)
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
    left = [s for s in s_units if s not in res.pairs]  # a layer of the right kind and the wrong size: say so
    for r in res.missing:
        s = next((s for s in left if type(s_units[s]) is type(r_units[r])), None)
        if s is not None:
            left.remove(s)
            res.misfits.append((s, r, _shapes(s_units[s]), _shapes(r_units[r])))
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


SETTINGS = ("eps", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode", "normalized_shape")


def _setting(m: nn.Module, name: str):
    v = getattr(m, name, None)
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return v
    if isinstance(v, tuple) and all(isinstance(e, (int, float)) for e in v):
        return v[0] if len(set(v)) == 1 and name not in ("normalized_shape",) else v
    return None


def _fmt(v) -> str:
    """``1e-05`` -> ``1e-5``, ``0.001`` -> ``1e-3``; anything else as Python writes it."""
    if isinstance(v, float) and 0 < abs(v) < 0.01:
        m, e = f"{v:.0e}".split("e")
        return f"{m}e{int(e)}" if float(f"{m}e{e}") == v else repr(v)
    return str(v)


def config_differences(student: nn.Module, alignment: Alignment, reference: nn.Module) -> list[str]:
    """One sentence per matched layer whose settings (eps, kernel size, stride, padding...) differ from its
    reference layer's, e.g. "your `bns.0` (BatchNorm2d) has eps=0.001; the reference's has eps=1e-05"."""
    s_units, r_units = dict(units(student)), dict(units(reference))
    out = []
    for s, r in alignment.pairs.items():
        sm, rm = s_units[s], r_units[r]
        diffs = []
        for name in SETTINGS:
            a, b = _setting(sm, name), _setting(rm, name)
            if a is not None and b is not None and a != b:
                diffs.append((name, a, b))
        if diffs:
            mine = ", ".join(f"{n}={_fmt(a)}" for n, a, _ in diffs)
            want = ", ".join(f"{n}={_fmt(b)}" for n, _, b in diffs)
            out.append(f"your `{s}` ({type(sm).__name__}) has {mine}; the assignment's layer has {want}")
    return out
