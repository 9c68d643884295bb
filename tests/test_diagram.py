"""The whole-model diagram (setr_edu.viz.diagram) draws what the model is: taps and head layers come from its modules."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import setr_edu  # noqa: E402
from setr_edu.viz.diagram import describe, draw_setr, draw_setr_family  # noqa: E402


def meta_setr(kind, encoder="large", **kw):
    with torch.device("meta"):
        return setr_edu.build_setr(kind, encoder=encoder, num_classes=150, img_size=512, **kw)


def texts(fig):
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title])


@pytest.mark.parametrize("encoder, depth", [("large", 24), ("base", 12)])
@pytest.mark.parametrize("kind", ["naive", "pup", "mla"])
def test_describe_reads_the_official_taps_from_the_model(kind, encoder, depth):
    model = meta_setr(kind, encoder)
    info, d = describe(model), model.decoder
    assert info["depth"] == depth and info["kind"] == kind
    if kind == "mla":
        assert info["inputs"] == d.mla_taps and info["aux_taps"] == d.mla_taps
    else:
        assert info["inputs"] == (d.main_tap,) and info["aux_taps"] == d.aux_taps
    assert len(info["aux_taps"]) == len(model.auxiliary_heads)


def test_up_heads_are_drawn_layer_by_layer_back_to_full_resolution():
    naive, pup = describe(meta_setr("naive")), describe(meta_setr("pup"))
    assert len(naive["main"]) == 3 and len(pup["main"]) == 6  # LN + convs, classifier, final resize
    assert naive["main"][-1].startswith("bilinear\nx16")
    # PUP: three x2 inside the loop and the last x2 after the classifier make 16 = the patch size
    inner = [int(s.split("then x")[1]) for s in pup["main"] if "then x" in s]
    final = int(pup["main"][-1].split("\n")[1][1:])
    assert inner == [2, 2, 2] and math.prod(inner) * final == 16
    assert pup["main"][0].startswith("LN,\n3x3 conv\n1024→256")
    assert "3x3 conv 1024→256" in pup["aux"] and pup["aux"].endswith("bilinear x4")


def test_mla_shows_the_code_not_the_paper_text():
    info = describe(meta_setr("mla"))
    assert "1x1 conv 1024→256" in info["neck"]
    assert "256→128→128" in info["main"][0] and "align_corners=True" in info["main"][0]
    assert "3x3 conv →150" in info["main"][1]  # the official 3x3 classifier (mmsegmentation: 1x1)
    assert info["aux"].startswith("1x1 conv 256→150")
    mm = describe(meta_setr("mla", mla_align_corners=False, mla_cls_kernel=1))
    assert "align_corners=False" in mm["main"][0] and "1x1 conv →150" in mm["main"][1]


def test_draw_setr_labels_the_model_taps_not_fixed_ones():
    fig = draw_setr(meta_setr("naive", aux_taps=(3, 7)))
    t = texts(fig)
    assert "Z3" in t and "Z7" in t and "Z10" not in t
    assert "2 auxiliary heads on Z3, Z7" in t
    plt.close(fig)


def test_family_figure_draws_three_decoders_on_one_encoder():
    fig = draw_setr_family("large")
    t = texts(fig)
    for line in ("SETR-Naive: main head on Z24; aux heads on Z10, Z15, Z20",
                 "SETR-PUP: main head on Z24; aux heads on Z10, Z15, Z20, Z24",
                 "SETR-MLA: neck reads Z6, Z12, Z18, Z24"):
        assert line in t
    assert t.count("transformer layers") == 1  # the encoder is drawn once
    plt.close(fig)


def _layer_of(y, depth):
    """The encoder layer whose bar (height l - 1, half-height 0.32) contains ``y``; None between bars."""
    hits = [layer for layer in range(1, depth + 1) if abs(y - (layer - 1)) <= 0.32]
    return hits[0] if hits else None


@pytest.mark.parametrize("kind", ["naive", "pup"])
def test_every_auxiliary_arrow_leaves_the_bar_of_its_own_layer(kind):
    """Issue 24: PUP's Z24 auxiliary head was drawn from Z23 (its arrow shifted down, off Z24's bar)."""
    model = meta_setr(kind)
    info = describe(model)
    fig = draw_setr(model)
    ax = fig.axes[0]
    starts = {}
    for artist in [*ax.texts, *ax.lines]:
        gid = artist.get_gid() or ""
        if gid.startswith("aux-link:Z"):
            x, y = artist.xyann if hasattr(artist, "xyann") else (artist.get_xdata()[0], artist.get_ydata()[0])
            starts.setdefault(int(gid.split("Z")[1]), []).append((x, y))
    assert sorted(starts) == sorted(info["aux_taps"])
    for tap, points in starts.items():
        x, y = min(points)  # the link's first point: where it leaves the encoder
        assert x == pytest.approx(2.5), f"aux link of Z{tap} does not start at the encoder's edge"
        assert _layer_of(y, info["depth"]) == tap, f"aux head of Z{tap} is drawn from Z{_layer_of(y, info['depth'])}"
    plt.close(fig)
