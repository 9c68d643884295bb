"""The tools every grader shares: compare tensors, name the likely bug, and call the student's code safely.

**Tolerance.** :data:`TOL` is relative to the largest entry of the reference. It comes from what *valid* float32
implementations differ by on the graders' inputs (einsum, unfold, per-head loops, a hand-written softmax or
LayerNorm, NumPy, float64: at most 6.3e-7, ``tests/test_grader_tolerance.py`` measures them), with a 3x margin, so
look-alikes such as LayerNorm's eps 1e-5 instead of 1e-6 (4e-6 on a plain input, 0.36 on a low-variance one) or
the tanh approximation of GELU (7e-5) are caught.

**Naming the bug.** :func:`diagnose` recomputes the reference with plausible mistakes switched on, one *axis* at
a time and in combination, and returns the combination with the fewest mistakes that reproduces the student's
output; if several do, it says so instead of guessing. Each axis is a dict ``{option: message}`` whose first
option is the correct one (message ``None``).

**Same weights**: :mod:`setr_edu.checks.align`.
"""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

TOL = 2e-6


def close(a, b, tol: float = TOL) -> bool:
    """Same shape, same NaNs, and ``max|a - b| <= tol * max|b|``."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    if torch.isnan(a).ne(torch.isnan(b)).any():
        return False
    a, b = torch.nan_to_num(a), torch.nan_to_num(b)
    if not b.numel():
        return True
    return bool((a - b).abs().max() <= tol * max(float(b.abs().max()), 1e-30))


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a - b| / max|b|``: the number :func:`close` compares with :data:`TOL`."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def diagnose(out, axes: dict[str, dict], variant: Callable[..., torch.Tensor], tol: float = TOL,
             max_bugs: int = 2) -> list[str] | None:
    """The messages of the fewest mistakes (at most ``max_bugs``) whose variant reproduces ``out``; ``[]`` if it
    is the reference, ``None`` if no combination matches. If several different combinations of that size match, the evidence is
    not unique: the result says so and lists them, instead of naming one."""
    names = list(axes)
    combos = sorted(itertools.product(*(list(axes[n]) for n in names)),
                    key=lambda c: sum(opt != next(iter(axes[n])) for n, opt in zip(names, c)))
    found, size = [], None
    for combo in combos:
        n_bugs = sum(opt != next(iter(axes[n])) for n, opt in zip(names, combo))
        if (size is not None and n_bugs > size) or n_bugs > max_bugs:
            break
        try:
            candidate = variant(**dict(zip(names, combo)))
        except Exception:  # an impossible combination (e.g. shapes that do not fit): skip it
            continue
        if close(out, candidate, tol):
            found.append([axes[n][o] for n, o in zip(names, combo) if axes[n][o]])
            size = n_bugs
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    return ["more than one mistake gives exactly this output, so the grader cannot tell which one you made:"] + \
        [f"either: {' AND '.join(f)}" for f in found]


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and float buffer random values so no layer can be skipped unnoticed.

    Zero biases, unit norm weights and fresh BatchNorm statistics would hide a missing bias, LayerNorm or
    BatchNorm; random values make each of them change the output.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.dim() == 1 and name.endswith("weight"):  # norm scales
                t.copy_(1.0 + 0.3 * noise)
            elif t.dim() <= 1:  # biases, norm shifts, running means
                t.copy_(0.3 * noise)
            else:  # weights, scaled like a fan-in initialisation
                t.copy_(noise / t[0].numel() ** 0.5)
    return module


def module_device(module) -> torch.device:
    """Where a module's weights live (its first parameter or buffer); the CPU for a module without any."""
    if isinstance(module, nn.Module):
        for t in itertools.chain(module.parameters(), module.buffers()):
            return t.device
    return torch.device("cpu")


