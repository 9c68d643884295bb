"""The whole SETR in one picture (the paper's Fig. 1), drawn from a real model, so the taps come from its config.

    >>> import setr_edu
    >>> from setr_edu.viz.diagram import draw_setr, draw_setr_family
    >>> fig = draw_setr_family("large")  # the encoder once, the three decoders with their taps and auxiliary heads
    >>> fig = draw_setr(setr_edu.build_setr("mla", encoder="large", num_classes=150, img_size=512))  # one variant

``describe(model)`` reads everything the pictures show (depth, taps, every head's layers) from the model's modules,
so a drawing can never disagree with the code it depicts; the tests check it against ``DecoderConfig``.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch

ENC, HEAD, AUX, NECK, UP = "#dbe9f6", "#fde2c8", "#fff4e6", "#e5dcf2", "#d9f0d3"
KIND_COLOUR = {"naive": "C0", "pup": "C1", "mla": "C2"}
TITLE = {"naive": "SETR-Naive", "pup": "SETR-PUP", "mla": "SETR-MLA"}


def _conv(block) -> str:
    """``ConvBNReLU`` -> 'kxk conv / a→b / BN, ReLU' (three lines)."""
    conv = block[0]
    k = f"{conv.kernel_size[0]}x{conv.kernel_size[1]}"
    return f"{k} conv\n{conv.in_channels}→{conv.out_channels}\nBN, ReLU"


def _uphead_steps(head, patch: int) -> list[str]:
    """The layers of an ``UpHead`` (Naive, PUP, PUP aux) as box labels: LayerNorm with the first conv, ups included."""
    steps = []
    for i, (conv, factor) in enumerate(zip(head.convs, head.ups)):
        steps.append(("LN,\n" if i == 0 else "") + _conv(conv) + (f"\nthen x{factor}" if factor != 1 else ""))
    steps.append(f"1x1 conv\n{head.cls.in_channels}→{head.cls.out_channels}")
    steps.append(f"bilinear\nx{patch // math.prod(head.ups)}\nto H x W")
    return steps


def _compact(steps: list[str]) -> str:
    """One line for an auxiliary head: 'LN, 3x3 conv 1024→256 BN, ReLU, x4 → ...'."""
    short = [s.replace("\nthen ", ", ").replace("\nto H x W", "").replace("\n", " ")
             for s in steps]
    return " → ".join(short)


def describe(model) -> dict:
    """What the diagram shows, read from ``model``'s modules: encoder size, taps, and each head's layers."""
    enc = model.encoder.config
    d = model.decoder
    info = dict(kind=d.kind, depth=enc.depth, dim=enc.embed_dim, heads=enc.num_heads, patch=enc.patch_size,
                num_classes=model.num_classes, img_size=tuple(model.encoder.img_size))
    if d.kind == "mla":
        neck, head = model.neck, model.decode_head
        info["inputs"] = tuple(d.mla_taps)  # the four taps feed the neck
        info["aux_taps"] = tuple(d.mla_taps)[: len(model.auxiliary_heads)]  # one aux head per stream
        lateral, smooth = neck.lateral[0][0], neck.smooth[0][0]
        info["neck"] = (f"per tap:\nLayerNorm,\n1x1 conv {lateral.in_channels}→{lateral.out_channels},\nBN, ReLU;\n"
                        f"top-down sums;\n{smooth.kernel_size[0]}x{smooth.kernel_size[0]} conv,\nBN, ReLU")
        s0, s1 = head.streams[0][0][0], head.streams[0][1][0]
        k = head.cls.kernel_size[0]
        info["main"] = [f"per stream:\n2 x (3x3 conv,\nBN, ReLU)\n{s0.in_channels}→{s0.out_channels}→{s1.out_channels}, x4\n"
                        f"align_corners={head.align_corners}",
                        f"concat\n{head.cls.in_channels} channels,\n{k}x{k} conv →{head.cls.out_channels}",
                        f"bilinear\nx{enc.patch_size // 4}\nto H x W"]
        aux = model.auxiliary_heads[0].cls if len(model.auxiliary_heads) else None
        info["aux"] = (f"1x1 conv {aux.in_channels}→{aux.out_channels} → bilinear x{enc.patch_size}"
                       if aux is not None else "")
    else:
        info["inputs"] = (d.main_tap,)
        info["aux_taps"] = tuple(d.aux_taps)[: len(model.auxiliary_heads)]
        info["main"] = _uphead_steps(model.decode_head, enc.patch_size)
        info["aux"] = (_compact(_uphead_steps(model.auxiliary_heads[0], enc.patch_size))
                       if len(model.auxiliary_heads) else "")
    return info


def _box(ax, x, y, w, h, text, fc, fontsize=9, dashed=False):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03", fc=fc, ec="0.35", lw=1,
                                ls="--" if dashed else "-"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, dashed=False, colour="0.3", gid=None):
    ann = ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color=colour, lw=1.1,
                                                                ls="--" if dashed else "-", shrinkA=0, shrinkB=0))
    ann.set_gid(gid)


def _encoder(ax, info, x=0.0, marks=()):
    """The input, the patch embedding and one bar per transformer layer (layer l at height l - 1).

    ``marks``: (layer, colour) pairs; those bars are coloured and labelled Z_l. Returns the bars' right edge.
    """
    L, w = info["depth"], 2.5
    h, wd = info["img_size"]
    p = info["patch"]
    _box(ax, x, -5.2, w, 1.5, f"image\n3x{h}x{wd}", "white", fontsize=8)
    _arrow(ax, (x + w / 2, -3.7), (x + w / 2, -3.3))
    _box(ax, x, -3.3, w, 2.1, f"{p}x{p} patches\n→ linear\n+ pos. emb.", ENC, fontsize=8)
    _arrow(ax, (x + w / 2, -1.2), (x + w / 2, -0.35))
    colours = dict(marks)
    for layer in range(1, L + 1):
        y = layer - 1
        fc = colours.get(layer, ENC)
        ax.add_patch(FancyBboxPatch((x, y - 0.32), w, 0.64, boxstyle="round,pad=0.02", fc=fc, ec="0.45", lw=0.6))
        if layer in colours or layer in (1, L):
            ax.text(x - 0.15, y, f"Z{layer}", ha="right", va="center", fontsize=9)
    n_tok = (h // p) * (wd // p)
    ax.text(x + w / 2, L + 0.9, f"{L} transformer layers\n{n_tok} tokens x {info['dim']}, {info['heads']} heads",
            ha="center", va="bottom", fontsize=9)
    return x + w


def _pipeline(ax, steps, x, y, colours, box_w=2.05, gap=0.28, h=3.6, fontsize=8):
    """A row of boxes joined by arrows; returns the x where it ends."""
    for i, (step, fc) in enumerate(zip(steps, colours)):
        _box(ax, x, y - h / 2, box_w, h, step, fc, fontsize=fontsize)
        if i < len(steps) - 1:
            _arrow(ax, (x + box_w, y), (x + box_w + gap, y))
        x += box_w + gap
    return x - gap


def _aux(ax, x, y, text, fontsize=9):
    """A dashed, auto-sized box for an auxiliary head."""
    ax.text(x, y, "aux: " + text, ha="left", va="center", fontsize=fontsize,
            bbox=dict(boxstyle="round,pad=0.3", fc=AUX, ec="0.35", ls="--"))


def _step_colours(steps):
    return [UP if s.startswith("bilinear") else HEAD for s in steps]


def draw_setr(model, ax=None, title: str | None = None):
    """One SETR variant: the encoder's layers, the tapped ones coloured, the main decoder and the auxiliary heads."""
    info = describe(model)
    L, kind = info["depth"], info["kind"]
    colour = KIND_COLOUR[kind]
    marks = [(t, "#f6c89f") for t in info["aux_taps"]] + [(t, "#f59e4c") for t in info["inputs"]]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.2 * L + 4.4))  # 720 px at 90 dpi: the book column
    fig = ax.figure
    right = _encoder(ax, info, marks=marks)
    top = L + 3.6  # the main decoder runs above the stack
    if kind == "mla":
        lo, hi = min(info["inputs"]) - 1, max(info["inputs"]) - 1
        nx, nw = right + 1.0, 3.0
        _box(ax, nx, lo - 0.6, nw, hi - lo + 1.2, "MLA neck\n\n" + info["neck"], NECK, fontsize=8)
        for t in info["inputs"]:
            _arrow(ax, (right, t - 1), (nx, t - 1), colour=colour)
        start = nx + nw + 0.9
        _arrow(ax, (nx + nw / 2, hi + 0.6), (nx + nw / 2, top), colour=colour)
        _arrow(ax, (nx + nw / 2, top), (start, top), colour=colour)
        end = _pipeline(ax, info["main"], start, top, [HEAD, HEAD, UP], box_w=3.2)
        for t in info["aux_taps"]:  # auxiliary heads on the neck's four streams
            _arrow(ax, (nx + nw, t - 1), (start, t - 1), dashed=True)
            _aux(ax, start, t - 1, info["aux"])
    else:
        start = right + 1.6
        _arrow(ax, (right, L - 1), (right + 0.8, L - 1), colour=colour)
        _arrow(ax, (right + 0.8, L - 1), (right + 0.8, top), colour=colour)
        _arrow(ax, (right + 0.8, top), (start, top), colour=colour)
        end = _pipeline(ax, info["main"], start, top, _step_colours(info["main"]))
        for t in info["aux_taps"]:
            y = t - 1
            if t == L:  # PUP's aux head on Z_L: leave Z_L's bar below the main arrow, then step down to the box
                y, leave = y - 0.9, y - 0.2
                link = ax.plot([right, right + 0.4, right + 0.4], [leave, leave, y], color="0.3", lw=1.1, ls="--")
                link[0].set_gid(f"aux-link:Z{t}")
                _arrow(ax, (right + 0.4, y), (start, y), dashed=True, gid=f"aux-link:Z{t}")
            else:
                _arrow(ax, (right, y), (start, y), dashed=True, gid=f"aux-link:Z{t}")
            _aux(ax, start, y, info["aux"])
    ax.text(start, top + 2.0, f"{TITLE[kind]}: main decoder → {info['num_classes']} x H x W logits", fontsize=10,
            weight="bold", va="bottom")
    if info["aux_taps"]:
        where = "the MLA streams of " if kind == "mla" else ""
        ax.text(start, -1.4, f"dashed: {len(info['aux_taps'])} auxiliary heads on {where}"
                f"{', '.join(f'Z{t}' for t in info['aux_taps'])}\n(training only, loss weight 0.4)",
                fontsize=9, va="top")
    ax.set_xlim(-1.2, max(end, start + 8.0) + 0.3)
    ax.set_ylim(-5.5, top + 3.2)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def draw_setr_family(encoder: str = "large", num_classes: int = 150, img_size: int = 512):
    """The paper's Fig. 1 in one picture: the encoder drawn once, the three decoders beside it with their taps."""
    from setr_edu.model import build_setr  # here, not at import time: setr_edu.viz must not import the model

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        models = {k: build_setr(k, encoder=encoder, num_classes=num_classes, img_size=img_size)
                  for k in ("naive", "pup", "mla")}
    infos = {k: describe(m) for k, m in models.items()}
    L = infos["naive"]["depth"]
    fig, ax = plt.subplots(figsize=(7.6, 0.3 * L + 5))  # ~690 px at 90 dpi: the book column
    tapped = {t for info in infos.values() for t in (*info["inputs"], *info["aux_taps"])}
    right = _encoder(ax, infos["naive"], marks=[(t, ENC) for t in sorted(tapped)])  # labelled, not coloured
    # Tap columns: filled circle = main decoder input, open circle = auxiliary head, square = MLA neck input.
    cols = {k: right + 0.5 + 0.55 * i for i, k in enumerate(infos)}
    for kind, info in infos.items():
        x, c = cols[kind], KIND_COLOUR[kind]
        ax.text(x, L + 0.1, kind.upper()[0], ha="center", va="bottom", fontsize=10, color=c, weight="bold")
        ax.plot([x, x], [-0.4, L - 0.6], color=c, lw=0.5, alpha=0.4)
        if kind != "mla":  # MLA's auxiliary heads sit on the neck's streams, not on layers
            for t in info["aux_taps"]:
                ax.plot(x, t - 1, "o", ms=9, mfc="white", mec=c, mew=1.6)
        for t in info["inputs"]:
            ax.plot(x, t - 1, "s" if kind == "mla" else "o", ms=6, color=c)
    start = right + 2.4
    rows = {"naive": L * 0.86, "pup": L * 0.48, "mla": L * 0.1}
    end = start
    for kind, y in rows.items():
        info = infos[kind]
        if kind == "mla":
            steps = ["MLA neck\n4 taps: LN, 1x1,\ntop-down sums,\n3x3 conv"] + info["main"]
            row_end = _pipeline(ax, steps, start, y, [NECK, HEAD, HEAD, UP], box_w=3.2)
            taps = f"neck reads {', '.join(f'Z{t}' for t in info['inputs'])}; aux heads on its 4 streams"
        else:
            row_end = _pipeline(ax, info["main"], start, y, _step_colours(info["main"]))
            taps = (f"main head on Z{info['inputs'][0]}; aux heads on "
                    f"{', '.join(f'Z{t}' for t in info['aux_taps'])}")
        end = max(end, row_end)
        ax.text(start, y + 2.0, f"{TITLE[kind]}: {taps}", fontsize=9, va="bottom",
                color=KIND_COLOUR[kind], weight="bold")
        _aux(ax, start, y - 2.3, info["aux"])
    ax.text(right + 0.2, -1.2, "taps: ● main input   ○ auxiliary head   ■ MLA neck input", fontsize=9, va="top")
    ax.set_xlim(-1.2, end + 0.3)
    ax.set_ylim(-5.5, L + 3.4)
    ax.axis("off")
    enc = infos["naive"]
    ax.set_title(f"SETR with T-{encoder.capitalize()} ({L} layers, D = {enc['dim']}) at {img_size} x {img_size}, "
                 f"{num_classes} classes: one encoder, three decoders", fontsize=10)
    return fig


if __name__ == "__main__":  # python -m setr_edu.viz.diagram book/figures/setr_overview.png
    import sys

    plt.rcParams["font.size"] = 9
    draw_setr_family("large").savefig(sys.argv[1] if len(sys.argv) > 1 else "setr_overview.png", dpi=90, bbox_inches="tight")
