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

import torch
import torch.nn.functional as F
from torch import nn

from ..model.decoders import MLAHead, MLANeck, UpHead, naive_head, pup_head
from .compare import close, copy_weights, describe_params, diagnose, randomize_, seeded
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


def check_decoder(student_cls, kind: str = "pup", verbose: bool = True) -> CheckResult:
    """Grade ``student_cls(in_dim, num_classes, channels)`` as a SETR-``kind`` decoder (naive | pup | mla)."""
    kind = str(kind).lower()
    g = Grader("A4", "decoder", f"SETR-{kind} decoder", tests=4, verbose=verbose)
    with g.run():
        if kind not in KINDS:
            g.fail(f"kind={kind!r} is not a SETR decoder: set KIND to 'naive', 'pup' or 'mla'", stop=True)
        if isinstance(student_cls, type) and issubclass(student_cls, (UpHead, MLAHead, MLANeck, MLAReference)):
            g.fail("this is setr_edu's own decoder: write your own module", stop=True)
        cases = [dict(D=24, K=5, C=16, grid=(3, 4), out=(48, 64), seed=0),
                 dict(D=20, K=3, C=8, grid=(2, 2), out=(32, 32), seed=1)]
        for i, c in enumerate(cases):
            ref = randomize_(reference_head(kind, c["D"], c["K"], c["C"]), seed=c["seed"]).eval()
            student = student_cls(in_dim=c["D"], num_classes=c["K"], channels=c["C"]).eval()
            ok, missing, problems = copy_weights(student, ref)
            n_in = 4 if kind == "mla" else 1
            zs = [seeded(2, c["D"], *c["grid"], seed=10 * i + j) for j in range(n_in)]
            inputs = zs if kind == "mla" else zs[0]
            if i == 0:
                g.test(ok, f"{student_cls.__name__}(in_dim={c['D']}, num_classes={c['K']}, channels={c['C']}): its "
                       "layers line up with the assignment's table" + (" (some are missing, see below)" if missing else ""),
                       f"{student_cls.__name__}(in_dim={c['D']}, num_classes={c['K']}, channels={c['C']}): its layers "
                       "do not line up with the assignment's table", problems, stop=True)
            with torch.no_grad():
                want = ref(inputs, c["out"])
                out = student([z.clone() for z in zs] if kind == "mla" else inputs.clone(), c["out"])
            if i == 0:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                hint = ("the logits must be resized to out_size = the input image's (H, W)"
                        if isinstance(out, torch.Tensor) and out.shape[:2] == want.shape[:2] else "")
                g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (B, K, *out_size)",
                       f"output shape {got}, expected (B, K, *out_size) = {tuple(want.shape)}", hint, stop=True)
                if close(out, want):
                    g.ok(f"values match setr_edu's SETR-{kind} decoder with the same weights")
                    continue
                with torch.no_grad():
                    if kind == "mla":
                        bugs = diagnose(out, MLA_AXES, lambda **o: mla_variant(ref, zs, c["out"], **o))
                    else:
                        bugs = diagnose(out, UPHEAD_AXES, lambda **o: uphead_variant(ref, zs[0], c["out"], **o))
                if missing and bugs is None:
                    bugs = [f"your module lacks {', '.join(missing)}"]
                g.fail(f"values differ from setr_edu's SETR-{kind} decoder with the same weights",
                       bugs or f"compare each stage with the table; the reference holds: {describe_params(ref)}",
                       stop=True)
            g.test(ok and close(out, want), f"also right for in_dim={c['D']}, {c['K']} classes, channels={c['C']}, "
                   f"a {c['grid'][0]}x{c['grid'][1]} grid (nothing hard-coded)",
                   f"right for the first example but not for in_dim={c['D']}, num_classes={c['K']}, "
                   f"channels={c['C']}, grid {c['grid']}, out_size {c['out']}", "take every size from the arguments")
    return g.finish()
