"""SETR's decoders (paper §3.3), built exactly as the official code (fudan-zvg/SETR) builds them.

Every head reads encoder maps ``(B, D, H/16, W/16)`` and returns class logits at the *input* resolution
``(B, K, H, W)``. BatchNorm here is converted to SyncBatchNorm for multi-GPU training (the paper's "sync BN").

* :class:`UpHead` covers SETR-Naive, SETR-PUP and their auxiliary heads: LayerNorm, then a few
  ``conv + BN + ReLU (+ bilinear up)`` stages, a 1x1 classifier and a final bilinear upsample to the input size.
* :class:`MLANeck` + :class:`MLAHead` + :class:`MLAAuxHead` form SETR-MLA.

The official heads also build an unused ``Conv2d(512, K, 1)`` each (inherited from mmseg's ``BaseDecodeHead``); the
paper's parameter counts include it, these heads do not (see chapter 7).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def up(x: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of ``(B, C, h, w)`` to ``(B, C, *size)``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel dim of a ``(B, D, h, w)`` map: the same as LayerNorm on the ``(B, N, D)`` tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, D, h, w) -> (B, h, w, D) and back


class ConvBNReLU(nn.Sequential):
    """``Conv2d(k x k) + BatchNorm + ReLU``; ``(B, C_in, h, w) -> (B, C_out, h, w)``."""

    def __init__(self, c_in: int, c_out: int, k: int, bias: bool = True):
        super().__init__(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UpHead(nn.Module):
    """LayerNorm -> ``len(ups)`` x [conv(k) + BN + ReLU, then bilinear x ``ups[i]``] -> 1x1 classifier -> resize.

    ``(B, D, h, w) -> (B, K, H, W)`` where ``(H, W)`` is the ``out_size`` passed to ``forward``.
    The three SETR configurations (official ``VisionTransformerUpHead``):

    ===================  ======  ============  ==============================================
    head                 kernel  ups           paper / official code
    ===================  ======  ============  ==============================================
    Naive (main, aux)    1       (1,)          "1x1 conv + sync BN (w/ ReLU) + 1x1 conv"
    PUP main             3       (2, 2, 2, 1)  4 x (conv + 2x up); the last 2x is the final resize
    PUP aux              3       (4,)          conv + 4x up, classifier, then 4x to the input
    ===================  ======  ============  ==============================================
    """

    def __init__(self, in_dim: int, num_classes: int, channels: int = 256, kernel_size: int = 1,
                 ups: Sequence[int] = (1,), eps: float = 1e-6):
        super().__init__()
        self.norm = ChannelLayerNorm(in_dim, eps=eps)
        self.convs = nn.ModuleList(
            ConvBNReLU(in_dim if i == 0 else channels, channels, kernel_size) for i in range(len(ups))
        )
        self.ups = tuple(ups)
        self.cls = nn.Conv2d(channels, num_classes, 1)

    def forward(self, z: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        x = self.norm(z)  # (B, D, h, w)
        for conv, factor in zip(self.convs, self.ups):
            x = conv(x)  # (B, C, h', w')
            if factor != 1:
                x = up(x, (x.shape[-2] * factor, x.shape[-1] * factor))  # progressive upsampling
        return up(self.cls(x), out_size)  # (B, K, h', w') -> (B, K, H, W)


def naive_head(in_dim: int, num_classes: int, channels: int = 256) -> UpHead:
    """SETR-Naive (and its auxiliary heads): two 1x1 convs, then one bilinear 16x upsample."""
    return UpHead(in_dim, num_classes, channels, kernel_size=1, ups=(1,))


def pup_head(in_dim: int, num_classes: int, channels: int = 256) -> UpHead:
    """SETR-PUP: four 3x3 conv + 2x-upsample stages, H/16 -> H (the last 2x follows the classifier)."""
    return UpHead(in_dim, num_classes, channels, kernel_size=3, ups=(2, 2, 2, 1))


def pup_aux_head(in_dim: int, num_classes: int, channels: int = 256) -> UpHead:
    """PUP's auxiliary heads: one 3x3 conv stage, 4x up, classifier, 4x to the input."""
    return UpHead(in_dim, num_classes, channels, kernel_size=3, ups=(4,))


class MLANeck(nn.Module):
    """SETR-MLA's aggregation (official ``Conv_MLA``): 4 maps ``(B, D, h, w)`` -> 4 streams ``(B, C, h, w)``.

    Per tap: LayerNorm, 1x1 conv to C. Then a top-down cumulative sum (deepest first):
    ``m_4 = p_4; m_3 = m_4 + p_3; m_2 = m_3 + p_2; m_1 = m_2 + p_1``, and a 3x3 conv on each sum.
    """

    def __init__(self, in_dim: int, channels: int = 256, num_levels: int = 4, eps: float = 1e-6):
        super().__init__()
        self.norms = nn.ModuleList(ChannelLayerNorm(in_dim, eps=eps) for _ in range(num_levels))
        self.lateral = nn.ModuleList(ConvBNReLU(in_dim, channels, 1, bias=False) for _ in range(num_levels))
        self.smooth = nn.ModuleList(ConvBNReLU(channels, channels, 3, bias=False) for _ in range(num_levels))

    def forward(self, zs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        p = [lat(norm(z)) for z, norm, lat in zip(zs, self.norms, self.lateral)]  # 4 x (B, C, h, w)
        m = [None] * len(p)
        m[-1] = p[-1]
        for i in range(len(p) - 2, -1, -1):  # top-down: the deepest level flows into the shallower ones
            m[i] = m[i + 1] + p[i]
        return [conv(mi) for conv, mi in zip(self.smooth, m)]  # streams in tap order (Z6, Z12, Z18, Z24)


class MLAHead(nn.Module):
    """SETR-MLA's head: per stream two 3x3 convs (C -> C/2 -> C/2) and 4x up; concat; 3x3 classifier; resize.

    ``align_corners=True`` and ``cls_kernel=3`` follow the official code (mmsegmentation: ``False`` and 1).
    """

    def __init__(self, channels: int, num_classes: int, mla_channels: int = 128, num_levels: int = 4,
                 align_corners: bool = True, cls_kernel: int = 3):
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(ConvBNReLU(channels, mla_channels, 3, bias=False),
                          ConvBNReLU(mla_channels, mla_channels, 3, bias=False))
            for _ in range(num_levels)
        )
        self.align_corners = align_corners
        self.cls = nn.Conv2d(num_levels * mla_channels, num_classes, cls_kernel, padding=cls_kernel // 2)

    def forward(self, streams: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        outs = []
        for s, head in zip(streams, self.streams):
            x = head(s)  # (B, C, h, w) -> (B, C/2, h, w)
            outs.append(up(x, (x.shape[-2] * 4, x.shape[-1] * 4), self.align_corners))  # -> (B, C/2, 4h, 4w)
        x = torch.cat(outs, dim=1)  # (B, 4 * C/2, 4h, 4w)
        return up(self.cls(x), out_size)  # (B, K, 4h, 4w) -> (B, K, H, W)


class MLAAuxHead(nn.Module):
    """An MLA auxiliary head on one stream: 1x1 conv (no bias) to K classes, then resize. ``(B, C, h, w) -> (B, K, H, W)``."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.cls = nn.Conv2d(channels, num_classes, 1, bias=False)

    def forward(self, stream: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        return up(self.cls(stream), out_size)
