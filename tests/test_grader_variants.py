"""Graders against hand-written student solutions in other styles (issue 15), none taken from the instructor
notebooks: every *wrong* variant must be rejected with the hint that names its real cause, every *valid* one
accepted with full marks. The mistakes named in the instructor guide's list must all be among the wrong variants.

Each variant is source code executed like a student notebook; ``expect`` is ``None`` for a valid variant, else
words its report must contain.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

from setr_edu import checks

ROOT = Path(__file__).resolve().parents[1]
PRELUDE = """
import math
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
import setr_edu
from setr_edu.engine.metrics import SegmentationMetric
"""
V = []  # (id, call, source, expect)


def variant(vid: str, call: str, expect: str | None, source: str) -> None:
    V.append((vid, call, textwrap.dedent(source), expect))


# ------------------------------------------------------------------------------------------------- A1 patchify
variant("patchify-unfold", "check_patchify(patchify)", None, """
def patchify(x, patch_size):
    return nn.Unfold(patch_size, stride=patch_size)(x).transpose(1, 2)
""")
variant("patchify-loops", "check_patchify(patchify)", None, """
def patchify(x, patch_size):
    p = patch_size
    B, C, H, W = x.shape
    rows = [x[:, :, i:i + p, j:j + p].reshape(B, -1) for i in range(0, H, p) for j in range(0, W, p)]
    return torch.stack(rows, dim=1)
""")
variant("patchify-einsum-numpy", "check_patchify(patchify)", None, """
def patchify(x, patch_size):
    B, C, H, W = x.shape
    p = patch_size
    a = x.numpy().reshape(B, C, H // p, p, W // p, p)
    a = np.einsum("bchpwq->bhwcpq", a)
    return torch.from_numpy(np.ascontiguousarray(a)).reshape(B, -1, C * p * p)
""")
variant("patchify-3-channels", "check_patchify(patchify)", "is a size (channels, heads", """
def patchify(x, patch_size):
    B, _, H, W = x.shape
    p = patch_size
    t = x.reshape(B, 3, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(B, -1, 3 * p * p)
""")
variant("patchify-col-major", "check_patchify(patchify)", "column-major", """
def patchify(x, patch_size):
    B, C, H, W = x.shape
    p = patch_size
    t = x.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5)
    return t.reshape(B, -1, C * p * p)
""")
variant("patchify-in-place", "check_patchify(patchify)", "modifies its input in place", """
def patchify(x, patch_size):
    x -= x.mean()  # "normalise" the image first, in place
    x += x.mean()
    return F.unfold(x, patch_size, stride=patch_size).transpose(1, 2)
""")

# ------------------------------------------------------------------------------------------ A1 patch embedding
variant("embed-conv", "check_patch_embedding(MyPatchEmbedding)", None, """
class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)
""")
variant("embed-einsum", "check_patch_embedding(MyPatchEmbedding)", None, """
def patchify(x, p):
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)

class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.p = patch_size
        self.proj = nn.Linear(in_chans * patch_size ** 2, embed_dim)
    def forward(self, x):
        return torch.einsum("bnk,dk->bnd", patchify(x, self.p), self.proj.weight) + self.proj.bias
""")
variant("embed-3-channels", "check_patch_embedding(MyPatchEmbedding)", "take C from in_chans", """
class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)
""")
variant("embed-detached", "check_patch_embedding(MyPatchEmbedding)", "backward pass differs", """
class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
    def forward(self, x):
        return F.conv2d(x, self.proj.weight.detach(), self.proj.bias.detach(),
                        stride=self.proj.stride).flatten(2).transpose(1, 2)
""")
variant("embed-bad-patchify-costs-once", "check_patch_embedding(MyPatchEmbedding)", "fix the earlier part first", """
def patchify(x, p):  # column-major: part 1 is wrong, part 2 must not pay for it
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5).reshape(B, -1, C * p * p)

class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(in_chans * patch_size ** 2, embed_dim)
    def forward(self, x):
        return self.proj(patchify(x, self.patch_size))
""")

# ------------------------------------------------------------------------------------------------------ A2 sdp
variant("sdp-einsum", "check_scaled_dot_product(scaled_dot_product)", None, """
def scaled_dot_product(q, k, v):
    s = torch.einsum("bhnd,bhmd->bhnm", q, k) / q.shape[-1] ** 0.5
    w = torch.exp(s - s.amax(-1, keepdim=True))
    w = w / w.sum(-1, keepdim=True)
    return torch.einsum("bhnm,bhmd->bhnd", w, v), w
