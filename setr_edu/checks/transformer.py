"""Assignment A3: a transformer layer and SETR's position-embedding interpolation (paper §3.2, §4).

Interfaces the assignment asks for:

* ``MyBlock(dim, num_heads, mlp_ratio=4.0)``, layers defined in this order: ``norm1`` (LayerNorm, eps 1e-6),
  ``attn`` (with ``qkv`` and ``proj`` as in A2), ``norm2``, ``mlp`` (``fc1``: D -> int(D * mlp_ratio), exact GELU,
  ``fc2``: back to D); ``forward(x)``: ``(B, N, D) -> (B, N, D)``, pre-norm. Reference:
  :class:`setr_edu.TransformerBlock`.
* ``resize_pos_embed(pos_embed, old_grid, new_grid)``: ``(1, 1 + h*w, D) -> (1, 1 + h'*w', D)``; the class token's
  entry is kept, the ``h x w`` grid is resized bilinearly (``align_corners=False``) as a 2-D image.
  Reference: :func:`setr_edu.resize_pos_embed`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.encoder import TransformerBlock, resize_pos_embed
from .align import align, config_differences, describe_params, first_divergence, forward_on
from .attention import SCALE, attention_variant
from .compare import DROPOUT_HINT, close, diagnose, eval_outputs, grade_backward, is_reference, randomize_, seeded
from .result import CheckResult, Grader


def block_variant(ref: TransformerBlock, x: torch.Tensor, attn_norm="pre", mlp_norm="pre", attn_res="yes",
                  mlp_res="yes", res_input="raw", act="gelu", norm2="own", eps="1e-6",
                  scale="sqrt_d") -> torch.Tensor:
    """The reference block's forward with the mistakes of :data:`BLOCK_AXES` switched on."""
    act_fn = {"gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "relu": F.relu,
              "none": lambda t: t}[act]

    def ln(m):
        return lambda t: F.layer_norm(t, m.normalized_shape, m.weight, m.bias, float(eps))

    def sublayer(x, f, norm, place, res, which):
        keep = float(res == "yes")
        if place == "pre":
            h = norm(x)
            return (h if res_input in ("both", which) else x) * keep + f(h)
        if place == "post":
            return norm(x * keep + f(x))
        return x * keep + f(x)  # no LayerNorm

    mlp = lambda t: ref.mlp.fc2(act_fn(ref.mlp.fc1(t)))  # noqa: E731
    attn = ref.attn if scale == "sqrt_d" else lambda t: attention_variant(ref.attn, t, scale=scale)
    x = sublayer(x, attn, ln(ref.norm1), attn_norm, attn_res, "attn")
    return sublayer(x, mlp, ln(ref.norm2 if norm2 == "own" else ref.norm1), mlp_norm, mlp_res, "mlp")


BLOCK_AXES = {
    "attn_norm": {"pre": None,
                  "post": "around attention, LayerNorm comes after the residual sum (post-norm, as in the original "
                          "Transformer). ViT and SETR are pre-norm: x = x + attn(norm1(x)).",
                  "none": "no LayerNorm before attention: x = x + attn(norm1(x))."},
    "mlp_norm": {"pre": None,
                 "post": "around the MLP, LayerNorm comes after the residual sum (post-norm, as in the original "
                         "Transformer). ViT and SETR are pre-norm: x = x + mlp(norm2(x)).",
                 "none": "no LayerNorm before the MLP: x = x + mlp(norm2(x))."},
    "attn_res": {"yes": None, "no": "the residual connection around attention is missing: x = x + attn(norm1(x))."},
    "mlp_res": {"yes": None, "no": "the residual connection around the MLP is missing: x = x + mlp(norm2(x))."},
    "res_input": {"raw": None,
                  "both": "the residuals add the normalised input; add the block's raw input: "
                          "x = x + attn(norm1(x)), not h = norm1(x); x = h + attn(h) (the same for the MLP).",
                  "attn": "the residual around attention adds the normalised input; add the raw input: "
                          "x = x + attn(norm1(x)), not h = norm1(x); x = h + attn(h).",
                  "mlp": "the residual around the MLP adds the normalised input; add the raw input: "
                         "x = x + mlp(norm2(x)), not h = norm2(x); x = h + mlp(h)."},
    "act": {"gelu": None,
            "gelu_tanh": "the MLP uses the tanh approximation of GELU; ViT uses the exact (erf) GELU: nn.GELU().",
            "relu": "the MLP uses ReLU; ViT uses GELU: nn.GELU().",
            "none": "the MLP has no activation between fc1 and fc2 (two Linears in a row are one linear map): "
                    "put the exact GELU, nn.GELU(), between them."},
    "norm2": {"own": None, "shared": "norm1 is applied before the MLP as well; the MLP has its own LayerNorm, norm2."},
    "scale": {k: (v and f"inside the attention, {v}") for k, v in SCALE.items() if k != "times"},
    "eps": {"1e-6": None,
            "1e-5": "the LayerNorms use eps=1e-5 (PyTorch's default); ViT and SETR use eps=1e-6: "
                    "nn.LayerNorm(dim, eps=1e-6). On inputs of small variance the difference is large."},
}


