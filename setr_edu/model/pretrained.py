"""Load ImageNet-pretrained ViT weights (timm layout) into a :class:`~setr_edu.ViTEncoder` (paper §4, "21K"
pre-training).

timm and the official SETR code store a ViT as ``cls_token``, ``pos_embed``, ``patch_embed.proj.*`` and
``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.*``; ``ViTEncoder`` uses the same names, so
loading is a key-for-key copy plus one step: the position embedding is interpolated from the checkpoint's grid
(24x24 for a 384 model) to the encoder's (32x32 at 512). ``norm.*`` and ``head.*`` are dropped on purpose: SETR's
encoder has no final LayerNorm and no classifier.

Which weights the paper used: the original Google ViT-L/16 (ImageNet-21k pre-trained, fine-tuned on ImageNet-1k
at 384), file ``jx_vit_large_p16_384-b3be5167.pth``. timm 1.x no longer has a tag for that exact file, see
:data:`PAPER_WEIGHTS` and :func:`paper_weights`. The -DeiT rows of the paper start from DeiT-B (distilled,
ImageNet-1k, 384). :func:`paper_weights` downloads the exact file and checks its SHA-256; a different checkpoint
(e.g. a timm tag) is used only when asked for by name, and the load report says which weights were loaded.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..io import file_digest, read_checkpoint
from .encoder import ViTEncoder, resize_pos_embed

# The ImageNet weights the official code starts from (its vit.py ``default_cfgs``; paper §4 and Table 2).
# ``sha256``: the full hash, or None where nobody has checked it yet (then only the 8-hex prefix that the file name
# carries is verified, and the full hash computed on download is printed so it can be pinned here).
PAPER_WEIGHTS = {
    "large": dict(
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/jx_vit_large_p16_384-b3be5167.pth",
        sha256=None,
        timm="vit_large_patch16_384.augreg_in21k_ft_in1k",
        note="The official file is the original Google ViT-L/16 (in21k -> in1k @384). timm 1.x only offers the "
             "later AugReg weights for ViT-L/16-384; 'vit_large_patch16_224.orig_in21k' holds the original in21k "
             "weights at 224 (the position embedding is resized 14x14 -> 32x32 on load).",
    ),
    "base": dict(
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/jx_vit_base_p16_384-83fb41ba.pth",
        sha256=None,
        timm="vit_base_patch16_384.orig_in21k_ft_in1k",
        note="timm's tag holds the same original Google ViT-B/16 weights, re-published on the Hugging Face hub.",
    ),
    "deit": dict(  # SETR-*-DeiT (paper Tables 2, 4, 5): T-Base shape, ImageNet-1k DeiT-B distilled @384
        url="https://dl.fbaipublicfiles.com/deit/deit_base_distilled_patch16_384-d0272ac0.pth",
        sha256=None,
        timm="deit_base_distilled_patch16_384.fb_in1k",
        note="The official README links this exact file. Its distillation token and that token's position "
             "entry are dropped on load, as the official code does.",
    ),
}

_DROPPED_PREFIXES = ("norm.", "head.", "fc_norm.", "head_dist.", "pre_logits.", "dist_token")


@dataclass
class LoadReport:
    """What :func:`~setr_edu.load_timm_weights` did. ``missing``: encoder keys not in the checkpoint; ``unexpected``:
    checkpoint keys the encoder has no place for; ``dropped``: keys ignored on purpose (final norm, classifier,
    DeiT's distillation token); ``source``: which weights these are (file, hash check, or a named substitute)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    pos_embed_resized: tuple | None = None
    distillation_dropped: bool = False
    source: str = ""

    def __str__(self) -> str:
        s = f"{self.source}: " if self.source else ""
        s += f"loaded {len(self.loaded)} tensors; missing {self.missing or 'none'}; unexpected {self.unexpected or 'none'}"
        s += f"; dropped {len(self.dropped)} (final norm / classifier)"
        if self.distillation_dropped:
            s += "; DeiT distillation token and its position entry dropped (as the official SETR code does)"
        if self.pos_embed_resized:
            s += f"; pos_embed resized {self.pos_embed_resized[0]} -> {self.pos_embed_resized[1]}"
        return s


def _grid_of(num_patches: int) -> tuple[int, int]:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"checkpoint pos_embed has {num_patches} patch entries, which is not a square grid")
    return side, side


