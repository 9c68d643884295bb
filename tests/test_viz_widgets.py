"""setr_edu.viz.widgets: the attention explorer of chapter 14 (row indexing, prefix tokens, drawing, widget wiring)."""
import io
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from setr_edu import ViTEncoder, encoder_config
from setr_edu.viz.widgets import AttentionExplorer, encode_image


def one_hot_attention(grid, prefix, target, layers=2, heads=3):
    """Every query attends only to patch ``target`` (a (row, col) pair) in every layer and head."""
    h, w = grid
    T = prefix + h * w
    a = torch.zeros(1, heads, T, T)
    a[..., prefix + target[0] * w + target[1]] = 1.0
    return [a.clone() for _ in range(layers)]


@pytest.mark.parametrize("prefix", [0, 1])
def test_query_map_folds_the_row_onto_the_grid(prefix):
    grid = (3, 4)  # non-square, to catch row/col mix-ups
    ex = AttentionExplorer(one_hot_attention(grid, prefix, target=(2, 1)), np.zeros((24, 32, 3), np.uint8), grid,
                           num_prefix_tokens=prefix)
    m = ex.query_map(layer=1, head=2, query=(0, 3))
    assert tuple(m.shape) == grid
    assert m[2, 1] == 1 and m.sum() == 1  # the class token's column is not drawn


def test_query_map_selects_the_query_row_and_averages_heads():
    grid, T = (2, 2), 4
    a = torch.zeros(1, 2, T, T)
    a[0, 0, 3, 0] = 1.0  # head 0: query (1, 1) looks at patch (0, 0)
    a[0, 1, 3, 1] = 1.0  # head 1: query (1, 1) looks at patch (0, 1)
    a[0, :, :3, 2] = 1.0  # every other query looks at (1, 0)
    ex = AttentionExplorer([a], np.zeros((8, 8, 3), np.uint8), grid)
    assert ex.query_map(0, 0, (1, 1)).tolist() == [[1, 0], [0, 0]]
    assert ex.query_map(0, "mean", (1, 1)).tolist() == [[0.5, 0.5], [0, 0]]
    assert ex.query_map(0, 1, (0, 0)).tolist() == [[0, 0], [1, 0]]


def test_overlay_marks_the_query_and_the_attended_patch():
    grid = (4, 4)
    ex = AttentionExplorer(one_hot_attention(grid, 0, target=(3, 3)), np.full((16, 16, 3), 128, np.uint8), grid)
    rgb = ex.overlay(0, 0, query=(0, 0), scale=2)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (0, 255, 255)  # cyan outline on the query patch
    assert rgb[28:, 28:].mean() > rgb[12:20, 12:20].mean() + 50  # the attended patch is the brightest


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="patch grid"):
        AttentionExplorer(one_hot_attention((2, 2), 1, (0, 0)), np.zeros((8, 8, 3), np.uint8), (2, 2))  # prefix missing
    ex = AttentionExplorer(one_hot_attention((2, 2), 0, (0, 0)), np.zeros((8, 8, 3), np.uint8), (2, 2))
    with pytest.raises(ValueError, match="outside"):
        ex.query_map(0, 0, (2, 0))
    with pytest.raises(ValueError, match="uint8"):
        AttentionExplorer(one_hot_attention((2, 2), 0, (0, 0)), np.zeros((8, 8, 3), np.float32), (2, 2))


@pytest.fixture(params=["ipywidgets", "ipywidgets 7 (no Stack)"])
def widgets_api(request, monkeypatch):
    """The installed ipywidgets, and the same module without ``Stack`` as in ipywidgets 7 (Colab ships 7.7)."""
    ipywidgets = pytest.importorskip("ipywidgets")
    if request.param != "ipywidgets":
        fake = types.ModuleType("ipywidgets")
        fake.__dict__.update({k: v for k, v in vars(ipywidgets).items() if k not in ("Stack", "__name__")})
        monkeypatch.setitem(sys.modules, "ipywidgets", fake)
        return fake
    return ipywidgets


def is_stack(w, W) -> bool:  # a Tab with its bar hidden on ipywidgets 7 and 8 (8's Stack: tests/test_widget_state.py)
    return isinstance(w, W.Tab) and "setr-stack" in w._dom_classes and w.selected_index == 0


def test_static_widget_is_wired_in_the_browser(widgets_api):
    ipywidgets = widgets_api
    grid, layers, heads = (2, 2), 2, 3
    ex = AttentionExplorer(one_hot_attention(grid, 0, (1, 1), layers, heads), np.zeros((8, 8, 3), np.uint8), grid)
    queries = [(0, 0), (1, 0)]
    box = ex.static_widget(queries)
    layer_sel, head_sel, query_sel, view, note = box.children
    assert is_stack(view, ipywidgets) and len(view.children) == layers
    assert all(is_stack(s, ipywidgets) for s in view.children)
    assert all(is_stack(q, ipywidgets) for s in view.children for q in s.children)
    assert "<style>" in note.outputs[0]["data"]["text/html"]  # the Tab bars are hidden
    assert all(len(s.children) == heads + 1 for s in view.children)  # heads + "mean of heads"
    images = [img for s in view.children for q in s.children for img in q.children]
    assert len(images) == layers * (heads + 1) * len(queries)
    assert all(isinstance(i, ipywidgets.Image) and i.value[:2] == b"\xff\xd8" for i in images)  # JPEG bytes
    stacks = [view, *view.children, *(q for s in view.children for q in s.children)]
    assert len(box.links) == len(stacks) == 1 + layers + layers * (heads + 1)
    assert {id(lk.target[0]) for lk in box.links} == {id(s) for s in stacks}  # every stack follows a selector
    assert all(lk.target[1] == "selected_index" and lk.source[1] == "index" for lk in box.links)
    assert {id(lk.source[0]) for lk in box.links} == {id(layer_sel), id(head_sel), id(query_sel)}
    assert all(type(lk).__name__ == "Link" for lk in box.links)  # jslink: client-side, not a Python observer


def test_live_widget_redraws_on_change():
    pytest.importorskip("ipywidgets")
    grid = (2, 2)
    attn = one_hot_attention(grid, 0, (0, 0))
    attn[1][..., 0] = 0
    attn[1][..., 3] = 1  # layer 2 looks elsewhere
    ex = AttentionExplorer(attn, np.zeros((8, 8, 3), np.uint8), grid)
    box = ex.live_widget()
    layer_sel, image = box.children[0].children[0], box.children[1]
    before = image.value
    layer_sel.value = 2
    assert image.value != before


def test_works_on_a_real_encoder():
    enc = ViTEncoder(encoder_config("tiny", depth=2, embed_dim=32, num_heads=2, patch_size=8), img_size=32)
    maps = enc.attention_maps(torch.randn(1, 3, 32, 32))
    ex = AttentionExplorer(maps, np.zeros((32, 32, 3), np.uint8), enc.grid, num_prefix_tokens=enc.num_prefix_tokens)
    m = ex.query_map(1, "mean", (3, 3))
    assert tuple(m.shape) == (4, 4) and 0 < float(m.sum()) < 1  # the rest went to the class token


def test_encode_image_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_image(rgb, "png")))), rgb)
    assert Image.open(io.BytesIO(encode_image(rgb, "jpeg"))).size == (7, 5)
    with pytest.raises(ValueError, match="fmt"):
        encode_image(rgb, "gif")
