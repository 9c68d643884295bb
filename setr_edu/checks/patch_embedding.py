"""Assignment A1: image to sequence (paper §3.1). Graders for ``patchify`` and a patch-embedding module.

Interfaces the assignment asks for:

* ``patchify(x, patch_size) -> patches``: ``(B, C, H, W) -> (B, N, C*p*p)``, patches in row-major order
  (left to right, then top to bottom), each patch flattened channel first, then rows, then columns: the order of
  :func:`torch.nn.functional.unfold` and of a ``Conv2d`` weight ``(D, C, p, p)``.
* ``MyPatchEmbedding(patch_size, in_chans, embed_dim)`` with a layer ``proj``, either ``nn.Conv2d(in_chans,
  embed_dim, patch_size, stride=patch_size)`` or ``nn.Linear(in_chans*p*p, embed_dim)``;
  ``forward(x)``: ``(B, C, H, W) -> (B, N, D)``. Reference: :class:`setr_edu.PatchEmbedding`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.patch_embed import PatchEmbedding
from .compare import close, diagnose, is_reference, randomize_, seeded
from .result import CheckResult, Grader

# (B, C, H, W), patch size: a non-square grid (3 x 5 patches) so row- and column-major orders differ.
CASES = [((2, 3, 12, 20), 4), ((1, 2, 6, 4), 2)]

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
    g = Grader("A1", "patchify", "patchify", tests=3, verbose=verbose)
    with g.run():
        for i, (shape, p) in enumerate(CASES):
            x = seeded(*shape, seed=i)
            B, C, H, W = shape
            h, w = H // p, W // p
            ref = F.unfold(x, p, stride=p).transpose(1, 2)  # (B, N, C*p*p)
            out = patchify(x.clone(), p)
            if i == 0:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
                g.test(got == tuple(ref.shape), f"output shape {tuple(ref.shape)} = (B, N, C*p*p)",
                       f"output shape {got}, expected (B, N, C*p*p) = {tuple(ref.shape)} for x of shape "
                       f"{shape} and patch_size={p}", shape_hint(got or (), B, h * w, C * p * p, h, w), stop=True)
            if close(out, ref):
                g.ok(f"values match F.unfold for x of shape {shape}, patch_size={p}")
                continue
            bugs = diagnose(out, PATCHIFY_AXES, lambda **o: patchify_variant(x, p, **o))
            generic = ("Compare your patch 0 with x[0, :, :p, :p].flatten() and patch 1 with the patch to its right."
                       if i == 0 else "It works on the first example but not here: is a size (H, W, p, C) hard-coded?")
            g.fail(f"values differ from F.unfold for x of shape {shape}, patch_size={p}", bugs or generic)
    return g.finish()


def _load_reference(student: nn.Module, ref: PatchEmbedding) -> bool:
    """Copy the reference projection into the student's ``proj`` (Conv2d or Linear form)."""
    proj = getattr(student, "proj", None)
    with torch.no_grad():
        if isinstance(proj, nn.Conv2d) and proj.weight.shape == ref.proj.weight.shape:
            proj.weight.copy_(ref.proj.weight)
        elif isinstance(proj, nn.Linear) and proj.weight.shape == ref.proj.weight.flatten(1).shape:
            proj.weight.copy_(ref.proj.weight.flatten(1))  # (D, C, p, p) -> (D, C*p*p): the unfold order
        else:
            return False
        if proj.bias is not None:
            proj.bias.copy_(ref.proj.bias)
    return True


def embedding_variant(ref: PatchEmbedding, x: torch.Tensor, grid: str = "row", inner: str = "chw",
                      bias: str = "yes") -> torch.Tensor:
    p = ref.patch_size
    weight = ref.proj.weight.flatten(1)  # (D, C*p*p) in (C, p, p) order
    if inner == "hwc":
        weight = ref.proj.weight.permute(0, 2, 3, 1).flatten(1)  # the student's weight read in (p, p, C) order
    tokens = patchify_variant(x, p, grid=grid, inner=inner)
    return F.linear(tokens, weight, ref.proj.bias if bias == "yes" else None)


EMBED_AXES = {
    "grid": PATCHIFY_AXES["grid"],
    "inner": {"chw": None,
              "hwc": "your Linear reads each patch as (row, column, channel), but the weight layout is (channel, "
                     "row, column) (a Conv2d weight (D, C, p, p) flattened): flatten patches channel first."},
    "bias": {"yes": None, "no": "the bias of the projection is not added."},
}


def check_patch_embedding(student_cls, verbose: bool = True) -> CheckResult:
    """Grade ``student_cls(patch_size, in_chans, embed_dim)`` against :class:`setr_edu.PatchEmbedding`."""
    g = Grader("A1", "patch_embedding", "patch embedding", tests=4, verbose=verbose)
    with g.run():
        if is_reference(student_cls, PatchEmbedding):
            g.fail("this is setr_edu's own PatchEmbedding: write your own module", stop=True)
        (shape, p), D = CASES[0], 10
        B, C, H, W = shape
        h, w = H // p, W // p
        ref = randomize_(PatchEmbedding(p, C, D)).eval()
        student = student_cls(patch_size=p, in_chans=C, embed_dim=D).eval()
        n_ref = sum(t.numel() for t in ref.parameters())
        n_stu = sum(t.numel() for t in student.parameters())
        hint = (f"Expected C*p*p*D weights + D biases = {C}*{p}*{p}*{D} + {D} = {n_ref}"
                + (" (the bias is missing)" if n_stu == n_ref - D else "") + ".")
        g.test(n_stu == n_ref and _load_reference(student, ref),
               f"{student_cls.__name__}(patch_size={p}, in_chans={C}, embed_dim={D}) has a `proj` layer with "
               f"{n_ref} parameters",
               f"{student_cls.__name__}(patch_size={p}, in_chans={C}, embed_dim={D}) has {n_stu} parameters; the "
               f"projection must be a layer named `proj`: nn.Conv2d(C, D, p, stride=p) or nn.Linear(C*p*p, D)",
               hint, stop=True)
        x = seeded(*shape, seed=1)
        with torch.no_grad():
            out, want = student(x.clone()), ref(x)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (B, N, D)",
               f"output shape {got}, expected (B, N, D) = {tuple(want.shape)}",
               shape_hint(got or (), B, h * w, D, h, w), stop=True)
        if close(out, want):
            g.ok("values match setr_edu.PatchEmbedding with the same weights")
        else:
            bugs = diagnose(out, EMBED_AXES, lambda **o: embedding_variant(ref, x, **o))
            g.fail("values differ from setr_edu.PatchEmbedding with the same weights",
                   bugs or "Check the order of the patches (row-major) and of the pixels inside a patch.", stop=True)
        x2 = seeded(1, C, 8, 16, seed=2)  # another image size: nothing may be hard-coded
        with torch.no_grad():
            out2 = student(x2)
        g.test(close(out2, ref(x2)), "also right for a 1x3x8x16 image (no sizes hard-coded)",
               "right for the first image but not for a 1x3x8x16 one: derive H, W and the grid from x.shape")
    return g.finish()