""")
variant("sdp-scale-q", "check_scaled_dot_product(scaled_dot_product)", None, """
def scaled_dot_product(q, k, v):
    w = F.softmax((q * q.size(-1) ** -0.5) @ k.mT, dim=3)
    return torch.matmul(w, v), w
""")
variant("sdp-in-place", "check_scaled_dot_product(scaled_dot_product)", "modifies its input in place", """
def scaled_dot_product(q, k, v):
    q /= math.sqrt(q.shape[-1])
    w = (q @ k.transpose(-2, -1)).softmax(-1)
    return w @ v, w
""")
variant("sdp-times-sqrt", "check_scaled_dot_product(scaled_dot_product)", "multiplied by sqrt(d)", """
def scaled_dot_product(q, k, v):
    w = (q @ k.transpose(-2, -1) * math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v, w
""")
variant("sdp-dim-2", "check_scaled_dot_product(scaled_dot_product)", "the queries, dim=-2", """
def scaled_dot_product(q, k, v):
    w = (q @ k.transpose(2, 3) / math.sqrt(q.shape[3])).softmax(2)
    return w @ v, w
""")

# ------------------------------------------------------------------------------------------------ A2 attention
ATTN_INIT = """
class MyAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
"""
variant("attn-chunk-loop", "check_attention(MyAttention)", None, ATTN_INIT + """
    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, N, D)
        d = self.head_dim
        outs = []
        for h in range(self.num_heads):
            sl = slice(h * d, (h + 1) * d)
            w = (q[..., sl] @ k[..., sl].transpose(1, 2) / d ** 0.5).softmax(-1)
            outs.append(w @ v[..., sl])
        return self.proj(torch.cat(outs, dim=-1))
""")
variant("attn-einsum", "check_attention(MyAttention)", None, ATTN_INIT + """
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, -1).unbind(2)  # (B, N, h, d)
        w = torch.einsum("bnhd,bmhd->bhnm", q, k).mul(self.head_dim ** -0.5).softmax(-1)
        return self.proj(torch.einsum("bhnm,bmhd->bnhd", w, v).reshape(B, N, D))
""")
variant("attn-fused-sdpa", "check_attention(MyAttention)", None, ATTN_INIT + """
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
""")
variant("attn-dropout-eval", "check_attention(MyAttention)", "F.dropout(x, p) drops even in eval mode", ATTN_INIT + """
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        w = F.dropout((q @ k.transpose(-2, -1) / self.head_dim ** 0.5).softmax(-1), 0.1)
        return self.proj((w @ v).transpose(1, 2).reshape(B, N, D))
""")
variant("attn-per-head-slices", "check_attention(MyAttention)", "wrong slices of qkv(x)", ATTN_INIT + """
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, self.num_heads, 3, -1).permute(3, 0, 2, 1, 4)
        w = (q @ k.transpose(-2, -1) / self.head_dim ** 0.5).softmax(-1)
        return self.proj((w @ v).transpose(1, 2).reshape(B, N, D))
""")
variant("attn-4-heads", "check_attention(MyAttention)", "not with 2 heads", ATTN_INIT + """
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, 4, D // 4).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-2, -1) / (D // 4) ** 0.5).softmax(-1)
        return self.proj((w @ v).transpose(1, 2).reshape(B, N, D))
""")
variant("attn-bad-sdp-costs-once", "check_attention(MyAttention)", "fix the earlier part first", """
def scaled_dot_product(q, k, v):
    w = (q @ k.transpose(-2, -1)).softmax(-1)  # unscaled: part 1 is wrong
    return w @ v, w
""" + ATTN_INIT + """
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out, _ = scaled_dot_product(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))
""")

# ----------------------------------------------------------------------------------------------------- A3 block
def block(norm: str = "nn.LayerNorm(dim, eps=1e-6)", act: str = "nn.GELU()", forward: str = "") -> str:
    return f"""
class MyBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = {norm}
        self.attn = setr_edu.MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = {norm}
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), {act}, nn.Linear(int(dim * mlp_ratio), dim))
    def forward(self, x):
""" + textwrap.indent(textwrap.dedent(forward or """
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
"""), "        ")


variant("block-sequential-mlp", "check_transformer_block(MyBlock)", None, block())
variant("block-own-layernorm", "check_transformer_block(MyBlock)", None, """
class LN(nn.Module):  # a hand-written LayerNorm
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim)), eps
    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias
""" + block(norm="LN(dim)", act="nn.Identity()", forward="""
    x = x + self.attn(self.norm1(x))
    h = self.mlp[0](self.norm2(x))
    return x + self.mlp[2](0.5 * h * (1 + torch.erf(h / math.sqrt(2))))
"""))
variant("block-eps-1e-5", "check_transformer_block(MyBlock)", "eps=1e-5", block(norm="nn.LayerNorm(dim)"))
variant("block-tanh-gelu", "check_transformer_block(MyBlock)", "tanh approximation",
        block(act="nn.GELU(approximate='tanh')"))
variant("block-no-activation", "check_transformer_block(MyBlock)", "no activation between fc1 and fc2",
        block(act="nn.Identity()"))
variant("block-in-place-residual", "check_transformer_block(MyBlock)", "modifies its input in place", block(forward="""
    x += self.attn(self.norm1(x))
    x += self.mlp(self.norm2(x))
    return x
"""))
variant("block-dropout-eval", "check_transformer_block(MyBlock)", "F.dropout(x, p) drops even in eval mode",
        block(forward="""
    x = x + F.dropout(self.attn(self.norm1(x)), 0.1)
    return x + F.dropout(self.mlp(self.norm2(x)), 0.1)
"""))
variant("block-hidden-4x", "check_transformer_block(MyBlock)", "mlp_ratio=2.0",
        block().replace("int(dim * mlp_ratio)", "4 * dim"))
variant("block-detached-residual", "check_transformer_block(MyBlock)", "backward pass differs", block(forward="""
    x = x.detach() + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))
"""))

# ------------------------------------------------------------------------------------------------ A3 pos embed
variant("pos-valid-permute", "check_pos_embed_resize(resize_pos_embed)", None, """
def resize_pos_embed(pos_embed, old_grid, new_grid):
    (h, w), (h2, w2) = old_grid, new_grid
    grid = pos_embed[0, 1:].T.reshape(1, -1, h, w)
    grid = F.interpolate(grid, size=(h2, w2), mode="bilinear", align_corners=False)
    return torch.cat([pos_embed[:, :1], grid.reshape(1, -1, h2 * w2).transpose(1, 2)], dim=1)
""")
variant("pos-nearest", "check_pos_embed_resize(resize_pos_embed)", "nearest-neighbour", """
def resize_pos_embed(pos_embed, old_grid, new_grid):
    (h, w), (h2, w2) = old_grid, new_grid
    grid = pos_embed[0, 1:].T.reshape(1, -1, h, w)
    grid = F.interpolate(grid, size=(h2, w2), mode="nearest")
    return torch.cat([pos_embed[:, :1], grid.reshape(1, -1, h2 * w2).transpose(1, 2)], dim=1)
""")
variant("pos-1d", "check_pos_embed_resize(resize_pos_embed)", "interpolated in 1-D", """
def resize_pos_embed(pos_embed, old_grid, new_grid):
    seq = F.interpolate(pos_embed[:, 1:].transpose(1, 2), size=new_grid[0] * new_grid[1], mode="linear",
                        align_corners=False)
    return torch.cat([pos_embed[:, :1], seq.transpose(1, 2)], dim=1)
""")

variant("pos-upsample-module", "check_pos_embed_resize(resize_pos_embed)", None, """
def resize_pos_embed(pos_embed, old_grid, new_grid):
    cls, grid = pos_embed.split([1, pos_embed.shape[1] - 1], dim=1)
    img = grid.unflatten(1, tuple(old_grid)).permute(0, 3, 1, 2)  # (1, D, h, w)
    img = nn.Upsample(size=tuple(new_grid), mode="bilinear", align_corners=False)(img)
    return torch.cat([cls, img.flatten(2).transpose(1, 2)], dim=1)
""")

# ------------------------------------------------------------------------------------------------- A4 decoders
DEC_HELPERS = """
class LN2d(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=1e-6)
    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
"""
PUP_SPLIT = DEC_HELPERS + """
class MyHead(nn.Module):  # convs and BatchNorms in separate lists: same-shaped biases must not be swapped
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        self.norm = LN2d(in_dim)
        self.convs = nn.ModuleList(nn.Conv2d(in_dim if i == 0 else channels, channels, 3, padding=1)
                                   for i in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(4))
        self.cls = nn.Conv2d(channels, num_classes, 1)
    def forward(self, z, out_size):
        x = self.norm(z)
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = F.relu(bn(conv(x)))
            if i < 3:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.interpolate(self.cls(x), size=out_size, mode="bilinear", align_corners=False)
