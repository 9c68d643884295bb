"""Load mmsegmentation's SETR checkpoints (``configs/setr``) into setr_edu, and write setr_edu models back.

mmsegmentation re-implemented SETR on its generic ``VisionTransformer`` (attention is ``nn.MultiheadAttention``),
``SETRUPHead``, ``MLANeck`` + ``SETRMLAHead`` and ``FCNHead``. The weights map one to one, with three twists:

* the attention's fused input projection ``attn.attn.in_proj_weight`` is timm's ``attn.qkv.weight`` (same
  ``[q; k; v]`` row order), ``out_proj`` is ``proj``; the MLP is ``ffn.layers.0.0`` / ``ffn.layers.1``;
* its MLA neck and head list the four levels **deepest first** (``feat_extract.0`` smooths the Z24 sum), the
  reverse of setr_edu's (and the official) tap order, so those modules, the aux heads and the channel blocks of
  the MLA classifier are reversed;
* its heads are built differently from the official ones (mmsegmentation issue #721): every conv stage is
  ``conv (no bias) + BN + ReLU + up x4`` (x2 in PUP), the classifier comes after the last upsampling, and
  MLA uses ``align_corners=False``, a 1x1 classifier and aux classifiers with a bias. The converted model gets
  :class:`~setr_edu.model.decoders.UpHead` heads with mmsegmentation's stages, so it computes what mmsegmentation
  computes; the missing conv biases are set to 0.

:func:`to_mmseg_state_dict` writes a model in this layout back to mmsegmentation's key names (round trip).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ..model.decoders import UpHead
from ..model.encoder import resize_pos_embed
from ..model.setr import SETR, build_setr
from .common import (ConversionReport, as_ints, config_heads, config_model, copy_weights, count_indexed,
                     infer_encoder, read_checkpoint)

_BLOCK = {"norm1": "ln1", "norm2": "ln2", "attn.qkv.weight": "attn.attn.in_proj_weight",
          "attn.qkv.bias": "attn.attn.in_proj_bias", "attn.proj": "attn.attn.out_proj", "mlp.fc1": "ffn.layers.0.0",
          "mlp.fc2": "ffn.layers.1"}


def _kind(sd: dict) -> str:
    if any(k.startswith("neck.mla.") for k in sd):
        return "mla"
    if "decode_head.up_convs.0.0.conv.weight" not in sd:
        raise ValueError("no 'decode_head.up_convs' or 'neck.mla' in the checkpoint: not an mmsegmentation SETR "
                         "checkpoint (for the official code's checkpoints use setr_edu.load_official_setr)")
    return "pup" if count_indexed(sd, r"decode_head\.up_convs\.(\d+)\.") == 4 else "naive"


def _up_head(sd: dict, prefix: str, in_dim: int, num_classes: int, scale: int) -> UpHead:
    """An :class:`UpHead` with the stages of the ``SETRUPHead`` stored under ``prefix``."""
    n = count_indexed(sd, rf"{re.escape(prefix)}\.up_convs\.(\d+)\.")
    conv = sd[f"{prefix}.up_convs.0.0.conv.weight"]  # (C, D, k, k)
    return UpHead(in_dim, num_classes, conv.shape[0], kernel_size=conv.shape[-1], ups=(scale,) * n)


def _taps(kind: str, depth: int, n_aux: int, meta: dict, given: dict, report: ConversionReport) -> dict:
    keys = ("mla_taps",) if kind == "mla" else ("main_tap", "aux_taps")
    cfg = config_model(meta)  # meta['cfg'] (mmengine, sorted keys) or meta['config'] (mmcv), read by structure
    out = as_ints((cfg.get("backbone") or {}).get("out_indices"))
    index = [as_ints(h.get("in_index")) for h in config_heads(cfg)]
    if all(k in given for k in keys):
        taps, where = {k: given[k] for k in keys}, "passed in"
    elif out and kind == "mla":
        taps, where = {"mla_taps": tuple(i + 1 for i in out)}, "from the checkpoint's config: out_indices"
    elif out and len(index) == 1 + n_aux and all(i and len(i) == 1 and i[0] < len(out) for i in index):
        z = [i + 1 for i in out]
        taps = {"main_tap": z[index[0][0]], "aux_taps": tuple(z[i[0]] for i in index[1:])}
        where = "from the checkpoint's config: out_indices and each head's in_index"
    elif depth == 24:  # configs/_base_/models/setr_{naive,pup,mla}.py: out_indices (9, 14, 19, 23) / (5, 11, 17, 23)
        taps = {"mla_taps": (6, 12, 18, 24)} if kind == "mla" else {"main_tap": 24, "aux_taps": (10, 15, 20)[:n_aux]}
        where = "mmsegmentation's SETR configs (ViT-L)"
    else:
        raise ValueError(f"mmsegmentation has no SETR config for a {depth}-layer encoder; pass "
                         + ", ".join(f"{k}=..." for k in keys))
    if kind != "mla" and len(taps["aux_taps"]) != n_aux:
        raise ValueError(f"the checkpoint has {n_aux} auxiliary heads; pass aux_taps=(...) with one layer per head")
    report.assumed.update({k: f"{v} ({where})" for k, v in taps.items()})
    return taps


def build_mmseg_layout(sd: dict, meta: dict, num_heads: int | None, aux: bool, report: ConversionReport,
                       **build_setr_kwargs) -> tuple[SETR, tuple[int, int]]:
    """A setr_edu SETR shaped like the mmsegmentation checkpoint ``sd`` (random weights), and the checkpoint's
    position-embedding grid."""
    kind = _kind(sd)
    names = dict(patch="patch_embed.projection", fc1="ffn.layers.0.0", qkv_bias="attn.attn.in_proj_bias")
    enc, grid = infer_encoder(sd, "backbone.", "layers", names, meta, num_heads, report)
    if "backbone.ln1.weight" in sd:
        raise ValueError("this ViT has a final LayerNorm (final_norm=True): not one of mmsegmentation's SETR models")
    n_aux = count_indexed(sd, r"auxiliary_head\.(\d+)\.")
    K = sd["decode_head.conv_seg.weight"].shape[0]
    dec = {}
    if kind == "mla":
        dec = dict(decoder_channels=sd["neck.mla.channel_proj.0.conv.weight"].shape[0],
                   mla_channels=sd["decode_head.up_convs.0.0.conv.weight"].shape[0],
                   mla_cls_kernel=sd["decode_head.conv_seg.weight"].shape[-1], mla_align_corners=False)
    report.inferred.update(decoder=kind, num_classes=K, aux_heads=n_aux, **dec)
    taps = _taps(kind, enc.depth, n_aux, meta, build_setr_kwargs, report)
    kwargs = {"img_size": grid[0] * enc.patch_size, **dec, **build_setr_kwargs, **taps}
    model = build_setr(kind, encoder=enc, num_classes=K, aux=aux and n_aux > 0, **kwargs)
    D = enc.embed_dim
    if kind == "mla":
        for head in model.auxiliary_heads:  # FCNHead(num_convs=0): a 1x1 classifier with a bias
            head.cls = nn.Conv2d(head.cls.in_channels, K, 1)
    else:
        model.decode_head = _up_head(sd, "decode_head", D, K, 2 if kind == "pup" else 4)
        if len(model.auxiliary_heads):
            model.auxiliary_heads = nn.ModuleList(_up_head(sd, f"auxiliary_head.{i}", D, K, 4) for i in range(n_aux))
        report.notes.append("heads rebuilt with mmsegmentation's stages (conv + BN + ReLU + up, classifier last)")
    return model, grid


def _reverse_blocks(w: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Reverse the order of the ``levels`` input-channel blocks of a conv weight ``(K, levels*m, k, k)``."""
    return torch.cat(list(w.chunk(levels, dim=1))[::-1], dim=1)


