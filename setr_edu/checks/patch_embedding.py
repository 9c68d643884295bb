"""Assignment A1: image to sequence (paper §3.2). Graders for ``patchify`` and a patch-embedding module.

Interfaces the assignment asks for:

* ``patchify(x, patch_size) -> patches``: ``(B, C, H, W) -> (B, N, C*p*p)``, patches in row-major order
  (left to right, then top to bottom), each patch flattened channel first, then rows, then columns: the order of
  ``torch.nn.functional.unfold`` and of a ``Conv2d`` weight ``(D, C, p, p)``.
* ``MyPatchEmbedding(patch_size, in_chans, embed_dim)`` with one projection layer (any name), either
  ``nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)`` or ``nn.Linear(in_chans*p*p, embed_dim)``;
  ``forward(x)``: ``(B, C, H, W) -> (B, N, D)``. Reference: :class:`setr_edu.PatchEmbedding`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.patch_embed import PatchEmbedding
from .align import align, config_differences, forward_on
from .compare import (grade_backward, call_student, close, dependency_note, diagnose, is_reference, randomize_, seeded,
                      with_reference)
from .result import CheckResult, Grader

# (B, C, H, W), patch size: non-square grids (3 x 5, 3 x 2, 2 x 4 patches) so row- and column-major orders
# differ, and 3, 2 and 5 channels so that no channel count can be hard-coded.
CASES = [((2, 3, 12, 20), 4), ((1, 2, 6, 4), 2), ((2, 5, 6, 12), 3)]

PATCHIFY_AXES = {
    "grid": {"row": None,
             "col": "patches come out in column-major order (top to bottom first). SETR reads the grid row by "
                    "row, like text: flatten the (h, w) grid with h outer and w inner."},
    "inner": {"chw": None,
              "hwc": "each patch is flattened as (row, column, channel); the expected order is (channel, row, "
                     "column), the order of F.unfold and of a Conv2d weight (D, C, p, p)."},
    "scramble": {"no": None,
                 "yes": "the pixels are scrambled: a single reshape of (B, C, H, W) does not cut out patches. "
                        "Reshape to (B, C, h, p, w, p), permute to (B, h, w, C, p, p), then flatten."},
}


def patchify_variant(x: torch.Tensor, p: int, grid: str = "row", inner: str = "chw", scramble: str = "no"):
    """The reference ``patchify`` with the mistakes of :data:`PATCHIFY_AXES` switched on."""
    B, C, H, W = x.shape
    h, w = H // p, W // p
    if scramble == "yes":
        return x.reshape(B, h * w, C * p * p)
    t = x.reshape(B, C, h, p, w, p)  # (B, C, H, W) -> (B, C, h, p, w, p)
    t = t.permute(0, 2, 4, 1, 3, 5)  # -> (B, h, w, C, p, p)
    if inner == "hwc":
        t = t.permute(0, 1, 2, 4, 5, 3)  # -> (B, h, w, p, p, C)
    if grid == "col":
        t = t.transpose(1, 2)  # -> (B, w, h, ...)
    return t.reshape(B, h * w, C * p * p)


def reference_patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, N, C*p*p)`` with ``F.unfold``: what part 2 runs on instead of the student's part 1."""
    return F.unfold(x, patch_size, stride=patch_size).transpose(1, 2)


def shape_hint(got: tuple, B: int, N: int, D: int, h: int, w: int) -> str:
    if got == (B, D, N):
        return "That is (B, D, N): swap the last two dimensions (.transpose(1, 2))."
    if got == (B, D, h, w):
        return "That is still a (B, D, h, w) map: flatten the grid and move D last (.flatten(2).transpose(1, 2))."
    if got == (N, D):
        return "The batch dimension is missing."
    if len(got) == 3 and got[0] == B and got[1] != N:
        return f"{got[1]} tokens instead of N = {h}*{w} = {N}: are the patches non-overlapping (stride = patch size)?"
    return ""


def check_patchify(patchify, verbose: bool = True) -> CheckResult:
    """Grade ``patchify(x, patch_size) -> (B, N, C*p*p)`` against ``F.unfold``."""
    g = Grader("A1", "patchify", "patchify", tests=len(CASES) + 1, verbose=verbose)
    with g.run():
        passed = []
        for i, (shape, p) in enumerate(CASES):
            x = seeded(*shape, seed=i)
            B, C, H, W = shape
            h, w = H // p, W // p
            ref = reference_patchify(x, p)
            g.case(f"x of shape {shape} ({C} channels), patch_size={p}")
            out = g.call(patchify, x, p, what="patchify changes x")
            if i == 0:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
                g.test(got == tuple(ref.shape), f"output shape {tuple(ref.shape)} = (B, N, C*p*p)",
                       f"output shape {got}, expected (B, N, C*p*p) = {tuple(ref.shape)} for x of shape "
                       f"{shape} and patch_size={p}", shape_hint(got or (), B, h * w, C * p * p, h, w), stop=True)
            where = f"x of shape {shape} ({C} channels), patch_size={p}"
            passed.append(close(out, ref))
            if passed[-1]:
                g.ok(f"values match F.unfold for {where}")
                continue
            bugs = diagnose(out, PATCHIFY_AXES, lambda **o: patchify_variant(x, p, **o))
            if bugs is None:
                bugs = ("It is right on the first example but not here: is a size (C, H, W or p) hard-coded? Take "
                        "them from x.shape and patch_size." if passed[0] else
                        "Compare your patch 0 with x[0, :, :p, :p].flatten() and patch 1 with the patch to its "
                        "right.")
            g.fail(f"values differ from F.unfold for {where}", bugs)
    return g.finish()


