"""Graders against a second, held-out set of student solutions (issue 22), written as students write them and
none taken from the instructor notebooks or from ``tests/test_grader_variants.py``.

* every *wrong* one is rejected, and the FIRST hint under the first failing test names its cause or the exact
  place (the test asserts a key phrase of that hint, not only the verdict);
* every *valid* one, in another style (a LayerNorm with ``gamma``/``beta`` or ``g``/``b``, an attention whose
  scale is a registered buffer, A5 in plain Python with ``statistics.mean``...), gets full marks;
* the counts in a report's header match the lines a student sees, also when a check stops early.
"""
from __future__ import annotations

import re
import textwrap

import pytest

from test_grader_variants import first_hint, run_variant

H = []  # (id, call, source, expect): expect None = valid, else a phrase the first hint must contain


def case(vid: str, call: str, expect: str | None, source: str) -> None:
    H.append((vid, call, textwrap.dedent(source), expect))


# ------------------------------------------------------------------------------------------------- A1 patchify
case("patchify-one-reshape", "check_patchify(patchify)", "single reshape", """
def patchify(x, patch_size):
    B, C, H, W = x.shape
    return x.reshape(B, (H // patch_size) * (W // patch_size), C * patch_size ** 2)
""")
case("patchify-unfold-no-transpose", "check_patchify(patchify)", "swap the last two dimensions", """
def patchify(x, patch_size):
    return F.unfold(x, kernel_size=patch_size, stride=patch_size)
""")
case("patchify-overlapping", "check_patchify(patchify)", "stride = patch size", """
def patchify(x, patch_size):
    return F.unfold(x, kernel_size=patch_size).transpose(1, 2)
""")

# ------------------------------------------------------------------------------------------ A1 patch embedding
EMBED = """
class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
    def forward(self, x):
        x = self.proj(x)  # (B, D, h, w)
        return x.flatten(2).transpose(1, 2)
"""
case("embed-conv-padding-1", "check_patch_embedding(MyPatchEmbedding)", "padding=1",
     EMBED.replace("stride=patch_size)", "stride=patch_size, padding=1)"))
case("embed-no-flatten", "check_patch_embedding(MyPatchEmbedding)", "still a (B, D, h, w) map",
     EMBED.replace("return x.flatten(2).transpose(1, 2)", "return x"))
case("embed-conv-no-stride", "check_patch_embedding(MyPatchEmbedding)", "stride = patch size",
     EMBED.replace(", stride=patch_size)", ")"))
case("embed-linear-hwc", "check_patch_embedding(MyPatchEmbedding)", "(row, column, channel)", """
class MyPatchEmbedding(nn.Module):
    def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.p = patch_size
        self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)
    def forward(self, x):
        B, C, H, W = x.shape
        p = self.p
        t = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
        return self.proj(t.reshape(B, -1, p * p * C))
""")

# ------------------------------------------------------------------------------------------------------ A2 sdp
case("sdp-divide-by-d", "check_scaled_dot_product(scaled_dot_product)", "divided by d", """
def scaled_dot_product(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], dim=-1)
    return w @ v, w
""")
case("sdp-k-q", "check_scaled_dot_product(scaled_dot_product)", "k q^T", """
def scaled_dot_product(q, k, v):
    w = torch.softmax(k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w
""")
case("sdp-weights-first", "check_scaled_dot_product(scaled_dot_product)", "in this order", """
def scaled_dot_product(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w, w @ v
""")
case("sdp-scale-after-softmax", "check_scaled_dot_product(scaled_dot_product)", "after the softmax", """
def scaled_dot_product(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1), dim=-1) / math.sqrt(q.shape[-1])
    return w @ v, w
""")

# ------------------------------------------------------------------------------------------------ A2 attention
ATTN = """
class MyAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(out)
"""
case("attn-v-from-k", "check_attention(MyAttention)", "v is taken from the k slice",
     ATTN.replace("qkv[0], qkv[1], qkv[2]", "qkv[0], qkv[1], qkv[1]"))
case("attn-q-k-swapped", "check_attention(MyAttention)", "q is taken from the k slice",
     ATTN.replace("qkv[0], qkv[1], qkv[2]", "qkv[1], qkv[0], qkv[2]"))
case("attn-no-proj", "check_attention(MyAttention)", "`proj` is not applied",
     ATTN.replace("return self.proj(out)", "return out"))
case("attn-scale-full-dim", "check_attention(MyAttention)", "sqrt(D)",
     ATTN.replace("self.head_dim ** -0.5", "D ** -0.5"))
