"""Assignment A4: one SETR decoder, the student's choice of Naive, PUP or MLA (paper §3.3).

Interface the assignment asks for: ``MyHead(in_dim, num_classes, channels)``, its layers defined in the order of
the table below (names are free), in eval mode deterministic, and

* Naive / PUP: ``forward(z, out_size)``, ``z`` one encoder map ``(B, D, h, w)`` -> logits ``(B, K, *out_size)``;
* MLA: ``forward(zs, out_size)``, ``zs`` the four tapped maps (shallow to deep), each ``(B, D, h, w)``.

=====  ==========================================================================================================
Naive  LayerNorm(D) · Conv2d(D, C, 1) + BatchNorm2d(C) + ReLU · Conv2d(C, K, 1) · bilinear resize to out_size
PUP    LayerNorm(D) · 4 x [Conv2d(., C, 3, padding=1) + BN + ReLU], then 2x bilinear up after the first three ·
       Conv2d(C, K, 1) · bilinear resize to out_size
MLA    4 x LayerNorm(D) · 4 x [Conv2d(D, C, 1, bias=False) + BN + ReLU] · top-down sum from the deepest ·
       4 x [Conv2d(C, C, 3, padding=1, bias=False) + BN + ReLU] · per stream 2 x [Conv2d(., C/2, 3, padding=1,
       bias=False) + BN + ReLU] and 4x bilinear up (align_corners=True) · concat · Conv2d(2C, K, 3, padding=1) ·
       bilinear resize to out_size
=====  ==========================================================================================================

Bilinear resizes use ``align_corners=False`` except MLA's per-stream 4x (official code). References:
:func:`setr_edu.model.decoders.naive_head`, :func:`~setr_edu.model.decoders.pup_head`,
:class:`~setr_edu.model.decoders.MLANeck` + :class:`~setr_edu.model.decoders.MLAHead`.
"""
from __future__ import annotations

import copy
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..model.decoders import MLAHead, MLANeck, UpHead, naive_head, pup_head
from .align import align, config_differences, first_divergence, forward_on
from .compare import DROPOUT_HINT, close, diagnose, eval_outputs, grade_backward, randomize_, seeded
from .result import CheckResult, Grader

KINDS = ("naive", "pup", "mla")


class MLAReference(nn.Module):
    """SETR-MLA's decoder as one module: :class:`MLANeck` then :class:`MLAHead` (``mla_channels = C / 2``)."""

    def __init__(self, in_dim: int, num_classes: int, channels: int):
        super().__init__()
        self.neck = MLANeck(in_dim, channels)
        self.head = MLAHead(channels, num_classes, channels // 2)

    def forward(self, zs, out_size):
        return self.head(self.neck(zs), out_size)


def reference_head(kind: str, in_dim: int, num_classes: int, channels: int) -> nn.Module:
    return {"naive": naive_head, "pup": pup_head, "mla": MLAReference}[kind](in_dim, num_classes, channels)


def resize(x: torch.Tensor, size, mode: str) -> torch.Tensor:
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=(mode == "bilinear_ac"))


def uphead_variant(ref: UpHead, z, out_size, norm="yes", bn="yes", relu="yes", up="bilinear", final="bilinear",
                   order="after"):
    """Naive / PUP forward with the mistakes of :data:`UPHEAD_AXES` switched on."""
    x = ref.norm(z) if norm == "yes" else z
    for block, f in zip(ref.convs, ref.ups):
        if order == "before" and f != 1:
            x = resize(x, (x.shape[-2] * f, x.shape[-1] * f), up)
        x = block[0](x)  # conv
        x = block[1](x) if bn == "yes" else x
        x = F.relu(x) if relu == "yes" else x
        if order == "after" and f != 1:
            x = resize(x, (x.shape[-2] * f, x.shape[-1] * f), up)
    return resize(ref.cls(x), out_size, final)


UP_AXIS = {"bilinear": None,
           "bilinear_ac": "the 2x upsampling uses align_corners=True; SETR-PUP resizes with align_corners=False.",
           "nearest": "the 2x upsampling is nearest-neighbour; SETR upsamples bilinearly (mode='bilinear')."}