"""
variant("pup-separate-lists", "check_decoder(MyHead, kind='pup')", None, PUP_SPLIT)
variant("pup-fixed-16x", "check_decoder(MyHead, kind='pup')", "need not be a multiple",
        PUP_SPLIT.replace("size=out_size, mode", "scale_factor=2, mode"))
variant("pup-align-corners", "check_decoder(MyHead, kind='pup')", "2x upsampling uses align_corners=True",
        PUP_SPLIT.replace('scale_factor=2, mode="bilinear", align_corners=False',
                          'scale_factor=2, mode="bilinear", align_corners=True'))
variant("pup-bn-always-eval", "check_decoder(MyHead, kind='pup')", "not in train mode",
        PUP_SPLIT.replace("x = F.relu(bn(conv(x)))",
                          "x = F.relu(F.batch_norm(conv(x), bn.running_mean, bn.running_var, bn.weight, "
                          "bn.bias, False, 0.1, bn.eps))"))
variant("pup-no-relu", "check_decoder(MyHead, kind='pup')", "ReLU after each conv + BN is missing",
        PUP_SPLIT.replace("x = F.relu(bn(conv(x)))", "x = bn(conv(x))"))
variant("pup-dropout-eval", "check_decoder(MyHead, kind='pup')", "F.dropout(x, p) drops even in eval mode",
        PUP_SPLIT.replace("return F.interpolate(self.cls(x)", "return F.interpolate(self.cls(F.dropout2d(x, 0.1))"))
NAIVE_REVERSED = DEC_HELPERS + """
class MyHead(nn.Module):  # layers defined in the reverse order of the table
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.reduce = nn.Conv2d(in_dim, channels, 1)
        self.norm = LN2d(in_dim)
    def forward(self, z, out_size):
        x = F.relu(self.bn(self.reduce(self.norm(z))))
        return F.interpolate(self.classifier(x), size=tuple(out_size), mode="bilinear", align_corners=False)
"""
variant("naive-reversed-definition", "check_decoder(MyHead, kind='naive')", None, NAIVE_REVERSED)
variant("naive-no-layernorm", "check_decoder(MyHead, kind='naive')", "not normalised first",
        NAIVE_REVERSED.replace("self.reduce(self.norm(z))", "self.reduce(z)"))
MLA_LEVELS = DEC_HELPERS + """
def cbr(i, o, k):
    return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())