case("attn-softmax-queries", "check_attention(MyAttention)", "the queries, dim=-2",
     ATTN.replace("attn.softmax(dim=-1)", "attn.softmax(dim=2)"))
case("attn-merge-permute", "check_attention(MyAttention)", "merged back along the wrong axis",
     ATTN.replace("(attn @ v).transpose(1, 2).reshape(B, N, D)", "(attn @ v).permute(0, 2, 3, 1).reshape(B, N, D)"))
case("attn-scale-buffer", "check_attention(MyAttention)", None,
     ATTN.replace("self.proj = nn.Linear(dim, dim)",
                  "self.proj = nn.Linear(dim, dim)\n"
                  "        self.register_buffer('scale', torch.tensor(self.head_dim ** -0.5))")
     .replace("* self.head_dim ** -0.5", "* self.scale"))

# ----------------------------------------------------------------------------------------------------- A3 block
BLOCK = """
class MyBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = setr_edu.MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return x
"""
case("block-mlp-residual-normed", "check_transformer_block(MyBlock)", "residual around the MLP",
     BLOCK.replace("x = x + self.fc2(F.gelu(self.fc1(self.norm2(x))))",
                   "h = self.norm2(x)\n        x = h + self.fc2(F.gelu(self.fc1(h)))"))
case("block-mlp-residual-missing", "check_transformer_block(MyBlock)", "residual connection around the MLP",
     BLOCK.replace("x = x + self.fc2(", "x = self.fc2("))
case("block-norm1-twice", "check_transformer_block(MyBlock)", "norm1 is applied before the MLP as well",
     BLOCK.replace("self.fc1(self.norm2(x))", "self.fc1(self.norm1(x))"))
case("block-attn-without-norm", "check_transformer_block(MyBlock)", "no LayerNorm before attention",
     BLOCK.replace("self.attn(self.norm1(x))", "self.attn(x)"))
case("block-mlp-post-norm", "check_transformer_block(MyBlock)", "around the MLP, LayerNorm comes after",
     BLOCK.replace("x = x + self.fc2(F.gelu(self.fc1(self.norm2(x))))",
                   "x = self.norm2(x + self.fc2(F.gelu(self.fc1(x))))"))
case("block-own-attention-unscaled", "check_transformer_block(MyBlock)", "not scaled", """
class Attn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.h = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((w @ v).transpose(1, 2).reshape(B, N, D))
""" + BLOCK.replace("setr_edu.MultiHeadSelfAttention(dim, num_heads)", "Attn(dim, num_heads)"))
case("block-own-layernorm-eps-1e-5", "check_transformer_block(MyBlock)", "eps", """
class LayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma, self.beta = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.eps = 1e-5
    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, unbiased=False, keepdim=True)
        return self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta
""" + BLOCK.replace("nn.LayerNorm(dim, eps=1e-6)", "LayerNorm(dim)"))
GAMMA_LN = """
class LayerNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.eps = eps
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta
"""
case("block-layernorm-gamma-beta", "check_transformer_block(MyBlock)", None,
     GAMMA_LN + BLOCK.replace("nn.LayerNorm(dim, eps=1e-6)", "LayerNorm(dim)"))
case("block-layernorm-b-g", "check_transformer_block(MyBlock)", None, """
class LN(nn.Module):  # shift registered before scale, one-letter names
    def __init__(self, d):
        super().__init__()
        self.b = nn.Parameter(torch.zeros(d))
        self.g = nn.Parameter(torch.ones(d))
    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.g, self.b, 1e-6)
""" + BLOCK.replace("nn.LayerNorm(dim, eps=1e-6)", "LN(dim)"))
case("block-attention-scale-buffer", "check_transformer_block(MyBlock)", None, """
class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.register_buffer("scale", torch.tensor((dim // heads) ** -0.5))
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, N, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        return self.out((w @ v).transpose(1, 2).reshape(B, N, D))
""" + BLOCK.replace("setr_edu.MultiHeadSelfAttention(dim, num_heads)", "Attention(dim, num_heads)"))
case("block-renamed-reordered", "check_transformer_block(MyBlock)", None, """
class MyBlock(nn.Module):  # the MLP defined first, everything renamed
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.ff = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ln_attn = nn.LayerNorm(dim, eps=1e-6)
        self.mhsa = setr_edu.MultiHeadSelfAttention(dim, num_heads)
    def forward(self, x):
        x = x + self.mhsa(self.ln_attn(x))
        return x + self.ff(x)
""")