def _load_reference(student: nn.Module, ref: PatchEmbedding, x: torch.Tensor | None = None) -> bool:
    """Copy the reference projection into the student's one layer (Conv2d or Linear form, any name): layers are
    matched by their sizes (:func:`setr_edu.checks.align.align`), never by their names."""
    al = align(student, ref, forward_on(x) if x is not None else None)
    return al.ok and not al.missing and bool(al.pairs)


def embedding_variant(ref: PatchEmbedding, x: torch.Tensor, grid: str = "row", inner: str = "chw",
                      bias: str = "yes") -> torch.Tensor:
    p = ref.patch_size
    weight = ref.proj.weight.flatten(1)  # (D, C*p*p) in (C, p, p) order, also for patches read as (p, p, C)
    tokens = patchify_variant(x, p, grid=grid, inner=inner)
    return F.linear(tokens, weight, ref.proj.bias if bias == "yes" else None)


EMBED_AXES = {
    "grid": PATCHIFY_AXES["grid"],
    "inner": {"chw": None,
              "hwc": "your Linear reads each patch as (row, column, channel), but the weight layout is (channel, "
                     "row, column) (a Conv2d weight (D, C, p, p) flattened): flatten patches channel first."},
    "bias": {"yes": None, "no": "the bias of the projection is not added."},
}


def _embed_case(student_cls, p: int, C: int, D: int, seed: int, x: torch.Tensor | None = None):
    ref = randomize_(PatchEmbedding(p, C, D), seed=seed).eval()
    student = student_cls(patch_size=p, in_chans=C, embed_dim=D).eval()
    return ref, student, _load_reference(student, ref, x)


def check_patch_embedding(student_cls, verbose: bool = True) -> CheckResult:
    """Grade ``student_cls(patch_size, in_chans, embed_dim)`` against :class:`setr_edu.PatchEmbedding`.

    Part 1's ``patchify`` is replaced by the reference while this runs, so a bug there costs points once."""
    g = Grader("A1", "patch_embedding", "patch embedding", tests=5, verbose=verbose)
    with g.run(), with_reference(student_cls, {"patchify": reference_patchify}) as swapped:
        if is_reference(student_cls, PatchEmbedding):
            g.fail("this is setr_edu's own PatchEmbedding: write your own module", stop=True)
        (shape, p), D = CASES[0], 10
        B, C, H, W = shape
        h, w = H // p, W // p
        ref, student, loaded = _embed_case(student_cls, p, C, D, seed=0)
        n_ref = sum(t.numel() for t in ref.parameters())
        n_stu = sum(t.numel() for t in student.parameters())
        hint = (f"Expected C*p*p*D weights + D biases = {C}*{p}*{p}*{D} + {D} = {n_ref}"
                + (" (the bias is missing)" if n_stu == n_ref - D else "") + ".")
        g.test(n_stu == n_ref and loaded,
               f"{student_cls.__name__}(patch_size={p}, in_chans={C}, embed_dim={D}) has a projection with "
               f"{n_ref} parameters",
               f"{student_cls.__name__}(patch_size={p}, in_chans={C}, embed_dim={D}) has {n_stu} parameters; the "
               f"projection must be one layer: nn.Conv2d(C, D, p, stride=p) or nn.Linear(C*p*p, D)",
               hint, stop=True)
        x = seeded(*shape, seed=1)
        with torch.no_grad():
            out, want = g.call(student, x, what="forward changes x"), ref(x)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (B, N, D)",
               f"output shape {got}, expected (B, N, D) = {tuple(want.shape)}",
               shape_hint(got or (), B, h * w, D, h, w), stop=True)
        if close(out, want):
            g.ok("values match setr_edu.PatchEmbedding with the same weights")
        else:
            bugs = config_differences(student, align(student, ref), ref) + \
                (diagnose(out, EMBED_AXES, lambda **o: embedding_variant(ref, x, **o)) or [])
            g.fail("values differ from setr_edu.PatchEmbedding with the same weights",
                   bugs or "Check the order of the patches (row-major) and of the pixels inside a patch.", stop=True)
        good = []  # other channel counts, patch and image sizes: nothing may be hard-coded
        for (shape2, p2), D2, seed in [(CASES[1], 6, 1), (CASES[2], 7, 2)]:
            ref2, student2, loaded2 = _embed_case(student_cls, p2, shape2[1], D2, seed)
            x2 = seeded(*shape2, seed=seed + 2)
            g.case(f"{shape2[1]} input channels, a {shape2[2]}x{shape2[3]} image, patch_size={p2}")
            with torch.no_grad():
                good.append((shape2, p2, loaded2 and close(g.call(student2, x2), ref2(x2))))
        bad = [f"{s[1]} channels, {s[2]}x{s[3]} image, patch_size={q}" for s, q, ok in good if not ok]
        g.test(not bad, "also right for 2 and 5 input channels, other patch and image sizes (nothing hard-coded)",
               f"right for the first case but not for {'; '.join(bad)}",
               "take C from in_chans (layers) or x.shape (forward), and H, W from x.shape")
        grade_backward(g, student, ref, x, what="the image")
        if swapped.active:
            g.note(dependency_note("patchify", swapped, lambda: close(call_student(student, x)[0], want)))
    return g.finish()