FINAL_AXIS = {"bilinear": None,
              "bilinear_ac": "the final resize to out_size uses align_corners=True; SETR uses align_corners=False.",
              "nearest": "the final resize to out_size is nearest-neighbour; SETR resizes the logits bilinearly."}
NORM_AXIS = {"yes": None, "no": "the encoder features are not normalised first: SETR's heads start with a "
                                "LayerNorm over the D channels of each position (permute to (B, h, w, D) for nn.LayerNorm)."}
UPHEAD_AXES = {
    "norm": NORM_AXIS,
    "bn": {"yes": None, "no": "the BatchNorm after each conv is missing (conv -> BN -> ReLU)."},
    "relu": {"yes": None, "no": "the ReLU after each conv + BN is missing."},
    "up": UP_AXIS,
    "final": FINAL_AXIS,
    "order": {"after": None, "before": "each stage upsamples before its conv; PUP convolves, then upsamples 2x."},
}


def mla_variant(ref: MLAReference, zs, out_size, norm="yes", topdown="deep_first", align="true", concat="tap"):
    """MLA forward with the mistakes of :data:`MLA_AXES` switched on."""
    neck, head = ref.neck, ref.head
    p = [lat(n(z) if norm == "yes" else z) for z, n, lat in zip(zs, neck.norms, neck.lateral)]
    m = list(p)
    if topdown == "deep_first":
        for i in range(len(p) - 2, -1, -1):
            m[i] = m[i + 1] + p[i]
    elif topdown == "shallow_first":
        for i in range(1, len(p)):
            m[i] = m[i - 1] + p[i]
    streams = [conv(mi) for conv, mi in zip(neck.smooth, m)]
    outs = []
    for s, stream_head in zip(streams, head.streams):
        x = stream_head(s)
        outs.append(resize(x, (x.shape[-2] * 4, x.shape[-1] * 4), "bilinear_ac" if align == "true" else "bilinear"))
    if concat == "reversed":
        outs = outs[::-1]
    return resize(head.cls(torch.cat(outs, dim=1)), out_size, "bilinear")


MLA_AXES = {
    "norm": NORM_AXIS,
    "topdown": {"deep_first": None,
                "shallow_first": "the top-down sum runs the wrong way: start from the deepest map, m4 = p4, "
                                 "m3 = m4 + p3, m2 = m3 + p2, m1 = m2 + p1.",
                "none": "the streams are not aggregated: each level adds the deeper ones (m_i = m_(i+1) + p_i) "
                        "before its 3x3 conv."},
    "align": {"true": None, "false": "each stream's 4x upsampling uses align_corners=False; the official SETR-MLA "
                                     "uses align_corners=True there."},
    "concat": {"tap": None, "reversed": "the streams are concatenated deepest first; keep the tap order (shallow "
                                        "to deep)."},
}


# What each reference layer is, and what the reference does just before it (for stage-by-stage diagnoses).
STAGES = [
    (r"(neck\.)?norms?(\.(\d))?$", "the LayerNorm{lvl}", "nothing: it must get the encoder map z{lvl} as it is"),
    (r"convs\.0\.0$", "the first conv", "the LayerNorm over the D channels of each position"),
    (r"convs\.(\d)\.0$", "stage {n}'s conv", "stage {prev}'s ReLU and its 2x bilinear upsampling "
                                             "(align_corners=False)"),
    (r"neck\.lateral\.(\d)\.0$", "level {n}'s 1x1 lateral conv", "level {n}'s LayerNorm"),
    (r"neck\.smooth\.(\d)\.0$", "level {n}'s 3x3 conv", "the lateral ReLUs and the top-down sum "
                                                        "m4 = p4, m_i = m_(i+1) + p_i"),
    (r"head\.streams\.(\d)\.0\.0$", "stream {n}'s first conv", "the ReLU after level {n}'s 3x3 conv"),
    (r"head\.streams\.(\d)\.1\.0$", "stream {n}'s second conv", "the ReLU after stream {n}'s first conv"),
    (r"head\.cls$", "the classifier", "each stream's ReLU, its 4x bilinear upsampling (align_corners=True) and "
                                      "the concatenation, stream 1 first"),
    (r"cls$", "the classifier", "the last ReLU (after the last conv stage, no upsampling: the final resize "
                                "does the last 2x)"),
    (r"\.1$", "the BatchNorm after {conv}", "the conv just before it (nothing in between)"),
]


