"""The tools every grader shares: compare tensors, name the likely bug, and give two modules the same weights.

**Naming the bug.** A grader does not only say "your output differs". It recomputes the reference with plausible
mistakes switched on, one *axis* of mistakes at a time (scaling: right / none / 1/d; softmax dim: keys / queries;
...), over every combination, and reports the combination with the fewest mistakes that reproduces the
student's output. Each axis is a dict ``{option: message}``; the first option is the correct one (message
``None``)::

    axes = {"scale": {"sqrt_d": None, "none": "the scores are not divided by sqrt(d)"}, ...}
    bugs = diagnose(student_out, axes, lambda scale, ...: reference_variant(x, scale=scale, ...))

**Same weights.** :func:`copy_weights` copies a reference module's parameters and buffers into the student's
module: by name when the names match, otherwise by order within each (kind, shape) group, so a student may name
layers freely as long as they are defined in the order the assignment lists.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn


def close(a, b, tol: float = 1e-4) -> bool:
    """Same shape and equal up to float32 round-off, relative to the size of ``b``."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    a, b = a.detach().double(), b.detach().double()
    if torch.isnan(a).ne(torch.isnan(b)).any():
        return False
    a, b = torch.nan_to_num(a), torch.nan_to_num(b)
    return bool((a - b).abs().max() <= tol * (1.0 + b.abs().max())) if b.numel() else True


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def diagnose(out: torch.Tensor, axes: dict[str, dict], variant: Callable[..., torch.Tensor],
             tol: float = 1e-4) -> list[str] | None:
    """The fewest mistakes (messages) whose variant reproduces ``out``; ``[]`` if it is the reference, ``None``
    if no combination matches. ``variant(**options)`` recomputes the reference with those options."""
    names = list(axes)
    combos = sorted(itertools.product(*(list(axes[n]) for n in names)),
                    key=lambda c: sum(opt != next(iter(axes[n])) for n, opt in zip(names, c)))
    for combo in combos:
        options = dict(zip(names, combo))
        try:
            candidate = variant(**options)
        except Exception:  # an impossible combination (e.g. shapes that do not fit): skip it
            continue
        if close(out, candidate, tol):
            return [axes[n][o] for n, o in options.items() if axes[n][o]]
    return None


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


def _group(key: str, t: torch.Tensor) -> tuple:
    return (key.rsplit(".", 1)[-1], tuple(t.shape))


def _subsequence(stu_sd: dict, ref_sd: dict) -> dict | None:
    """Map student entries to reference entries of the same kind and shape, in order, skipping reference entries
    the student lacks (e.g. a left-out BatchNorm). ``None`` if the student's entries are not such a subsequence."""
    ref_items = list(ref_sd.items())
    mapping, j = {}, 0
    for k, t in stu_sd.items():
        while j < len(ref_items) and _group(*ref_items[j]) != _group(k, t):
            j += 1
        if j == len(ref_items):
            return None
        mapping[k] = ref_items[j][0]
        j += 1
    return mapping


def _by_group(stu_sd: dict, ref_sd: dict) -> dict | None:
    """Map the i-th student entry of each (kind, shape) group to the i-th reference entry of that group; ``None``
    unless every group has the same size on both sides (layers defined grouped differently, e.g. per level)."""
    groups: dict[tuple, list[list[str]]] = {}
    for side, sd in enumerate((ref_sd, stu_sd)):
        for k, t in sd.items():
            groups.setdefault(_group(k, t), [[], []])[side].append(k)
    if any(len(r) != len(s) for r, s in groups.values()):
        return None
    return {s: r for rs, ss in groups.values() for r, s in zip(rs, ss)}


def copy_weights(student: nn.Module, reference: nn.Module) -> tuple[bool, list[str], list[str]]:
    """Copy ``reference``'s weights into ``student``; return ``(ok, missing, problems)``.

    Matching, first that works: (1) the same names and shapes (the student may lack some); (2) the student's entries, in definition order,
    are a subsequence of the reference's with the same kind (``weight``, ``bias``, ``running_mean``...) and shape,
    so a student may name layers freely and may leave layers out (``missing`` lists them); (3) the i-th entry of
    each (kind, shape) group goes to the i-th reference entry of that group. ``ok`` is False if none works;
    ``problems`` then says what differs, in words.
    """
    ref_sd, stu_sd = reference.state_dict(), student.state_dict()
    if ref_sd.keys() == stu_sd.keys() and all(ref_sd[k].shape == stu_sd[k].shape for k in ref_sd):
        student.load_state_dict(ref_sd)
        return True, [], []
    same_names = all(k in ref_sd and ref_sd[k].shape == t.shape for k, t in stu_sd.items())
    mapping = ({k: k for k in stu_sd} if same_names else None) or _subsequence(stu_sd, ref_sd) or _by_group(stu_sd, ref_sd)
    if mapping is None:
        expected = describe_params(reference)
        return False, [], [f"your module's parameters ({describe_params(student) or 'none'}) do not line up with "
                           f"the ones the assignment lists ({expected}): check each layer's size, bias and order"]
    student.load_state_dict({k: ref_sd[v] for k, v in mapping.items()})
    taken = set(mapping.values())
    missing = [k for k in ref_sd if k not in taken and not k.endswith("num_batches_tracked")]
    return True, missing, []


def describe_params(module: nn.Module) -> str:
    """``"qkv.weight (72, 24), qkv.bias (72,), ..."``: what a module holds, for messages."""
    return ", ".join(f"{k} {tuple(t.shape)}" for k, t in module.state_dict().items() if not k.endswith("num_batches_tracked"))


def seeded(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """A reproducible standard-normal tensor (the graders' inputs)."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def is_reference(student, reference_cls) -> bool:
    """True if the student handed in the library's own class (or a thin subclass of it)."""
    return isinstance(student, type) and issubclass(student, reference_cls)