def mmseg_key_map(model: SETR) -> dict[str, tuple[str | None, object]]:
    """setr_edu key -> (mmsegmentation key or None for "absent, 0", transform) for a model in mmseg layout."""
    L = 4
    out = {}
    for key in model.state_dict():
        src, fn = None, None
        if m := re.fullmatch(r"encoder\.blocks\.(\d+)\.(.+)", key):
            rest = next(((v + m[2][len(k):]) for k, v in _BLOCK.items() if m[2].startswith(k)), m[2])
            src = f"backbone.layers.{m[1]}.{rest}"
        elif key.startswith("encoder."):
            src = "backbone." + key.removeprefix("encoder.").replace("patch_embed.proj.", "patch_embed.projection.")
        elif m := re.fullmatch(r"neck\.norms\.(\d)\.(.+)", key):
            src = f"neck.norm.{m[1]}.{m[2]}"
        elif m := re.fullmatch(r"neck\.(lateral|smooth)\.(\d)\.(\d)\.(.+)", key):
            name, level = ("channel_proj", int(m[2])) if m[1] == "lateral" else ("feat_extract", L - 1 - int(m[2]))
            src = f"neck.mla.{name}.{level}.{'conv' if m[3] == '0' else 'bn'}.{m[4]}"
        elif m := re.fullmatch(r"decode_head\.streams\.(\d)\.(\d)\.(\d)\.(.+)", key):
            src = f"decode_head.up_convs.{L - 1 - int(m[1])}.{m[2]}.{'conv' if m[3] == '0' else 'bn'}.{m[4]}"
        elif model.decoder.kind == "mla" and (m := re.fullmatch(r"decode_head\.cls\.(.+)", key)):
            src, fn = f"decode_head.conv_seg.{m[1]}", (_reverse_blocks if m[1] == "weight" else None)
        elif model.decoder.kind == "mla" and (m := re.fullmatch(r"auxiliary_heads\.(\d)\.cls\.(.+)", key)):
            src = f"auxiliary_head.{L - 1 - int(m[1])}.conv_seg.{m[2]}"
        elif m := re.fullmatch(r"(decode_head|auxiliary_heads\.(\d+))\.(norm|cls|convs\.(\d)\.(\d))\.(.+)", key):
            prefix = "decode_head" if m[2] is None else f"auxiliary_head.{m[2]}"
            if m[3] == "norm":
                src = f"{prefix}.norm.{m[6]}"
            elif m[3] == "cls":
                src = f"{prefix}.conv_seg.{m[6]}"
            elif m[5] == "1":
                src = f"{prefix}.up_convs.{m[4]}.0.bn.{m[6]}"
            elif m[6] == "weight":
                src = f"{prefix}.up_convs.{m[4]}.0.conv.weight"  # else: the conv bias mmsegmentation does not have
        else:
            raise ValueError(f"{key!r} has no mmsegmentation counterpart; is the model in mmsegmentation's layout "
                             f"(made by load_mmseg_setr)?")
        out[key] = (src, fn)
    return out


