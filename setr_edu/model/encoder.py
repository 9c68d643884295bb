"""The transformer encoder of SETR: a ViT that keeps every layer's output (paper §3.2).

``ViTEncoder`` turns an image ``(B, 3, H, W)`` into ``L`` feature maps ``Z_1 .. Z_L``, each
``(B, D, H/16, W/16)``: the raw output of every transformer layer, class token dropped, no final LayerNorm
(the official code's backbone has none; each SETR head brings its own LayerNorm).

Layer ``l`` is pre-norm (paper §3.2): ``Z = Z + MSA(LN(Z)); Z = Z + MLP(LN(Z))`` with LayerNorm eps 1e-6 and
exact (erf) GELU, as in the official code and timm.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import EncoderConfig
from .attention import MultiHeadSelfAttention
from .patch_embed import PatchEmbedding, check_image

POS_RESIZE_MODES = ("bilinear", "bicubic")


class MLP(nn.Module):
    """Position-wise feed-forward network: ``(B, N, D) -> (B, N, hidden) -> (B, N, D)`` with exact GELU."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # approximate="none": exact erf, as timm and SETR (JAX ViT: tanh)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """One pre-norm transformer layer ``(B, N, D) -> (B, N, D)``; names match timm's ``blocks.i.*`` keys."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadSelfAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # global mixing across all N tokens
        x = x + self.mlp(self.norm2(x))  # per-token transformation
        return x


def resize_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     num_prefix_tokens: int = 1, mode: str = "bilinear") -> torch.Tensor:
    """Interpolate a learned 1-D position embedding ``(1, prefix + h*w, D)`` to a new ``h' x w'`` grid.

    The patch part is viewed as a ``(1, D, h, w)`` image and resized; prefix (class) tokens are kept as they are.

    * ``"bilinear"``: SETR's official choice (``align_corners=False``, once at load time; paper §4 "we perform
      2D interpolation on the pre-trained position embeddings").
    * ``"bicubic"``: timm's choice (``antialias=True``, ``align_corners=False``). Note that antialiasing changes
      the result even when *up*-sampling: PyTorch's antialiased bicubic uses a different kernel (a = -0.5).
    """
    if mode not in POS_RESIZE_MODES:
        raise ValueError(f"pos-embed resize mode must be one of {POS_RESIZE_MODES}, got {mode!r}")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    D = grid.shape[-1]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"pos_embed has {grid.shape[1]} patch entries, which is not a {old_grid[0]}x{old_grid[1]} grid")
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], D).permute(0, 3, 1, 2)  # (1, h*w, D) -> (1, D, h, w)
    antialias = mode == "bicubic"
    grid = F.interpolate(grid, size=tuple(new_grid), mode=mode, align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], D)  # (1, D, h', w') -> (1, h'*w', D)
    return torch.cat([prefix, grid.to(pos_embed.dtype)], dim=1)


class ViTEncoder(nn.Module):
    """SETR's pure-transformer encoder.

    Args:
        config: the encoder's shape (:class:`setr_edu.config.EncoderConfig`).
        img_size: the training resolution; it fixes the size of the learned position embedding
            (``(img_size/16)^2 + 1`` entries). Other input sizes work: the embedding is resized on the fly.
        pos_resize: ``"bilinear"`` (SETR) or ``"bicubic"`` (timm) for any position-embedding resizing.
        keep_cls_token: ``True`` for Naive/PUP. SETR-MLA adds the class token and its position embedding and then
            drops it *before* the first layer (official ``vit_mla.py``), which ``keep_cls_token=False`` reproduces.

    ``forward(x)`` returns a list of ``depth`` maps ``Z_1..Z_L``, each ``(B, D, H/p, W/p)``.
    """

    def __init__(self, config: EncoderConfig, img_size: int | tuple[int, int] = 512, pos_resize: str = "bilinear",
                 keep_cls_token: bool = True):
        super().__init__()
        if pos_resize not in POS_RESIZE_MODES:
            raise ValueError(f"pos_resize must be one of {POS_RESIZE_MODES}, got {pos_resize!r}")
        self.config = config
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        p, D = config.patch_size, config.embed_dim
        if self.img_size[0] % p or self.img_size[1] % p:
            raise ValueError(f"img_size {self.img_size} must be a multiple of the patch size {p}")
        self.grid = (self.img_size[0] // p, self.img_size[1] // p)
        self.pos_resize = pos_resize
        self.keep_cls_token = keep_cls_token
        self.grad_checkpointing = False  # recompute each layer in backward to save activation memory

        self.patch_embed = PatchEmbedding(p, config.in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], D))
        self.blocks = nn.ModuleList(
            TransformerBlock(D, config.num_heads, config.mlp_ratio, config.qkv_bias, config.ln_eps)
            for _ in range(config.depth)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ViT initialisation (timm's): truncated normal 0.02 for pos-embed and Linear weights, zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.proj.weight  # LeCun-normal on the flattened patch projection, as in timm
        nn.init.trunc_normal_(w, std=math.sqrt(1.0 / w[0].numel()) / 0.87962566103423978)
        nn.init.zeros_(self.patch_embed.proj.bias)

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.keep_cls_token else 0

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding ``(1, 1 + h*w, D)`` for a token grid, resized from the stored one if needed."""
        return resize_pos_embed(self.pos_embed, self.grid, grid, num_prefix_tokens=1, mode=self.pos_resize)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch embedding + class token + position embedding: ``(B, 3, H, W) -> (B, prefix + N, D)``."""
        grid = check_image(x, self.config.in_chans, self.config.patch_size)
        tokens = self.patch_embed(x)  # (B, N, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (1, 1, D) -> (B, 1, D)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed_for(grid)  # (B, 1 + N, D)
        if not self.keep_cls_token:
            tokens = tokens[:, 1:]  # SETR-MLA: the class token never enters the transformer
        return tokens, grid

    def to_map(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, prefix + N, D) -> (B, D, h, w)``: drop the class token and fold the sequence back into a grid."""
        patches = tokens[:, self.num_prefix_tokens:]  # (B, N, D)
        return patches.unflatten(1, grid).permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w), a view (no copy)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` -> every layer's output as a map: ``depth`` tensors ``(B, D, H/p, W/p)``."""
        tokens, grid = self.embed(x)
        maps = []
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
            maps.append(self.to_map(tokens, grid))  # Z_l
        return maps

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's attention weights, each ``(B, heads, T, T)`` with ``T = prefix + N`` (explicit path)."""
        tokens, _ = self.embed(x)
        maps = []
        for block in self.blocks:
            h, attn = block.attn(block.norm1(tokens), return_attention=True)
            maps.append(attn)
            tokens = tokens + h
            tokens = tokens + block.mlp(block.norm2(tokens))
        return maps