def _map(obj, fn):
    """``obj`` with ``fn`` applied to every tensor (also inside lists and tuples); anything else unchanged."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(o, fn) for o in obj)
    return obj


def to_device(obj, device):
    """Tensors (also inside lists and tuples) moved to ``device``; anything else unchanged."""
    return _map(obj, lambda t: t.to(device))


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


def call_student(fn, *args, device=None, **kwargs) -> tuple[object, bool]:
    """Call ``fn`` on copies of ``args`` (on ``device``, default: the module's own); return ``(output on the
    CPU, modified)``, ``modified`` True if ``fn`` changed one of the tensors it was given."""
    device = module_device(fn) if device is None else device
    given = to_device(_map(args, torch.Tensor.clone), device)
    before = [t.detach().clone() for t in _tensors(args)]
    out = fn(*given, **kwargs)
    return to_device(out, "cpu"), any(_changed(t, b) for t, b in zip(_tensors(given), before))


def _changed(t: torch.Tensor, before: torch.Tensor) -> bool:
    if t.device.type == "meta":  # no values to compare (the tests' stand-in for another device)
        return False
    return t.shape != before.shape or not torch.equal(t.detach().cpu(), before.cpu())


def seeded(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """A reproducible standard-normal tensor (the graders' inputs)."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def is_reference(student, reference_cls) -> bool:
    """True if the student handed in the library's own class (or a thin subclass of it)."""
    return isinstance(student, type) and issubclass(student, reference_cls)


def _as_tensor(x):
    """``x`` (tensor, NumPy array, nested list or number) as a float64 CPU tensor; ``None`` if it is none of them."""
    try:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double()
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError, RuntimeError):
        return None


def like(value, example):
    """``value`` (what a reference returned) in the type the student's own code returned (``example``): a tensor
    of the same dtype and device, a NumPy array, a (nested) list of Python numbers, a number, or a tuple of them."""
    if isinstance(example, (tuple, list)) and isinstance(value, (tuple, list)) and len(example) == len(value):
        return type(example)(like(v, e) for v, e in zip(value, example))
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if isinstance(example, torch.Tensor):
        return t.to(example.device, example.dtype if example.is_floating_point() or not t.is_floating_point()
                    else t.dtype)
    if isinstance(example, np.ndarray):
        return t.cpu().numpy().astype(example.dtype if example.dtype.kind == "f" or not t.is_floating_point()
                                      else np.float64)
    if isinstance(example, list):
        return t.cpu().tolist()
    if isinstance(example, (int, float)) and t.numel() == 1:
        return type(example)(t.item()) if not (isinstance(example, int) and t.is_floating_point()) else t.item()
    return value


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    ta, tb = _as_tensor(a), _as_tensor(b)
    return ta is not None and tb is not None and close(ta, tb)


def student_or_reference(own: Callable, reference: Callable) -> Callable:
    """What a later part sees in place of an earlier part's function: the student's own result where it equals
    the reference's (so the later part gets exactly the types its author's code produced), else the reference's
    result converted to the student's type (a list stays a list, a NumPy array an array); the reference's result
    as it is if the student's function fails."""
    def swapped(*args, **kwargs):
        want = reference(*args, **kwargs)
        try:
            got = own(*args, **kwargs)
        except Exception:
            return want
        if _same(got, want):
            return got
        try:
            return like(want, got)
        except Exception:
            return want
    swapped.__name__ = getattr(reference, "__name__", "reference")
    return swapped


