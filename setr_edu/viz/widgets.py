"""Interactive attention explorers for chapter 14 ("Inside SETR"; paper §3.1: every layer attends globally).

An encoder's attention weights ``A_l`` (layer ``l``, shape ``(heads, T, T)``, from
:meth:`setr_edu.ViTEncoder.attention_maps`) say, for each query token, how much it takes from every key token.
Row ``q`` of one head, folded back onto the ``h x w`` patch grid, is a picture: *where patch q looks*.
:class:`AttentionExplorer` draws these pictures over the image and offers two widgets:

* :meth:`AttentionExplorer.static_widget`: the overlays for a few chosen query patches are rendered once, in
  Python, into nested containers that show one child each; the layer/head/query selectors are ``jslink``-ed to
  their ``selected_index``. The switching happens in the browser, so the widget keeps working in the static
  HTML book, where no Python kernel runs (the widget state, images included, is saved in the notebook).
* :meth:`AttentionExplorer.live_widget`: any query patch (row/column sliders). A Python callback redraws an
  ``ipywidgets.Image``, so it needs a running kernel (Jupyter, Colab); the static book shows its initial state.

Both widgets are built only from models that ipywidgets 7 and 8 share (:data:`SHARED_MODELS`), whichever version
the kernel has, so the saved state names no model a 7 front end (Colab ships ipywidgets 7.7) lacks: a ``Tab``
with its tab bar hidden stands in for 8's ``Stack``, and the notes are ``Output`` widgets holding HTML (8's
``HTML`` widget brings an ``HTMLStyleModel`` that 7 does not have).

    >>> import numpy as np, torch
    >>> attn = [torch.full((1, 2, 5, 5), 0.2) for _ in range(3)]  # 3 layers, 2 heads, 1 + 2x2 tokens
    >>> ex = AttentionExplorer(attn, np.zeros((16, 16, 3), np.uint8), grid=(2, 2), num_prefix_tokens=1)
    >>> ex.num_layers, ex.num_heads, tuple(ex.query_map(layer=0, head=0, query=(1, 1)).shape)
    (3, 2, (2, 2))
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch


class AttentionExplorer:
    """Attention maps of one image, ready to draw.

    Args:
        attention: per-layer weights, a list of ``(1, heads, T, T)`` (or ``(heads, T, T)``) tensors as returned by
            ``encoder.attention_maps(x)`` for a single image, with ``T = num_prefix_tokens + h * w``.
        image: the input image as uint8 ``(H, W, 3)`` (un-normalised, for display).
        grid: the patch grid ``(h, w)`` (``H / patch_size``, ``W / patch_size``).
        num_prefix_tokens: 1 if a class token leads the sequence (SETR-Naive/PUP), 0 otherwise (SETR-MLA).
        cmap: matplotlib colormap for the weights.
        alpha: its opacity over the image.
    """

    def __init__(self, attention: Sequence[torch.Tensor], image: np.ndarray, grid: tuple[int, int],
                 num_prefix_tokens: int = 0, cmap: str = "inferno", alpha: float = 0.65):
        maps = [torch.as_tensor(a).detach().float().cpu() for a in attention]
        maps = [a[0] if a.ndim == 4 else a for a in maps]  # (1, heads, T, T) -> (heads, T, T)
        self.attention = torch.stack(maps)  # (L, heads, T, T)
        L, heads, T, T2 = self.attention.shape
        self.grid, self.prefix = tuple(grid), int(num_prefix_tokens)
        if T != T2 or T != self.prefix + self.grid[0] * self.grid[1]:
            raise ValueError(f"attention maps have {T}x{T2} tokens, which does not match num_prefix_tokens="
                             f"{self.prefix} plus a {self.grid[0]}x{self.grid[1]} patch grid; pass the grid of the "
                             f"image the maps were computed on (H/patch, W/patch)")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3) for display, got {image.dtype} {image.shape}")
        self.image, self.cmap, self.alpha = image, cmap, alpha
        self.num_layers, self.num_heads = L, heads

    # --- the numbers ----------------------------------------------------------------------------------------------
    def query_map(self, layer: int, head: int | str, query: tuple[int, int]) -> torch.Tensor:
        """Attention of patch ``query = (row, col)`` over the patch grid, ``(h, w)``; ``head="mean"`` averages heads.

        ``layer`` and ``head`` are 0-based. The weights on prefix (class) tokens are dropped, so a map sums to
        ``1 - weight on the class token``."""
        r, c = query
        if not (0 <= r < self.grid[0] and 0 <= c < self.grid[1]):
            raise ValueError(f"query {query} is outside the {self.grid[0]}x{self.grid[1]} patch grid")
        q = self.prefix + r * self.grid[1] + c  # token index of the query patch
        rows = self.attention[layer, :, q, self.prefix:]  # (heads, h*w)
        row = rows.mean(0) if head == "mean" else rows[head]
        return row.reshape(self.grid)  # (h*w,) -> (h, w)

    # --- the pictures ---------------------------------------------------------------------------------------------
    def overlay(self, layer: int, head: int | str, query: tuple[int, int], scale: int = 1) -> np.ndarray:
        """uint8 ``(H*scale, W*scale, 3)``: the image, darkened, with the query's attention as a heat map
        (normalised to its maximum) and the query patch outlined in cyan."""
        a = self.query_map(layer, head, query).numpy()
        a = a / max(float(a.max()), 1e-12)
        return self.blend(a, query, scale)

    def blend(self, weights: np.ndarray, query: tuple[int, int] | None = None, scale: int = 1) -> np.ndarray:
        """Blend an ``(h, w)`` map in ``[0, 1]`` over the image (nearest upsampling: one block per patch)."""
        import matplotlib

        H, W = self.image.shape[:2]
        ph, pw = H // self.grid[0], W // self.grid[1]
        heat = matplotlib.colormaps[self.cmap](np.clip(weights, 0, 1))[..., :3]  # (h, w, 3) in [0, 1]
        heat = heat.repeat(ph, 0).repeat(pw, 1)  # (h, w, 3) -> (H, W, 3)
        out = (1 - self.alpha) * (self.image / 255.0) * 0.8 + self.alpha * heat
        if query is not None:  # outline the query patch
            r, c = query
            y0, x0 = r * ph, c * pw
            box = np.zeros((H, W), dtype=bool)
            box[y0:y0 + ph, x0:x0 + pw] = True
            box[y0 + 1:y0 + ph - 1, x0 + 1:x0 + pw - 1] = False
            out[box] = (0.0, 1.0, 1.0)
        out = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
        return out.repeat(scale, 0).repeat(scale, 1) if scale > 1 else out

    # --- the widgets ----------------------------------------------------------------------------------------------
    def head_options(self) -> list[tuple[str, int | str]]:
        return [(f"head {h + 1}", h) for h in range(self.num_heads)] + [("mean of heads", "mean")]

    def static_widget(self, queries: Sequence[tuple[int, int]], query_names: Sequence[str] | None = None,
                      width: int = 240, fmt: str = "jpeg"):
        """A kernel-free explorer: every (layer, head, query) overlay is pre-rendered; selectors are jslink-ed.

        ``queries``: the query patches offered, ``(row, col)`` each (keep it to a handful: the widget stores
        ``layers x (heads + 1) x len(queries)`` small images). ``width``: display width in pixels."""
        import ipywidgets as W

        queries = [tuple(q) for q in queries]
        names = list(query_names) if query_names is not None else [f"patch ({r}, {c})" for r, c in queries]
        if len(names) != len(queries):
            raise ValueError(f"{len(names)} query names for {len(queries)} queries")
        layer_sel = W.SelectionSlider(options=[f"Z{l + 1}" for l in range(self.num_layers)], description="layer")
        head_sel = W.ToggleButtons(options=[name for name, _ in self.head_options()], description="head",
                                   style={"button_width": "auto"})
        query_sel = W.ToggleButtons(options=names, description="query", style={"button_width": "auto"})
        layout = W.Layout(width=f"{width}px", height=f"{width}px")
        layers, links = [], []
        for layer in range(self.num_layers):
            heads = []
            for _, head in self.head_options():
                images = [W.Image(value=encode_image(self.overlay(layer, head, q), fmt), format=fmt, layout=layout)
                          for q in queries]
                stack = make_stack(W, images, names)
                links.append(W.jslink((query_sel, "index"), (stack, "selected_index")))  # browser-side: no kernel
                heads.append(stack)
            stack = make_stack(W, heads, head_sel.options)
            links.append(W.jslink((head_sel, "index"), (stack, "selected_index")))
            layers.append(stack)
        view = make_stack(W, layers, layer_sel.options)
        links.append(W.jslink((layer_sel, "index"), (view, "selected_index")))
        note = html_note(W, "<small>cyan box: the query patch; colour: its attention weights (bright = high, "
                            "each map scaled to its maximum). Runs in the browser: works without a kernel.</small>"
                            + STACK_CSS)
        box = W.VBox([layer_sel, head_sel, query_sel, view, note])
        box.links = links  # the jslink widgets (saved with the widget state; kept here for inspection)
        return box

    def live_widget(self, query: tuple[int, int] = (0, 0), width: int = 240, fmt: str = "png"):
        """An explorer for any query patch. Needs a kernel: a Python callback redraws the image on every change
        (the static book shows only the initial state)."""
        import ipywidgets as W

        layer_sel = W.IntSlider(value=1, min=1, max=self.num_layers, description="layer Z")
        head_sel = W.Dropdown(options=self.head_options(), value="mean", description="head")
        row_sel = W.IntSlider(value=query[0], min=0, max=self.grid[0] - 1, description="query row")
        col_sel = W.IntSlider(value=query[1], min=0, max=self.grid[1] - 1, description="query col")
        image = W.Image(format=fmt, layout=W.Layout(width=f"{width}px", height=f"{width}px"))

        def redraw(_change=None):
            rgb = self.overlay(layer_sel.value - 1, head_sel.value, (row_sel.value, col_sel.value))
            image.value = encode_image(rgb, fmt)

        for w in (layer_sel, head_sel, row_sel, col_sel):
            w.observe(redraw, names="value")
        redraw()
        note = html_note(W, "<small>Move the sliders in a running notebook (Jupyter or Colab); the static HTML "
                            "book has no Python kernel and shows only this first picture.</small>")
        return W.HBox([W.VBox([layer_sel, head_sel, row_sel, col_sel, note]), image])


# The widget models ipywidgets 7.7.1 and 8.1 both define (7.7.1's list, from its ``_model_name`` traits; in 8 these
# names still exist). A front end draws a saved widget only if it knows every model the state names.
SHARED_MODELS = frozenset(
    "AccordionModel AudioModel BoolModel BoundedFloatTextModel BoundedIntTextModel BoxModel ButtonModel "
    "ButtonStyleModel CheckboxModel ColorPickerModel ComboboxModel ControllerAxisModel ControllerButtonModel "
    "ControllerModel DOMWidgetModel DatePickerModel DescriptionModel DescriptionStyleModel DirectionalLinkModel "
    "DropdownModel FileUploadModel FloatLogSliderModel FloatProgressModel FloatRangeSliderModel FloatSliderModel "
    "FloatTextModel GridBoxModel HBoxModel HTMLMathModel HTMLModel ImageModel IntProgressModel IntRangeSliderModel "
    "IntSliderModel IntTextModel LabelModel LayoutModel LinkModel OutputModel PasswordModel PlayModel "
    "ProgressStyleModel RadioButtonsModel SelectModel SelectMultipleModel SelectionRangeSliderModel "
    "SelectionSliderModel SliderStyleModel StringModel StyleModel TabModel TextModel TextareaModel "
    "ToggleButtonModel ToggleButtonsModel ToggleButtonsStyleModel VBoxModel ValidModel VideoModel WidgetModel".split())

# A Tab's bar is drawn with lumino (``lm-``) or phosphor (``p-``) classes, depending on the release.
STACK_CSS = ("<style>.setr-stack > .lm-TabBar, .setr-stack > .p-TabBar, .setr-stack > .widget-tab-bar "
             "{display: none !important}</style>")


def make_stack(W, children: list, titles: Sequence[str]):
    """A container that shows one child, chosen by its ``selected_index`` (0 at first).

    A ``Tab`` whose tab bar :data:`STACK_CSS` hides (titled, in case a page drops the CSS). ipywidgets 8's
    ``Stack`` would do the same, but ipywidgets 7 (Colab's) has no ``StackModel``: its front end could not draw
    a saved state that names one."""
    tab = W.Tab(children)
    for i, title in enumerate(titles):
        tab.set_title(i, str(title))
    tab.selected_index = 0
    tab.add_class("setr-stack")
    return tab


def html_note(W, html: str):
    """An ``Output`` widget holding ``html`` (its state carries the HTML; no 8-only ``HTMLStyleModel``)."""
    out = W.Output()
    out.outputs = ({"output_type": "display_data", "metadata": {},
                    "data": {"text/html": html, "text/plain": "(note)"}},)
    return out


def encode_image(rgb: np.ndarray, fmt: str = "png", quality: int = 85) -> bytes:
    """uint8 ``(H, W, 3)`` -> PNG or JPEG bytes (for ``ipywidgets.Image``)."""
    from PIL import Image

    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt.upper(), **({"quality": quality} if fmt == "jpeg" else {}))
    return buf.getvalue()