def stage(path: str) -> tuple[str, str]:
    """``(what the reference layer at path is, what happens just before it)``."""
    for pattern, name, before in STAGES:
        m = re.search(pattern, path)
        if m:
            n = next((int(x) + 1 for x in m.groups() if x and x.isdigit()), 1)
            lvl = f" of level {n}" if "norms" in path else ""
            conv = stage(path[:-1] + "0")[0] if pattern == r"\.1$" else ""
            return (name.format(n=n, lvl=lvl, conv=conv), before.format(n=n, prev=n - 1, lvl=n if lvl else ""))
    return f"`{path}`", "the step before it"


def _stage_name(path: str) -> str:
    return f"{stage(path)[0]} (`{path}`)"


def stage_diagnosis(student, ref, alignment, run) -> str:
    """One sentence: up to where the student's layers reproduce the reference, and where to look."""
    last, first, why = first_divergence(student, ref, alignment, run)
    if first is None:
        return ("stage by stage: every layer gets the same input as in the reference, so look after the last "
                "layer: the final bilinear resize of the logits to out_size (align_corners=False)") if last else ""
    name, before = stage(first)
    done = f"your layers reproduce the reference up to {stage(last)[0]}; " if last else ""
    if why == "missing":
        return f"stage by stage: {done}your module has no layer for {name} (left out?)."
    if why == "unused":
        mine = next(s for s, r in alignment.pairs.items() if r == first)
        return f"stage by stage: {done}your `{mine}`, which stands for {name}, is never called in forward."
    return f"stage by stage: {done}the input of {name} differs, so look at what comes before it: {before}."


# Two sizes; out_size never a multiple of the token grid, so a fixed 16x upsampling cannot pass.
CASES = [dict(D=24, K=5, C=16, grid=(3, 4), out=(50, 70), seed=0),
         dict(D=20, K=3, C=8, grid=(2, 3), out=(33, 29), seed=1)]