# What comes just before each layer of the reference block (for a stage-by-stage diagnosis).
BEFORE = {
    "norm1": "nothing: norm1 must get the block's input x as it is",
    "attn.qkv": "norm1: attention works on norm1(x)",
    "attn.proj": "the attention itself: the head split, softmax(q k^T / sqrt(d)) over the keys and the merge of "
                 "the heads (check it with check_attention)",
    "norm2": "the first residual sum, x = x + attn(norm1(x))",
    "mlp.fc1": "norm2: the MLP works on norm2(x)",
    "mlp.fc2": "the exact GELU between fc1 and fc2",
}


def block_stages(student, ref, al, run) -> str:
    """Where the student's block stops reproducing the reference's, in plain words."""
    last, first, why = first_divergence(student, ref, al, run)
    if first is None:
        return ("stage by stage: every layer gets the same input as in the reference, so look after fc2: the "
                "second residual sum, x = x + mlp(norm2(x))") if last else ""
    done = f"your layers reproduce the reference up to its `{last}`; " if last else ""
    if why == "unused":
        return f"stage by stage: {done}the layer that stands for the reference's `{first}` is never called."
    return f"stage by stage: {done}the input of the reference's `{first}` differs: look at {BEFORE[first]}."


def check_transformer_block(student_cls, verbose: bool = True) -> CheckResult:
    """Grade ``student_cls(dim, num_heads, mlp_ratio)`` against :class:`setr_edu.TransformerBlock`."""
    g = Grader("A3", "transformer_block", "transformer block", tests=6, verbose=verbose)
    with g.run():
        if is_reference(student_cls, TransformerBlock):
            g.fail("this is setr_edu's own TransformerBlock: write your own module", stop=True)
        D, heads = 24, 4
        ref = randomize_(TransformerBlock(D, heads, mlp_ratio=4.0)).eval()
        student = student_cls(dim=D, num_heads=heads, mlp_ratio=4.0).eval()
        x = seeded(2, 7, D, seed=5)
        al = align(student, ref, forward_on(x))
        g.test(al.ok and not al.missing, f"{student_cls.__name__}(dim={D}, num_heads={heads}, mlp_ratio=4.0) has "
               "the layers norm1, attn (qkv, proj), norm2, mlp (fc1, fc2)",
               f"{student_cls.__name__}(dim={D}, num_heads={heads}, mlp_ratio=4.0) does not have the expected layers",
               al.messages() + [f"expected, in this order: {describe_params(ref)}"], stop=True)
        g.explain = lambda: config_differences(student, al, ref)
        out, deterministic = eval_outputs(g, student, x, what="forward changes x")
        with torch.no_grad():
            want = ref(x)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (B, N, D)",
               f"output shape {got}, expected (B, N, D) = {tuple(want.shape)}", stop=True)
        if close(out, want):
            g.ok("values match setr_edu.TransformerBlock with the same weights")
        elif not deterministic:
            g.fail("values differ from setr_edu.TransformerBlock, and from one call to the next", DROPOUT_HINT,
                   stop=True)
        else:
            with torch.no_grad():
                bugs = config_differences(student, al, ref) + (diagnose(
                    out, BLOCK_AXES, lambda **o: block_variant(ref, x, **o)) or [])
                where = block_stages(student, ref, al, forward_on(x))
            g.fail("values differ from setr_edu.TransformerBlock with the same weights",
                   (bugs or []) + [where] if bugs or where else
                   "check the order: x = x + attn(norm1(x)); x = x + mlp(norm2(x))", stop=True)
        x_low = seeded(2, 7, D, seed=7, scale=1e-3)  # tokens of small variance: LayerNorm's eps matters
        with torch.no_grad():
            out_low, want_low = g.call(student, x_low, what="forward changes x"), ref(x_low)
            bugs = None if close(out_low, want_low) else (config_differences(student, al, ref) + (diagnose(
                out_low, BLOCK_AXES, lambda **o: block_variant(ref, x_low, **o)) or []))
        g.test(close(out_low, want_low), "also right on tokens of small variance (std 0.001)",
               "right on the first input but not on tokens of small variance (std 0.001)",
               bugs or "LayerNorm divides by sqrt(var + eps): check eps=1e-6 in both norms")
        ref2 = randomize_(TransformerBlock(16, 2, mlp_ratio=2.0), seed=1).eval()
        student2 = student_cls(dim=16, num_heads=2, mlp_ratio=2.0).eval()
        x2 = seeded(1, 5, 16, seed=6)
        al2 = align(student2, ref2, forward_on(x2))
        with torch.no_grad():
            good = al2.ok and not al2.missing and close(g.call(student2, x2, what="forward changes x"), ref2(x2))
        g.test(good, "also right for dim=16, 2 heads, mlp_ratio=2.0 (nothing hard-coded)",
               "right for the first example but not for dim=16, num_heads=2, mlp_ratio=2.0",
               "the MLP's hidden width is int(dim * mlp_ratio); take every size from the arguments")
        grade_backward(g, student, ref, x)
    return g.finish()