def load_mmseg_setr(path_or_state_dict, decoder: str | None = None, *, num_heads: int | None = None,
                    aux: bool = True, strict: bool = True, **build_setr_kwargs) -> SETR:
    """Build a setr_edu :class:`~setr_edu.SETR` from an mmsegmentation SETR checkpoint (path or loaded dict).

    Same arguments and report as :func:`setr_edu.load_official_setr`. Without ``meta['config']`` the taps are
    those of mmsegmentation's ViT-L configs: ``out_indices`` (9, 14, 19, 23) -> main Z24, aux Z10, Z15, Z20;
    MLA (5, 11, 17, 23) -> Z6, Z12, Z18, Z24.
    """
    sd, meta = read_checkpoint(path_or_state_dict)
    kind = _kind(sd)
    if decoder is not None and decoder != kind:
        raise ValueError(f"decoder={decoder!r} but the checkpoint holds a SETR-{kind} (its keys say so)")
    report = ConversionReport("mmsegmentation SETR")
    model, grid = build_mmseg_layout(sd, meta, num_heads, aux, report, **build_setr_kwargs)
    key_map = mmseg_key_map(model)
    has_bias = "backbone.patch_embed.projection.bias" in sd
    report.inferred["patch_bias"] = has_bias
    if not has_bias:  # mmsegmentation >= 1.2.0 builds its ViT with patch_bias=False (the same function, bias 0)
        key_map["encoder.patch_embed.proj.bias"] = (None, None)
        report.notes.append("no patch-embedding bias (mmsegmentation >= 1.2.0, patch_bias=False): set to 0")
    new = model.encoder.grid
    if grid != new:
        key_map["encoder.pos_embed"] = ("backbone.pos_embed", lambda p: resize_pos_embed(p, grid, new, 1, "bilinear"))
        report.notes.append(f"pos_embed resized {grid} -> {new} (bilinear)")
    unused = {} if aux else {r"auxiliary_head\..+": "auxiliary heads (aux=False)"}
    copy_weights(model, sd, key_map, unused, report, strict=strict)
    model.conversion_report = report
    return model.eval()


def to_mmseg_state_dict(model: SETR, patch_bias: bool | None = None) -> dict[str, torch.Tensor]:
    """The mmsegmentation state dict of a model in mmsegmentation's layout (the inverse of
    :func:`setr_edu.load_mmseg_setr`).

    ``patch_bias``: write ``backbone.patch_embed.projection.bias`` (mmsegmentation 0.x-1.1 configs) or not
    (>= 1.2.0, whose ViT has ``patch_bias=False``, so a strict load refuses the key). ``None``: as the converted
    checkpoint had it (``model.conversion_report``), else True. Raises if a tensor that mmsegmentation does not
    have (a conv bias, or the patch bias with ``patch_bias=False``) is not 0: it could not be written back.
    """
    if patch_bias is None:
        report = getattr(model, "conversion_report", None)
        patch_bias = report.inferred.get("patch_bias", True) if report is not None else True
    state = model.state_dict()
    out = {}
    key_map = mmseg_key_map(model)
    if not patch_bias:
        key_map["encoder.patch_embed.proj.bias"] = (None, None)
    for key, (src, fn) in key_map.items():
        if src is None:
            if state[key].abs().max() > 0:
                raise ValueError(f"{key!r} is not 0 but mmsegmentation's layout has no such tensor"
                                 + (" (patch_bias=False)" if key == "encoder.patch_embed.proj.bias" else ""))
            continue
        out[src] = fn(state[key]) if fn else state[key]  # the only transform (block reversal) is its own inverse
    return out