def check_decoder(student_cls, kind: str = "pup", verbose: bool = True) -> CheckResult:
    """Grade ``student_cls(in_dim, num_classes, channels)`` as a SETR-``kind`` decoder (naive | pup | mla).

    Layers are matched to the reference by what they compute (any names, grouping or registration order), then
    compared in eval mode, on a second size, in train mode (BatchNorm's batch statistics) and backward."""
    kind = str(kind).lower()
    g = Grader("A4", "decoder", f"SETR-{kind} decoder", tests=6, verbose=verbose)
    with g.run():
        if kind not in KINDS:
            g.fail(f"kind={kind!r} is not a SETR decoder: set KIND to 'naive', 'pup' or 'mla'", stop=True)
        if isinstance(student_cls, type) and issubclass(student_cls, (UpHead, MLAHead, MLANeck, MLAReference)):
            g.fail("this is setr_edu's own decoder: write your own module", stop=True)
        c = CASES[0]
        ref = randomize_(reference_head(kind, c["D"], c["K"], c["C"]), seed=c["seed"]).eval()
        student = student_cls(in_dim=c["D"], num_classes=c["K"], channels=c["C"]).eval()
        zs = [seeded(2, c["D"], *c["grid"], seed=j) for j in range(4 if kind == "mla" else 1)]
        inputs = zs if kind == "mla" else zs[0]
        run = forward_on(inputs, c["out"])
        al = align(student, ref, run)
        sig = f"{student_cls.__name__}(in_dim={c['D']}, num_classes={c['K']}, channels={c['C']})"
        g.test(al.ok, f"{sig}: its layers were matched to the assignment's table"
               + (" (some are missing, see below)" if al.missing else ""),
               f"{sig}: its layers do not line up with the assignment's table", al.messages(_stage_name), stop=True)
        for m in al.messages(_stage_name):
            g.note(m)
        g.explain = lambda: config_differences(student, al, ref)
        out, deterministic = eval_outputs(g, student, inputs, c["out"], what="forward changes z")
        with torch.no_grad():
            want = ref(inputs, c["out"])
        by_order = student_cls(in_dim=c["D"], num_classes=c["K"], channels=c["C"]).eval()
        al_order = align(by_order, ref)  # the same layers placed by definition order only
        with torch.no_grad():
            out_order = g.call(by_order, inputs, c["out"], what="forward changes z")
        if not close(out, want) and close(out_order, want):  # a bug-free module whose layers read alike
            student, al, out = by_order, al_order, out_order
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        hint = (f"the logits must be resized to exactly out_size = {c['out']}, the input image's (H, W), which "
                f"need not be a multiple of the {c['grid'][0]}x{c['grid'][1]} token grid: end with "
                "F.interpolate(x, size=out_size, ...), not a fixed scale_factor"
                if isinstance(out, torch.Tensor) and out.shape[:2] == want.shape[:2] else "")
        g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (B, K, *out_size)",
               f"output shape {got}, expected (B, K, *out_size) = {tuple(want.shape)}", hint, stop=True)
        if close(out, want):
            g.ok(f"values match setr_edu's SETR-{kind} decoder with the same weights (eval mode)")
        elif not deterministic:
            g.fail(f"values differ from setr_edu's SETR-{kind} decoder, and from one call to the next",
                   DROPOUT_HINT, stop=True)
        else:
            with torch.no_grad():
                if kind == "mla":
                    variant = lambda **o: mla_variant(ref, zs, c["out"], **o)  # noqa: E731
                    axes = MLA_AXES
                else:
                    variant = lambda **o: uphead_variant(ref, zs[0], c["out"], **o)  # noqa: E731
                    axes = UPHEAD_AXES
                bugs = config_differences(student, al, ref) + (diagnose(out, axes, variant) or
                                                                diagnose(out_order, axes, variant) or [])
            where = [stage_diagnosis(student, ref, al, run), "" if bugs else al.ambiguity()]
            g.fail(f"values differ from setr_edu's SETR-{kind} decoder with the same weights",
                   (bugs or []) + [w for w in where if w] or "compare each stage with the table", stop=True)
        c2 = CASES[1]
        ref2 = randomize_(reference_head(kind, c2["D"], c2["K"], c2["C"]), seed=c2["seed"]).eval()
        student2 = student_cls(in_dim=c2["D"], num_classes=c2["K"], channels=c2["C"]).eval()
        zs2 = [seeded(1, c2["D"], *c2["grid"], seed=10 + j) for j in range(len(zs))]
        in2 = zs2 if kind == "mla" else zs2[0]
        al2 = align(student2, ref2, forward_on(in2, c2["out"]))
        with torch.no_grad():
            ok2 = al2.ok and close(g.call(student2, in2, c2["out"], what="forward changes z"), ref2(in2, c2["out"]))
        g.test(ok2, f"also right for in_dim={c2['D']}, {c2['K']} classes, channels={c2['C']}, a "
               f"{c2['grid'][0]}x{c2['grid'][1]} grid and out_size {c2['out']} (nothing hard-coded)",
               f"right for the first example but not for in_dim={c2['D']}, num_classes={c2['K']}, "
               f"channels={c2['C']}, grid {c2['grid']}, out_size {c2['out']}", "take every size from the arguments")
        s_train, r_train = copy.deepcopy(student).train(), copy.deepcopy(ref).train()
        out_t = g.call(s_train, inputs, c["out"], what="forward changes z")
        want_t = r_train(inputs, c["out"]).detach()
        g.test(close(out_t, want_t), "also right in train mode (BatchNorm normalises with the batch's statistics)",
               "right in eval mode but not in train mode",
               "in train mode BatchNorm uses the statistics of the batch: use nn.BatchNorm2d layers and do not "
               "call F.batch_norm with training=False or switch layers to eval() inside forward")
        grade_backward(g, s_train, copy.deepcopy(ref).train(), inputs, c["out"], what="the input")
    return g.finish()