def pos_variant(pos: torch.Tensor, old: tuple, new: tuple, layout="grid", mode="bilinear",
                align="false") -> torch.Tensor:
    """The reference resize with the mistakes of :data:`POS_AXES` switched on."""
    cls, grid = pos[:, :1], pos[:, 1:]
    D = pos.shape[-1]
    kw = {} if mode == "nearest" else {"align_corners": align == "true"}
    if layout == "flat":  # 1-D interpolation of the sequence
        seq = grid.transpose(1, 2)  # (1, h*w, D) -> (1, D, h*w)
        seq = F.interpolate(seq, size=new[0] * new[1], mode="linear" if mode == "bilinear" else mode, **kw)
        return torch.cat([cls, seq.transpose(1, 2)], dim=1)
    (h, w), (h2, w2) = (old, new) if layout == "grid" else ((old[1], old[0]), (new[1], new[0]))
    img = grid.reshape(1, h, w, D).permute(0, 3, 1, 2)  # (1, h*w, D) -> (1, D, h, w)
    img = F.interpolate(img, size=(h2, w2), mode=mode, **kw)
    return torch.cat([cls, img.permute(0, 2, 3, 1).reshape(1, h2 * w2, D)], dim=1)


POS_AXES = {
    "layout": {"grid": None,
               "transposed": "the grid is read as (w, h): old_grid and new_grid are (rows, columns) = (h, w), and "
                             "the sequence is row-major, so view it as (1, h, w, D).",
               "flat": "the flat sequence was interpolated in 1-D; the embedding is a 2-D grid: view the h*w "
                       "entries as a (1, D, h, w) image and resize that (paper §4, '2D interpolation')."},
    "mode": {"bilinear": None, "bicubic": "bicubic interpolation; SETR's official code uses bilinear.",
             "nearest": "nearest-neighbour interpolation; SETR uses bilinear (mode='bilinear')."},
    "align": {"false": None, "true": "align_corners=True; SETR resizes with align_corners=False."},
}


def check_pos_embed_resize(fn, verbose: bool = True) -> CheckResult:
    """Grade ``fn(pos_embed, old_grid, new_grid)`` against :func:`setr_edu.resize_pos_embed` (bilinear)."""
    g = Grader("A3", "pos_embed_resize", "position-embedding resize", tests=4, verbose=verbose)
    with g.run():
        if fn is resize_pos_embed:
            g.fail("this is setr_edu's own resize_pos_embed: write your own function", stop=True)
        for i, (old, new, D) in enumerate([((3, 5), (4, 7), 6), ((4, 4), (2, 3), 5), ((2, 6), (5, 3), 4)]):
            pos = seeded(1, 1 + old[0] * old[1], D, seed=10 + i)
            want = resize_pos_embed(pos, old, new, num_prefix_tokens=1, mode="bilinear")
            out = g.call(fn, pos, old, new, what="resize_pos_embed changes pos_embed")
            if i == 0:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                hint = ("the class token's entry is missing: keep pos_embed[:, :1] unchanged and put it in front"
                        if got == (1, new[0] * new[1], D) else
                        "one class-token entry + h' * w' grid entries" if isinstance(out, torch.Tensor) else "")
                g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (1, 1 + h'*w', D)",
                       f"output shape {got}, expected (1, 1 + h'*w', D) = {tuple(want.shape)} for a {old} -> "
                       f"{new} grid", hint, stop=True)
            if close(out, want):
                g.ok(f"values match setr_edu.resize_pos_embed for a {old[0]}x{old[1]} -> {new[0]}x{new[1]} grid")
                continue
            bugs = diagnose(out, POS_AXES, lambda **o: pos_variant(pos, old, new, **o))
            if not bugs and isinstance(out, torch.Tensor) and out.shape == want.shape \
                    and not torch.equal(out[:, :1], pos[:, :1]):
                bugs = ["the class token's entry changed: it has no grid position, copy it as it is"]
            g.fail(f"values differ from setr_edu.resize_pos_embed for a {old[0]}x{old[1]} -> {new[0]}x{new[1]} "
                   "grid", bugs or "view the grid as (1, D, h, w), F.interpolate(..., mode='bilinear', "
                                   "align_corners=False), and flatten back row-major")
    return g.finish()