class Level(nn.Module):  # everything of one level together
    def __init__(self, D, C):
        super().__init__()
        self.norm, self.lateral, self.smooth = LN2d(D), cbr(D, C, 1), cbr(C, C, 3)
        self.stream = nn.Sequential(cbr(C, C // 2, 3), cbr(C // 2, C // 2, 3))

class MyHead(nn.Module):
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        self.levels = nn.ModuleList(Level(in_dim, channels) for _ in range(4))
        self.cls = nn.Conv2d(2 * channels, num_classes, 3, padding=1)
    def forward(self, zs, out_size):
        p = [lv.lateral(lv.norm(z)) for lv, z in zip(self.levels, zs)]
        m, acc = [None] * 4, 0
        for i in (3, 2, 1, 0):
            acc = acc + p[i]
            m[i] = acc
        outs = [F.interpolate(lv.stream(lv.smooth(mi)), scale_factor=4, mode="bilinear", align_corners=True)
                for lv, mi in zip(self.levels, m)]
        return F.interpolate(self.cls(torch.cat(outs, 1)), size=out_size, mode="bilinear", align_corners=False)
"""
variant("mla-grouped-per-level", "check_decoder(MyHead, kind='mla')", None, MLA_LEVELS)
variant("mla-grouped-no-topdown", "check_decoder(MyHead, kind='mla')", "top-down sum",
        MLA_LEVELS.replace("acc = acc + p[i]", "acc = p[i]"))
variant("mla-grouped-concat-reversed", "check_decoder(MyHead, kind='mla')", "concatenated deepest first",
        MLA_LEVELS.replace("torch.cat(outs, 1)", "torch.cat(outs[::-1], 1)"))

# ------------------------------------------------------------------------------------------------------- A5
variant("conf-loops", "check_confusion_matrix(confusion_matrix)", None, """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if t != ignore_index:
            conf[t, p] += 1
    return conf
""")
variant("conf-index-put", "check_confusion_matrix(confusion_matrix)", None, """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    t, p = target[keep].long(), pred[keep].long()
    return conf.index_put_((t, p), torch.ones_like(t), accumulate=True)
""")
variant("conf-numpy", "check_confusion_matrix(confusion_matrix)", None, """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    t, p = target.numpy().ravel().astype(np.int64), pred.numpy().ravel().astype(np.int64)
    keep = t != ignore_index
    return torch.from_numpy(np.bincount(num_classes * t[keep] + p[keep], minlength=num_classes ** 2)
                            .reshape(num_classes, num_classes))
""")
variant("conf-uint8-overflow", "check_confusion_matrix(confusion_matrix)", "uint8 arithmetic overflows", """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    return torch.bincount(num_classes * target[keep] + pred[keep],
                          minlength=num_classes ** 2)[:num_classes ** 2].reshape(num_classes, num_classes)
""")
variant("conf-255-hard-coded", "check_confusion_matrix(confusion_matrix)", "is 255 hard-coded", """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != 255
    idx = num_classes * target[keep].long() + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)
""")
variant("conf-in-place-mask", "check_confusion_matrix(confusion_matrix)", "modifies its input in place", """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    target[~keep] = 0  # "clean" the labels first, in the caller's tensor
    pred[~keep] = num_classes  # counted in a column that is cut off below
    idx = (num_classes + 1) * target.long() + pred.long()
    conf = torch.bincount(idx.flatten(), minlength=(num_classes + 1) ** 2).reshape(num_classes + 1, -1)
    conf[0] -= 0
    return conf[:num_classes, :num_classes]
""")
variant("iou-numpy", "check_iou(iou_from_confusion)", None, """
def iou_from_confusion(conf):
    c = np.asarray(conf, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return torch.from_numpy(np.diag(c) / (c.sum(0) + c.sum(1) - np.diag(c)))
""")
variant("iou-loops", "check_iou(iou_from_confusion)", None, """
def iou_from_confusion(conf):
    K = len(conf)
    out = []
    for c in range(K):
        tp = float(conf[c][c])
        union = float(sum(conf[c])) + float(sum(conf[r][c] for r in range(K))) - tp
        out.append(tp / union if union else float("nan"))
    return torch.tensor(out)
""")
variant("iou-dice", "check_iou(iou_from_confusion)", "Dice", """
def iou_from_confusion(conf):
    conf = conf.double()
    return 2 * conf.diag() / (conf.sum(0) + conf.sum(1))
""")
MIOU_OK = """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    idx = num_classes * target[keep].long() + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)

def iou_from_confusion(conf):
    conf = conf.double()
    return conf.diag() / (conf.sum(0) + conf.sum(1) - conf.diag())

def mean_iou(pairs, num_classes, ignore_index=255):
    conf = sum(confusion_matrix(p, t, num_classes, ignore_index) for p, t in pairs)
    return float(torch.nanmean(iou_from_confusion(conf)))
"""
variant("miou-sum-of-matrices", "check_miou(mean_iou)", None, MIOU_OK)
variant("miou-own-loops", "check_miou(mean_iou)", None, """
def mean_iou(pairs, num_classes, ignore_index=255):
    inter, union = [0] * num_classes, [0] * num_classes
    for p, t in pairs:
        keep = t != ignore_index
        p, t = p[keep].long(), t[keep].long()
        for c in range(num_classes):
            inter[c] += int(((p == c) & (t == c)).sum())
            union[c] += int(((p == c) | (t == c)).sum())
    ious = [i / u for i, u in zip(inter, union) if u]
    return sum(ious) / len(ious)
""")
variant("miou-ignore-not-passed", "check_miou(mean_iou)", "give ignore_index to confusion_matrix",
        MIOU_OK.replace("confusion_matrix(p, t, num_classes, ignore_index)", "confusion_matrix(p, t, num_classes)"))
variant("miou-bad-confusion-costs-once", "check_miou(mean_iou)", "fix the earlier part first",
        MIOU_OK.replace("keep = target != ignore_index", "keep = target >= 0"))
variant("miou-per-image", "check_miou(mean_iou)", "averaged per image", MIOU_OK.replace(
    "conf = sum(confusion_matrix(p, t, num_classes, ignore_index) for p, t in pairs)\n"
    "    return float(torch.nanmean(iou_from_confusion(conf)))",
    "return sum(float(torch.nanmean(iou_from_confusion(confusion_matrix(p, t, num_classes, ignore_index))))\n"
    "               for p, t in pairs) / len(pairs)"))

# ------------------------------------------------------------------------------------------------------- A6
WORST = """
def worst_images(model, dataset, k=4):
    model.eval()  # the grader's model has a BatchNorm and a dropout: train mode would change the scores
    scores = []
    with torch.no_grad():
        for i in range(len(dataset)):
            x, y = dataset[i]
            pred = model(x[None]).argmax(1)[0]
            keep = y != 255
            conf = torch.bincount(dataset.num_classes * y[keep] + pred[keep],
                                  minlength=dataset.num_classes ** 2).reshape(dataset.num_classes, -1).double()
            iou = conf.diag() / (conf.sum(0) + conf.sum(1) - conf.diag())
            scores.append(float(torch.nanmean(iou)))
    return ORDER
"""
variant("worst-argsort", "check_worst_images(worst_images)", None,
        WORST.replace("ORDER", "np.argsort(np.array(scores), kind='stable')[:k].tolist()"))
variant("worst-segmentation-metric", "check_worst_images(worst_images)", None, """
def worst_images(model, dataset, k=4):
    model.eval()
    def score(i):
        x, y = dataset[i]
        metric = SegmentationMetric(dataset.num_classes)
        with torch.no_grad():
            metric.update(model(x.unsqueeze(0)), y.unsqueeze(0))
        return metric.compute()["mIoU"]
    return sorted(range(len(dataset)), key=score)[:k]
""")
variant("worst-by-accuracy", "check_worst_images(worst_images)", "ranked by pixel accuracy", WORST.replace(
    "scores.append(float(torch.nanmean(iou)))", "scores.append(float(conf.diag().sum() / conf.sum()))").replace(
    "ORDER", "sorted(range(len(scores)), key=scores.__getitem__)[:k]"))
variant("worst-right-set-best-first", "check_worst_images(worst_images)", "right images, but not worst first",
        WORST.replace("ORDER", "sorted(sorted(range(len(scores)), key=scores.__getitem__)[:k], "
                               "key=scores.__getitem__, reverse=True)"))
variant("worst-best-instead", "check_worst_images(worst_images)", "best images, not the worst",
        WORST.replace("ORDER", "sorted(range(len(scores)), key=lambda i: -scores[i])[:k]"))


# ------------------------------------------------------------------------------------------------------ tests
def run_variant(call: str, source: str):
    ns: dict = {"__name__": "student_notebook"}
    exec(PRELUDE, ns)
    exec(compile(source, "<student cell>", "exec"), ns)
    return eval(call[:-1] + ", verbose=False)", {**vars(checks), **ns})


def first_hint(report: str) -> str:
    """The first [FAIL] line and the hint lines right under it: the student's first piece of advice."""
    lines = report.splitlines()
    i = next((i for i, line in enumerate(lines) if line.startswith("  [FAIL]")), None)
    if i is None:
        return ""
    out = [lines[i]]
    for line in lines[i + 1:]:
        if not line.startswith("         "):
            break
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("vid,call,source,expect", V, ids=[v[0] for v in V])
def test_variant(vid, call, source, expect):
    result = run_variant(call, source)
    report = result.report()
    if expect is None:
        assert result.passed and result.score == result.max_score, report
        assert "more than one mistake" not in report
    elif "fix the earlier part first" in expect:  # a bug in an earlier part is not charged again here
        assert result.passed and expect in report, report
    else:  # rejected, and the FIRST hint names the cause
        assert not result.passed and result.score < result.max_score, report
        assert expect in first_hint(report), report


def test_variant_counts():
    """The counts quoted in the notes: at least 25 wrong and 20 valid hand-written variants."""
    wrong = [v for v in V if v[3] is not None]
    valid = [v for v in V if v[3] is None]
    assert len(wrong) >= 25 and len(valid) >= 20, (len(wrong), len(valid))


GUIDE = ROOT / "book" / "assignments" / "index.md"


def guide_mistakes() -> list[str]:
    """The variant identifiers named in the guide's list of recognised mistakes."""
    text = GUIDE.read_text()
    block = text.split("<!-- BEGIN RECOGNISED MISTAKES -->")[1].split("<!-- END RECOGNISED MISTAKES -->")[0]
    return re.findall(r"`([a-z][a-z0-9]*(?:-[a-z0-9]+)+)`", block)


def test_guide_lists_only_recognised_mistakes():
    """Every mistake the instructor guide says the graders recognise is a wrong variant tested above (or in
    tests/test_assignments.py), so the list cannot claim more than the graders do."""
    ids = guide_mistakes()
    wrong = {v[0] for v in V if v[3] is not None and "earlier part" not in v[3]}
    assert len(ids) >= 20 and set(ids) <= wrong, sorted(set(ids) - wrong)