def load_timm_weights(encoder: ViTEncoder, state_dict_or_model, strict: bool = True, source: str = "") -> LoadReport:
    """Copy a timm ViT's weights into ``encoder``, resizing the position embedding to the encoder's grid.

    Args:
        encoder: the target :class:`ViTEncoder` (e.g. ``model.encoder``).
        state_dict_or_model: a timm ``VisionTransformer`` or its ``state_dict()`` (also the official ``.pth``
            files, optionally wrapped in ``{"model": ...}`` or ``{"state_dict": ...}``).
        strict: raise if an encoder tensor is missing from the checkpoint.
        source: which weights these are, for the report (e.g. what ``paper_weights`` returns).

    DeiT (distilled) checkpoints load the way the official SETR code loads them: one prefix token, so the
    distillation token and its position entry are dropped (``report.distillation_dropped``).
    Raises a ``ValueError`` naming the tensor when the checkpoint's architecture differs (depth, width, patch size,
    qkv bias). Uses the encoder's ``pos_resize`` mode ("bilinear" as in SETR, or "bicubic" as in timm).
    """
    sd = state_dict_or_model.state_dict() if isinstance(state_dict_or_model, nn.Module) else state_dict_or_model
    for wrapper in ("model", "state_dict"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    target = encoder.state_dict()
    report = LoadReport(source=source)

    ckpt_depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if ckpt_depth and ckpt_depth != encoder.config.depth:
        raise ValueError(f"checkpoint has {ckpt_depth} transformer blocks but the encoder has {encoder.config.depth}; "
                         f"build the matching preset (base = 12 blocks, large = 24)")
    ckpt_width = sd["cls_token"].shape[-1] if "cls_token" in sd else None
    if ckpt_width is not None and ckpt_width != encoder.config.embed_dim:
        raise ValueError(f"checkpoint is {ckpt_width} wide but the encoder is {encoder.config.embed_dim} wide; "
                         f"build the matching preset (tiny 192, small 384, base 768, large 1024)")
    if "dist_token" in sd:  # DeiT (distilled): prefix [cls, dist]; SETR keeps pos_embed[:, 0] + the patch entries
        sd = {**sd, "pos_embed": torch.cat([sd["pos_embed"][:, :1], sd["pos_embed"][:, 2:]], dim=1)}
        report.distillation_dropped = True
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


def verify_file(path: Path, url: str, sha256: str | None) -> str:
    """Check ``path`` against the full ``sha256`` (when known) and the hash prefix in the URL's file name
    (``name-<8 hex>.pth``, the convention of timm, DeiT and mmsegmentation releases). Returns what was verified;
    raises ``ValueError`` (and deletes the file) on a mismatch."""
    actual = file_digest(path, "sha256")
    m = re.search(r"-([0-9a-f]{8,})\.pth?$", url)
    expected = sha256 or (m[1] if m else None)
    if expected is None:
        return f"{path.name} (no hash known: UNVERIFIED, sha256 {actual})"
    if not actual.startswith(expected):
        path.unlink()
        raise ValueError(f"{path.name} does not have the expected SHA-256 ({expected}...; got {actual}): the download "
                         f"is corrupt or the file changed upstream. It was deleted; run again to re-download.")
    if sha256:
        return f"{path.name} (full SHA-256 verified)"
    return f"{path.name} (SHA-256 prefix {expected} verified; full hash {actual} not pinned in setr_edu)"


class DownloadError(FileNotFoundError):
    """A file that must be downloaded is not here and could not be fetched (no network, no ``gdown``, a server
    error); the message says where to put a copy downloaded by hand. A ``FileNotFoundError``, so the command line
    prints it as one line."""


def fetch_verified(url: str, sha256: str | None = None, cache_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Download ``url`` once into ``cache_dir`` (default ``~/.cache/setr_edu``), verify it, return
    ``(path, what was verified)``. Never substitutes another file: a failure raises :class:`DownloadError` with
    what to do (and leaves no partial file)."""
    cache = Path(cache_dir or Path.home() / ".cache" / "setr_edu")
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / url.rsplit("/", 1)[-1]
    if not path.is_file():
        tmp = path.with_name(path.name + ".part")
        try:
            torch.hub.download_url_to_file(url, str(tmp), progress=True)
        except Exception as err:
            tmp.unlink(missing_ok=True)
            why = " ".join(f"{type(err).__name__}: {err}".split())  # one line
            raise DownloadError(f"could not download {url} ({why}); no internet? Download it by hand and put it "
                                f"at {path}, then run again") from None
        tmp.rename(path)
    return path, verify_file(path, url, sha256)


def paper_weights(name: str = "large", cache_dir: str | os.PathLike | None = None) -> tuple[dict, str]:
    """The exact ImageNet checkpoint the official code starts from: ``(state_dict, source)``.

    ``name``: ``"large"`` (T-Large), ``"base"`` (T-Base) or ``"deit"`` (DeiT-B distilled, for the -DeiT rows), or a
    named substitute ``"timm:<tag>"`` (e.g. ``PAPER_WEIGHTS["large"]["timm"]``), which is used only when asked
    for by name. The paper's files are hash-checked (:func:`verify_file`) and never silently replaced.
    """
    if name.startswith("timm:"):
        import timm

        tag = name.removeprefix("timm:")
        source = f"timm '{tag}' (a named substitute, not the paper's file)"
        return timm.create_model(tag, pretrained=True).state_dict(), source
    if name not in PAPER_WEIGHTS:
        raise ValueError(f"unknown paper weights {name!r}; choose one of {sorted(PAPER_WEIGHTS)} or 'timm:<tag>'")
    info = PAPER_WEIGHTS[name]
    try:
        path, verified = fetch_verified(info["url"], info["sha256"], cache_dir)
    except DownloadError as err:
        raise DownloadError(f"{err}. No other weights are used unless you ask for them: "
                           f"pretrained='timm:{info['timm']}' loads timm's closest tag. {info['note']}") from None
    sd, _ = read_checkpoint(path)
    return sd, verified


def download_paper_weights(encoder: str = "large", cache_dir: str | os.PathLike | None = None) -> dict:
    """The state dict of ``setr_edu.model.pretrained.paper_weights(encoder)``: the paper's exact file, SHA-256
    checked, never silently replaced (``paper_weights`` also says which file was loaded and how it was verified)."""
    return paper_weights(encoder, cache_dir)[0]