# ------------------------------------------------------------------------------------------------ A3 pos embed
POS = """
def resize_pos_embed(pos_embed, old_grid, new_grid):
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    D = grid.shape[-1]
    grid = grid.reshape(1, *old_grid, D).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bilinear", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, -1, D)], dim=1)
"""
case("pos-bicubic", "check_pos_embed_resize(resize_pos_embed)", "bicubic",
     POS.replace('mode="bilinear"', 'mode="bicubic"'))
case("pos-cls-zeroed", "check_pos_embed_resize(resize_pos_embed)", "class token's entry changed",
     POS.replace("torch.cat([cls,", "torch.cat([torch.zeros_like(cls),"))

# ------------------------------------------------------------------------------------------------- A4 decoders
PUP = """
class MyHead(nn.Module):
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim, eps=1e-6)
        self.stages = nn.ModuleList()
        for i in range(4):
            self.stages.append(nn.Sequential(
                nn.Conv2d(in_dim if i == 0 else channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels), nn.ReLU()))
        self.cls = nn.Conv2d(channels, num_classes, 1)
    def forward(self, z, out_size):
        x = self.norm(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.cls(x)
        return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
"""
case("pup-bn-eps-1e-3", "check_decoder(MyHead, kind='pup')", "eps=1e-3",
     PUP.replace("nn.BatchNorm2d(channels)", "nn.BatchNorm2d(channels, eps=1e-3)"))
case("pup-conv-padding-0", "check_decoder(MyHead, kind='pup')", "padding=0",
     PUP.replace("3, padding=1)", "3)"))
case("pup-upsample-after-every-stage", "check_decoder(MyHead, kind='pup')", "no upsampling",
     PUP.replace("if i < 3:", "if i < 4:"))
case("pup-relu-before-bn", "check_decoder(MyHead, kind='pup')", "the BatchNorm after the first conv",
     PUP.replace("nn.BatchNorm2d(channels), nn.ReLU()", "nn.ReLU(), nn.BatchNorm2d(channels)"))
case("pup-layernorm-gamma-beta", "check_decoder(MyHead, kind='pup')", None, GAMMA_LN + PUP.replace(
    "nn.LayerNorm(in_dim, eps=1e-6)", "LayerNorm(in_dim)"))
NAIVE = """
class MyHead(nn.Module):
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        self.ln = nn.LayerNorm(in_dim, eps=1e-6)
        self.conv1 = nn.Conv2d(in_dim, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, num_classes, 1)
    def forward(self, z, out_size):
        x = self.ln(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = F.relu(self.bn(self.conv1(x)))
        return F.interpolate(self.conv2(x), size=out_size, mode="bilinear", align_corners=False)
"""
case("naive-bn-not-applied", "check_decoder(MyHead, kind='naive')", "BatchNorm after each conv is missing",
     NAIVE.replace("F.relu(self.bn(self.conv1(x)))", "F.relu(self.conv1(x))"))
case("naive-final-nearest", "check_decoder(MyHead, kind='naive')", "final resize to out_size is nearest",
     NAIVE.replace('mode="bilinear", align_corners=False)', 'mode="nearest")'))
case("naive-classifier-3x3", "check_decoder(MyHead, kind='naive')", "stands where the assignment has the classifier",
     NAIVE.replace("nn.Conv2d(channels, num_classes, 1)", "nn.Conv2d(channels, num_classes, 3, padding=1)"))
