"""A hand-written stand-in for mmsegmentation's SETR, to test setr_edu's mmsegmentation converter.

It follows mmsegmentation's modules as they are written (mmseg/models/backbones/vit.py, decode_heads/
setr_up_head.py, setr_mla_head.py, fcn_head.py, necks/mla_neck.py and configs/_base_/models/setr_*.py), with
the same module names, so its ``state_dict()`` has mmsegmentation's keys. Attention is
``torch.nn.MultiheadAttention`` (batch_first), as in mmcv's ``MultiheadAttention`` wrapper; convs are mmcv's
``ConvModule`` (conv without bias, then BN named ``bn``, then ReLU). Eval-mode forward only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvModule(nn.Module):
    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Upsample(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        size = [int(t * self.scale) for t in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Attn(nn.Module):  # mmcv MultiheadAttention: .attn is torch's, identity added outside
    def __init__(self, D, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(D, heads, batch_first=True)

    def forward(self, x, identity):
        return identity + self.attn(x, x, x, need_weights=False)[0]


class FFN(nn.Module):
    def __init__(self, D, hidden):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(D, hidden), nn.GELU(), nn.Dropout(0.0)),
                                    nn.Linear(hidden, D), nn.Dropout(0.0))

    def forward(self, x, identity):
        return identity + self.layers(x)


class Layer(nn.Module):
    def __init__(self, D, heads, mlp_ratio):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D, eps=1e-6), nn.LayerNorm(D, eps=1e-6)
        self.attn, self.ffn = Attn(D, heads), FFN(D, int(D * mlp_ratio))

    def forward(self, x):
        x = self.attn(self.ln1(x), identity=x)
        return self.ffn(self.ln2(x), identity=x)


class PatchEmbed(nn.Module):
    def __init__(self, D, p, bias=True):
        super().__init__()
        self.projection = nn.Conv2d(3, D, p, p, bias=bias)  # mmsegmentation >= 1.2.0: patch_bias=False

    def forward(self, x):
        x = self.projection(x)
        return x.flatten(2).transpose(1, 2), x.shape[-2:]


class VisionTransformer(nn.Module):
    def __init__(self, img_size, D, depth, heads, out_indices, with_cls_token, p=16, mlp_ratio=4, patch_bias=True):
        super().__init__()
        self.patch_embed = PatchEmbed(D, p, patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // p) ** 2 + 1, D))
        self.layers = nn.ModuleList(Layer(D, heads, mlp_ratio) for _ in range(depth))
        self.out_indices, self.with_cls_token, self.grid = out_indices, with_cls_token, img_size // p

    def forward(self, x):
        x, hw = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        pos = self.pos_embed
        if x.shape[1] != pos.shape[1]:  # VisionTransformer.resize_pos_embed, interpolate_mode='bilinear'
            g = self.grid
            grid = pos[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=tuple(hw), mode="bilinear", align_corners=False)
            pos = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], 1)
        x = x + pos
        if not self.with_cls_token:
            x = x[:, 1:]
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                out = x[:, 1:] if self.with_cls_token else x
                outs.append(out.reshape(x.shape[0], hw[0], hw[1], -1).permute(0, 3, 1, 2))
        return outs


class SETRUPHead(nn.Module):
    def __init__(self, D, channels, K, in_index, num_convs, up_scale, kernel_size):
        super().__init__()
        self.in_index = in_index
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.up_convs = nn.ModuleList(
            nn.Sequential(ConvModule(D if i == 0 else channels, channels, kernel_size), Upsample(up_scale))
            for i in range(num_convs))
        self.conv_seg = nn.Conv2d(channels, K, 1)

    def forward(self, feats):
        x = feats[self.in_index]
        n, c, h, w = x.shape
        x = self.norm(x.reshape(n, c, h * w).transpose(2, 1)).transpose(1, 2).reshape(n, c, h, w)
        for up_conv in self.up_convs:
            x = up_conv(x)
        return self.conv_seg(x)


class MLAModule(nn.Module):
    def __init__(self, D, C):
        super().__init__()
        self.channel_proj = nn.ModuleList(ConvModule(D, C, 1) for _ in range(4))
        self.feat_extract = nn.ModuleList(ConvModule(C, C, 3) for _ in range(4))

    def forward(self, inputs):
        feats = [conv(x) for x, conv in zip(inputs, self.channel_proj)][::-1]  # [p5, p4, p3, p2]
        mids = []
        for f in feats:
            mids.append(f if not mids else mids[-1] + f)
        return [conv(m) for m, conv in zip(mids, self.feat_extract)]  # deepest first


class MLANeck(nn.Module):
    def __init__(self, D, C):
        super().__init__()
        self.norm = nn.ModuleList(nn.LayerNorm(D, eps=1e-6) for _ in range(4))
        self.mla = MLAModule(D, C)

    def forward(self, inputs):
        outs = []
        for x, norm in zip(inputs, self.norm):
            n, c, h, w = x.shape
            outs.append(norm(x.reshape(n, c, h * w).transpose(2, 1)).transpose(1, 2).reshape(n, c, h, w))
        return self.mla(outs)


class SETRMLAHead(nn.Module):
    def __init__(self, C, mla_channels, K):
        super().__init__()
        self.up_convs = nn.ModuleList(
            nn.Sequential(ConvModule(C, mla_channels, 3), ConvModule(mla_channels, mla_channels, 3), Upsample(4))
            for _ in range(4))
        self.conv_seg = nn.Conv2d(4 * mla_channels, K, 1)

    def forward(self, feats):
        return self.conv_seg(torch.cat([up(x) for x, up in zip(feats, self.up_convs)], dim=1))


class FCNHead(nn.Module):  # num_convs=0, concat_input=False: only the classifier
    def __init__(self, C, K, in_index):
        super().__init__()
        self.in_index, self.conv_seg = in_index, nn.Conv2d(C, K, 1)

    def forward(self, feats):
        return self.conv_seg(feats[self.in_index])


class EncoderDecoder(nn.Module):
    """mmsegmentation's SETR with configs/_base_/models/setr_{naive,pup,mla}.py (ADE20K aux heads for Naive/PUP)."""

    def __init__(self, kind, img_size=64, D=32, depth=24, heads=4, K=5, C=16, mla_channels=8, patch_bias=True):
        super().__init__()
        mla = kind == "mla"
        out = (5, 11, 17, 23) if mla else (9, 14, 19, 23)
        out = tuple(i * depth // 24 for i in out) if depth != 24 else out
        self.backbone = VisionTransformer(img_size, D, depth, heads, out, with_cls_token=not mla,
                                          patch_bias=patch_bias)
        if mla:
            self.neck = MLANeck(D, C)
            self.decode_head = SETRMLAHead(C, mla_channels, K)
            self.auxiliary_head = nn.ModuleList(FCNHead(C, K, i) for i in range(4))
        else:
            self.neck = None
            main = (4, 2, 3) if kind == "pup" else (1, 4, 1)  # num_convs, up_scale, kernel_size
            self.decode_head = SETRUPHead(D, C, K, 3, *main)
            k = 3 if kind == "pup" else 1
            self.auxiliary_head = nn.ModuleList(SETRUPHead(D, C, K, i, 2, 4, k) for i in range(3))

    def forward(self, x):
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        size = x.shape[-2:]
        resize = lambda y: F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return resize(self.decode_head(feats)), [resize(h(feats)) for h in self.auxiliary_head]


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every tensor random (BN statistics too), so a wrong mapping cannot hide behind a default value."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        elif name.endswith(("ln1.weight", "ln2.weight", "norm.weight", "bn.weight")) or ".norm." in name and "weight" in name:
            t.copy_(1 + 0.3 * torch.randn(t.shape, generator=g))
        elif t.dim() > 1 and "pos_embed" not in name and "cls_token" not in name:
            t.copy_(torch.randn(t.shape, generator=g) / (t[0].numel() ** 0.5))
        else:
            t.copy_(0.3 * torch.randn(t.shape, generator=g))
    return model.eval()
