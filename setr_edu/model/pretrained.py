"""Load ImageNet-pretrained ViT weights (timm layout) into a :class:`ViTEncoder` (paper §4, "21K" pre-training).

timm and the official SETR code store a ViT as ``cls_token``, ``pos_embed``, ``patch_embed.proj.*`` and
``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.*``; ``ViTEncoder`` uses the same names, so
loading is a key-for-key copy plus one step: the position embedding is interpolated from the checkpoint's grid
(24x24 for a 384 model) to the encoder's (32x32 at 512). ``norm.*`` and ``head.*`` are dropped on purpose: SETR's
encoder has no final LayerNorm and no classifier.

Which weights the paper used: the original Google ViT-L/16 (ImageNet-21k pre-trained, fine-tuned on ImageNet-1k
at 384), file ``jx_vit_large_p16_384-b3be5167.pth``. timm 1.x no longer has a tag for that exact file, see
:data:`PAPER_WEIGHTS` and :func:`download_paper_weights`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .encoder import ViTEncoder, resize_pos_embed

# Weights of the paper's two encoders. url: the file the official code downloads; timm: the closest timm tag.
PAPER_WEIGHTS = {
    "large": dict(
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/jx_vit_large_p16_384-b3be5167.pth",
        timm="vit_large_patch16_384.augreg_in21k_ft_in1k",
        note="The official file is the original Google ViT-L/16 (in21k -> in1k @384). timm 1.x only offers the "
             "later AugReg weights for ViT-L/16-384; 'vit_large_patch16_224.orig_in21k' holds the original in21k "
             "weights at 224 (the position embedding is resized 14x14 -> 32x32 on load).",
    ),
    "base": dict(
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/jx_vit_base_p16_384-83fb41ba.pth",
        timm="vit_base_patch16_384.orig_in21k_ft_in1k",
        note="Exactly the file the official code used for T-Base.",
    ),
}

_DROPPED_PREFIXES = ("norm.", "head.", "fc_norm.", "head_dist.", "pre_logits.")


@dataclass
class LoadReport:
    """What :func:`load_timm_weights` did. ``missing``: encoder keys not in the checkpoint; ``unexpected``:
    checkpoint keys the encoder has no place for; ``dropped``: keys ignored on purpose (final norm, classifier)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    pos_embed_resized: tuple | None = None

    def __str__(self) -> str:
        s = f"loaded {len(self.loaded)} tensors; missing {self.missing or 'none'}; unexpected {self.unexpected or 'none'}"
        s += f"; dropped {len(self.dropped)} (final norm / classifier)"
        if self.pos_embed_resized:
            s += f"; pos_embed resized {self.pos_embed_resized[0]} -> {self.pos_embed_resized[1]}"
        return s


def _grid_of(num_patches: int) -> tuple[int, int]:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"checkpoint pos_embed has {num_patches} patch entries, which is not a square grid")
    return side, side


def load_timm_weights(encoder: ViTEncoder, state_dict_or_model, strict: bool = True) -> LoadReport:
    """Copy a timm ViT's weights into ``encoder``, resizing the position embedding to the encoder's grid.

    Args:
        encoder: the target :class:`ViTEncoder` (e.g. ``model.encoder``).
        state_dict_or_model: a timm ``VisionTransformer`` or its ``state_dict()`` (also the official ``.pth``
            files, optionally wrapped in ``{"model": ...}`` or ``{"state_dict": ...}``).
        strict: raise if an encoder tensor is missing from the checkpoint.

    Raises a ``ValueError`` naming the tensor when the checkpoint's architecture differs (depth, width, patch size,
    qkv bias). Uses the encoder's ``pos_resize`` mode ("bilinear" as in SETR, or "bicubic" as in timm).
    """
    sd = state_dict_or_model.state_dict() if isinstance(state_dict_or_model, nn.Module) else state_dict_or_model
    for wrapper in ("model", "state_dict"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    target = encoder.state_dict()
    report = LoadReport()

    ckpt_depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if ckpt_depth and ckpt_depth != encoder.config.depth:
        raise ValueError(f"checkpoint has {ckpt_depth} transformer blocks but the encoder has {encoder.config.depth}; "
                         f"build the matching preset (base = 12 blocks, large = 24)")
    ckpt_width = sd["cls_token"].shape[-1] if "cls_token" in sd else None
    if ckpt_width is not None and ckpt_width != encoder.config.embed_dim:
        raise ValueError(f"checkpoint is {ckpt_width} wide but the encoder is {encoder.config.embed_dim} wide; "
                         f"build the matching preset (tiny 192, small 384, base 768, large 1024)")
    new = {}
    for key, value in sd.items():
        if key.startswith(_DROPPED_PREFIXES):
            report.dropped.append(key)
            continue
        if key not in target:
            report.unexpected.append(key)
            continue
        if key == "pos_embed" and value.shape != target[key].shape:
            n_prefix = 1
            old = _grid_of(value.shape[1] - n_prefix)
            value = resize_pos_embed(value, old, encoder.grid, n_prefix, mode=encoder.pos_resize)
            report.pos_embed_resized = (old, encoder.grid)
        if value.shape != target[key].shape:
            raise ValueError(f"shape mismatch for {key!r}: checkpoint {tuple(value.shape)} vs encoder "
                             f"{tuple(target[key].shape)}; is this checkpoint for another model size or patch size?")
        new[key] = value
        report.loaded.append(key)
    report.missing = [k for k in target if k not in new]
    if strict and report.missing:
        raise ValueError(f"checkpoint lacks {len(report.missing)} encoder tensor(s), e.g. {report.missing[:3]}; "
                         f"is it a ViT in timm's layout? (pass strict=False to load what matches)")
    encoder.load_state_dict(new, strict=False)
    return report


def download_paper_weights(encoder: str = "large", cache_dir: str | os.PathLike | None = None) -> dict:
    """Download the official code's ImageNet-21k ViT checkpoint (needs internet) and return its state dict.

    Falls back to timm's closest tag (``PAPER_WEIGHTS[encoder]["timm"]``) via ``timm.create_model(...,
    pretrained=True)`` if the original release file is no longer reachable. Files are cached in
    ``cache_dir`` (default ``~/.cache/setr_edu``) and reused.
    """
    info = PAPER_WEIGHTS[encoder]
    cache = Path(cache_dir or Path.home() / ".cache" / "setr_edu")
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return torch.hub.load_state_dict_from_url(info["url"], model_dir=str(cache), map_location="cpu", check_hash=True)
    except Exception as err:  # network error, 404: try timm's hub copy
        import timm

        print(f"could not fetch {info['url']} ({err}); falling back to timm '{info['timm']}'. {info['note']}")
        return timm.create_model(info["timm"], pretrained=True).state_dict()