case("naive-gamma-beta-hand-written-bn", "check_decoder(MyHead, kind='naive')", None, """
class LN2d(nn.Module):  # LayerNorm over channels with g / b
    def __init__(self, d):
        super().__init__()
        self.g, self.b = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))
    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = x.var(1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-6) * self.g[:, None, None] + self.b[:, None, None]

class MyHead(nn.Module):
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        self.norm = LN2d(in_dim)
        self.reduce = nn.Sequential(nn.Conv2d(in_dim, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(True))
        self.classify = nn.Conv2d(channels, num_classes, kernel_size=1)
    def forward(self, z, out_size):
        return F.interpolate(self.classify(self.reduce(self.norm(z))), out_size, mode="bilinear")
""")
MLA = """
class LN2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

def cbr(i, o, k):
    return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())

class MyHead(nn.Module):
    def __init__(self, in_dim, num_classes, channels=256):
        super().__init__()
        C = channels
        self.norms = nn.ModuleList(LN2d(in_dim, eps=1e-6) for _ in range(4))
        self.lat = nn.ModuleList(cbr(in_dim, C, 1) for _ in range(4))
        self.smooth = nn.ModuleList(cbr(C, C, 3) for _ in range(4))
        self.streams = nn.ModuleList(nn.Sequential(cbr(C, C // 2, 3), cbr(C // 2, C // 2, 3)) for _ in range(4))
        self.cls = nn.Conv2d(2 * C, num_classes, 3, padding=1)
    def forward(self, zs, out_size):
        p = [lat(norm(z)) for lat, norm, z in zip(self.lat, self.norms, zs)]
        for i in (2, 1, 0):
            p[i] = p[i] + p[i + 1]
        outs = [F.interpolate(st(sm(x)), scale_factor=4, mode="bilinear", align_corners=True)
                for st, sm, x in zip(self.streams, self.smooth, p)]
        return F.interpolate(self.cls(torch.cat(outs, dim=1)), size=out_size, mode="bilinear", align_corners=False)
"""
case("mla-valid", "check_decoder(MyHead, kind='mla')", None, MLA)
case("mla-stream-up-2x", "check_decoder(MyHead, kind='mla')", "4x bilinear upsampling",
     MLA.replace("scale_factor=4", "scale_factor=2"))
case("mla-no-layernorm", "check_decoder(MyHead, kind='mla')", "not normalised first",
     MLA.replace("lat(norm(z))", "lat(z)"))

# ------------------------------------------------------------------------------------------------------- A5
CONF = """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    idx = num_classes * target[keep].long() + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)
"""
case("conf-mask-on-pred", "check_confusion_matrix(confusion_matrix)", "mask is taken on the prediction",
     CONF.replace("keep = target != ignore_index", "keep = pred != ignore_index"))
case("conf-clamp-ignore", "check_confusion_matrix(confusion_matrix)", "are counted", """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    t = target.long().clamp(0, num_classes - 1)  # keep the indices in range
    idx = num_classes * t.flatten() + pred.long().flatten()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)
""")
case("conf-keep-below-k", "check_confusion_matrix(confusion_matrix)", "target != ignore_index",
     CONF.replace("keep = target != ignore_index", "keep = target < num_classes"))
case("conf-plain-python", "check_confusion_matrix(confusion_matrix)", None, """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    conf = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if t != ignore_index:
            conf[t][p] += 1
    return conf
""")
case("iou-precision", "check_iou(iou_from_confusion)", "precision", """
def iou_from_confusion(conf):
    conf = conf.double()
    return conf.diag() / conf.sum(0)
""")
case("iou-union-double", "check_iou(iou_from_confusion)", "counts the intersection twice", """
def iou_from_confusion(conf):
    conf = conf.double()
    return conf.diag() / (conf.sum(0) + conf.sum(1))
""")
case("iou-integer-division", "check_iou(iou_from_confusion)", "integer division", """
def iou_from_confusion(conf):
    tp = conf.diag()
    return tp // (conf.sum(0) + conf.sum(1) - tp)
""")
case("iou-plain-list", "check_iou(iou_from_confusion)", None, """
def iou_from_confusion(conf):
    rows = [list(map(int, r)) for r in conf]
    out = []
    for c in range(len(rows)):
        tp = rows[c][c]
        union = sum(rows[c]) + sum(r[c] for r in rows) - tp
        out.append(tp / union if union > 0 else float("nan"))
    return out
""")
PLAIN_A5 = """
import statistics

def confusion_matrix(pred, target, num_classes, ignore_index=255):
    conf = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if t != ignore_index:
            conf[t][p] += 1
    return conf

def iou_from_confusion(conf):
    out = []
    for c in range(len(conf)):
        tp = conf[c][c]
        union = sum(conf[c]) + sum(row[c] for row in conf) - tp
        out.append(tp / union if union else math.nan)
    return out

def mean_iou(pairs, num_classes, ignore_index=255):
    total = [[0] * num_classes for _ in range(num_classes)]
    for pred, target in pairs:
        conf = confusion_matrix(pred, target, num_classes, ignore_index)
        total = [[a + b for a, b in zip(r1, r2)] for r1, r2 in zip(total, conf)]
    return statistics.mean(v for v in iou_from_confusion(total) if not math.isnan(v))
"""
case("miou-plain-python-statistics", "check_miou(mean_iou)", None, PLAIN_A5)
case("miou-numpy-parts", "check_miou(mean_iou)", None, """
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    t, p = np.asarray(target).ravel(), np.asarray(pred).ravel()
    keep = t != ignore_index
    return np.bincount(num_classes * t[keep].astype(np.int64) + p[keep], minlength=num_classes ** 2
                       ).reshape(num_classes, num_classes)

def iou_from_confusion(conf):
    tp = np.diag(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (conf.sum(0) + conf.sum(1) - tp)

def mean_iou(pairs, num_classes, ignore_index=255):
    conf = sum(confusion_matrix(p, t, num_classes, ignore_index) for p, t in pairs)
    return float(np.nanmean(iou_from_confusion(conf)))
""")
case("miou-percent", "check_miou(mean_iou)", "not a percentage", PLAIN_A5.replace(
    "return statistics.mean(", "return 100 * statistics.mean("))
