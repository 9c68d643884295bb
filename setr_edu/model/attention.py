"""Multi-head self-attention (paper §3.2, Eq. (1)-(2); Vaswani et al. 2017).

For a sequence ``Z`` of shape ``(B, N, D)``, each head ``h`` computes
``softmax(Q_h K_h^T / sqrt(d)) V_h`` with ``d = D / heads``, and the heads are concatenated and projected.

Q, K and V come from one fused ``Linear(D, 3D)`` whose output rows are laid out as ``[q; k; v]``, and within each
``heads x head_dim`` (timm's and the official code's layout), so pretrained weights load without reshuffling.
Two paths compute the same thing:

* the **explicit** path, written out with ``matmul`` and ``softmax``: readable, and it can return the attention
  weights (used to draw attention maps in chapter 14);
* the **fused** path, ``torch.nn.functional.scaled_dot_product_attention``, the default: it never stores
  the ``(N, N)`` weight matrix, so it is faster and uses far less memory. Tests check the two agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))`` for ``q, k`` of shape ``(B, heads, N, d)`` -> ``(B, heads, N, N)``."""
    scale = q.shape[-1] ** -0.5
    logits = (q * scale) @ k.transpose(-2, -1)  # (B, h, N, d) @ (B, h, d, N) -> (B, h, N, N)
    return logits.softmax(dim=-1)  # each query's weights over the N keys sum to 1


class MultiHeadSelfAttention(nn.Module):
    """``(B, N, D) -> (B, N, D)``. Set ``fused = False`` (or pass ``return_attention=True``) for the explicit path."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fused = True

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x`` and split it into per-head ``q, k, v``, each ``(B, heads, N, head_dim)``."""
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3D) -> (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # -> 3 x (B, h, N, d)
        return q, k, v

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """``(B, N, D) -> (B, N, D)``; with ``return_attention=True``: ``(out, weights (B, heads, N, N))``."""
        B, N, D = x.shape
        q, k, v = self.split_heads(x)
        if self.fused and not return_attention:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d), default scale 1/sqrt(d)
            attn = None
        else:
            attn = attention_weights(q, k)  # (B, h, N, N)
            out = attn @ v  # (B, h, N, N) @ (B, h, N, d) -> (B, h, N, d)
        out = out.transpose(1, 2).reshape(B, N, D)  # (B, h, N, d) -> (B, N, h*d): concatenate the heads
        out = self.proj(out)
        return (out, attn) if return_attention else out