class with_reference:  # noqa: N801 (used like a function: ``with with_reference(cls, {...}) as swap:``)
    """While grading ``student`` (a function or class), the names in ``replacements`` (earlier parts it may call,
    e.g. ``scaled_dot_product``) give the reference's results, so that a bug in an earlier part costs points
    once: the student's own result where it is right, else the reference's in the student's own type
    (:func:`student_or_reference`). ``swap.active``: the student's code does see one of those names;
    ``with swap.original():`` runs with the student's own versions again."""

    def __init__(self, student, replacements: dict):
        self.spaces = []
        funcs = [student] if not isinstance(student, type) else \
            [f for c in student.__mro__ if not c.__module__.startswith(("torch.", "builtins"))
             for f in vars(c).values() if callable(f)]
        for f in funcs:
            g = getattr(f, "__globals__", None)
            if g is not None and all(g is not s for s in self.spaces):
                self.spaces.append(g)
        self.saved = [(g, k, g[k]) for g in self.spaces for k in replacements if k in g]
        self.replaced = {id(g): {k: student_or_reference(v, replacements[k]) if callable(v) else replacements[k]
                                 for gg, k, v in self.saved if gg is g} for g in self.spaces}
        self.active = bool(self.saved)

    def __enter__(self):
        for g, k, _ in self.saved:
            g[k] = self.replaced[id(g)][k]
        return self

    def __exit__(self, *exc):
        for g, k, v in self.saved:
            g[k] = v
        return False

    @contextlib.contextmanager
    def original(self):
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()


def backward(module: nn.Module, *args, seed: int = 0) -> tuple[list[torch.Tensor | None], list[str]]:
    """Backpropagate ``sum(module(*args) * r)`` (``r`` fixed random): ``(gradients of the input tensors on the
    CPU, names of the parameters that got no gradient)``."""
    # fresh leaves: every floating-point input tensor requires a gradient
    given = _map(to_device(args, module_device(module)),
                 lambda t: t.detach().clone().requires_grad_(t.is_floating_point()))
    for p in module.parameters():
        p.grad = None
    with torch.enable_grad():
        out = module(*given)
        (out * seeded(*out.shape, seed=seed).to(out.device)).sum().backward()
    grads = [None if t.grad is None else t.grad.cpu() for t in _tensors(given) if t.is_floating_point()]
    return grads, [n for n, p in module.named_parameters() if p.grad is None]


def grade_backward(g, student: nn.Module, ref: nn.Module, *args, what: str = "x") -> None:
    """Grade a backward pass: gradients reach the input tensors of ``args`` and every weight, and the inputs'
    gradients equal the reference's for the same random output weighting (:func:`backward` on both modules);
    ``what`` names the inputs in the message."""
    grads, dead = backward(student, *args)
    want, _ = backward(ref, *args)
    g.test(not dead and bool(grads) and len(grads) == len(want)
           and all(close(a, b, 1e-5) for a, b in zip(grads, want)),
           f"gradients flow back to {what} and to every weight (a backward pass matches the reference)",
           "the backward pass differs from the reference's" + (f": no gradient reaches {', '.join(dead)}"
                                                              if dead else ""),
           "do not detach tensors, use .data or torch.no_grad() inside forward: training needs the gradients")


DROPOUT_HINT = ("two calls on the same input, in eval mode, give different outputs: something random is still "
                "active, usually a dropout. F.dropout(x, p) drops even in eval mode (its training=True is the "
                "default); use an nn.Dropout layer, or pass training=self.training.")


def eval_outputs(g, module, *args, what: str = ""):
    """The module's output on ``args`` (eval mode, no gradients), called twice: ``(output, deterministic)``."""
    with torch.no_grad():
        a = g.call(module, *args, what=what)
        b = g.call(module, *args, what=what)
    same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    return a, same


def dependency_note(names: str, swapped: with_reference, own_is_right: Callable[[], bool]) -> str:
    """Say that this part ran on the reference ``names`` (earlier parts), and whether the student's own versions
    would have failed it (``own_is_right()`` runs the check's first case with them)."""
    try:
        with swapped.original(), torch.no_grad():
            own_fails = not own_is_right()
    except Exception:
        own_fails = True
    return (f"(graded with the reference {names} in place of yours, so a bug in an earlier part costs points "
            "once" + ("; with yours, this part's output is wrong: fix the earlier part first)" if own_fails else ")"))