case("miou-last-image-only", "check_miou(mean_iou)", "only the last image", PLAIN_A5.replace(
    "total = [[a + b for a, b in zip(r1, r2)] for r1, r2 in zip(total, conf)]", "total = conf"))

# ------------------------------------------------------------------------------------------------------- A6
WORST = """
def worst_images(model, dataset, k=4):
    model.eval()
    scores = []
    for i in range(len(dataset)):
        x, y = dataset[i]
        with torch.no_grad():
            logits = model(x.unsqueeze(0))
        m = SegmentationMetric(dataset.num_classes)
        m.update(logits, y.unsqueeze(0))
        scores.append(m.compute()["mIoU"])
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    return order[:k]
"""
case("worst-no-eval", "check_worst_images(worst_images)", "model.eval()", WORST.replace("    model.eval()\n", ""))
case("worst-k-hard-coded", "check_worst_images(worst_images)", "k is an argument", WORST.replace("order[:k]", "order[:4]"))
case("worst-absent-as-zero", "check_worst_images(worst_images)", "count as IoU 0", """
def worst_images(model, dataset, k=4):
    model.eval()
    scores = []
    with torch.no_grad():
        for i in range(len(dataset)):
            x, y = dataset[i]
            m = SegmentationMetric(dataset.num_classes)
            m.update(model(x[None]), y[None])
            scores.append(float(torch.nan_to_num(torch.as_tensor(m.compute()["IoU"])).mean()))
    return sorted(range(len(scores)), key=scores.__getitem__)[:k]
""")
case("worst-inference-mode-numpy", "check_worst_images(worst_images)", None, """
def worst_images(model, dataset, k=4):
    model.eval()
    vals = np.empty(len(dataset))
    with torch.inference_mode():
        for i, (x, y) in enumerate(dataset):
            metric = SegmentationMetric(dataset.num_classes)
            metric.update(model(x[None]).argmax(1), y[None])
            vals[i] = metric.compute()["mIoU"]
    return [int(i) for i in np.argsort(vals, kind="stable")[:k]]
""")


# ------------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("vid,call,source,expect", H, ids=[h[0] for h in H])
def test_holdout(vid, call, source, expect):
    result = run_variant(call, source)
    report = result.report()
    if expect is None:
        assert result.passed and result.score == result.max_score, report
        return
    assert not result.passed and result.score < result.max_score, report
    assert expect in first_hint(report), report


def test_holdout_counts():
    """At least 30 new wrong and 10 new valid solutions."""
    wrong = [h for h in H if h[3] is not None]
    assert len(wrong) >= 30 and len(H) - len(wrong) >= 10, (len(wrong), len(H) - len(wrong))


@pytest.mark.parametrize("vid", ["embed-no-flatten", "attn-v-from-k", "pup-bn-eps-1e-3", "conf-mask-on-pred"])
def test_header_counts_match_the_lines_shown(vid):
    """"k/n tests" in the header: k lines [ok], and [ok] + [FAIL] + [skip] lines add up to n, also when a check
    stops early (the tests it never ran are listed as skipped)."""
    _, call, source, _ = next(h for h in H if h[0] == vid)
    result = run_variant(call, source)
    report = result.report()
    k, n = map(int, re.search(r"(\d+)/(\d+) tests", report.splitlines()[0]).groups())
    lines = report.splitlines()[1:]
    ok = sum(line.startswith("  [ok]") for line in lines)
    fail = sum(line.startswith("  [FAIL]") for line in lines)
    skip = sum(int(m.group(1)) for line in lines for m in [re.match(r"  \[skip\] (\d+) ", line)] if m)
    assert (k, n) == (result.tests_passed, result.tests) and ok == k and ok + fail + skip == n, report
