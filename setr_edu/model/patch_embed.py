"""Image to sequence: split an image into 16x16 patches and project each to a D-dim token (paper §3.2).

SETR treats an image ``x`` of shape ``(B, 3, H, W)`` as a sequence of ``HW/256`` patches. Each patch is
flattened (``3*16*16 = 768`` numbers) and linearly projected to ``D`` channels. A convolution with kernel =
stride = patch size *is* that linear projection applied to every non-overlapping patch, which is how the
official code and timm implement it; :meth:`~setr_edu.PatchEmbedding.forward_unfold` spells out the linear form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_image(x: torch.Tensor, in_chans: int, patch_size: int) -> tuple[int, int]:
    """Validate an image batch and return its token grid ``(H/p, W/p)``; raise a helpful error otherwise."""
    if x.dim() != 4:
        raise ValueError(f"expected an image batch of shape (B, C, H, W), got a {x.dim()}-d tensor of shape {tuple(x.shape)}")
    _, c, h, w = x.shape
    if c != in_chans:
        hint = " (a grayscale image? repeat it to 3 channels with x.expand(-1, 3, -1, -1))" if c == 1 else ""
        hint = " (channels-last data? permute with x.permute(0, 3, 1, 2))" if x.shape[-1] == in_chans else hint
        raise ValueError(f"expected {in_chans} input channels, got {c} (input shape {tuple(x.shape)}){hint}")
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the patch size {patch_size}; resize or pad it to "
            f"{-(-h // patch_size) * patch_size}x{-(-w // patch_size) * patch_size} (e.g. setr_edu.data pads with 0)"
        )
    return h // patch_size, w // patch_size


class PatchEmbedding(nn.Module):
    """Non-overlapping patch projection: ``(B, C, H, W) -> (B, N, D)`` with ``N = (H/p) * (W/p)``.

    Parameters are named like timm's (``proj.weight`` of shape ``(D, C, p, p)``, ``proj.bias``) so that
    pretrained ViT weights load directly.
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 1024):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> tokens ``(B, N, D)``, patches in row-major order (one strided convolution)."""
        check_image(x, self.in_chans, self.patch_size)
        x = self.proj(x)  # (B, C, H, W) -> (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, D, H/p, W/p) -> (B, N, D), patches in row-major order

    def forward_unfold(self, x: torch.Tensor) -> torch.Tensor:
        """The same map written as "flatten each patch, then one Linear layer" (equal to ``forward``)."""
        check_image(x, self.in_chans, self.patch_size)
        p = self.patch_size
        patches = F.unfold(x, kernel_size=p, stride=p)  # (B, C, H, W) -> (B, C*p*p, N), channel-major per patch
        weight = self.proj.weight.flatten(1)  # (D, C, p, p) -> (D, C*p*p), same channel-major order
        return F.linear(patches.transpose(1, 2), weight, self.proj.bias)  # (B, N, C*p*p) @ W^T -> (B, N, D)
