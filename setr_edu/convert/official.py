"""Load a checkpoint of the official SETR code (github.com/fudan-zvg/SETR) into a setr_edu :class:`~setr_edu.SETR`.

The official checkpoints are mmcv files ``{'meta', 'state_dict'}``. Their backbone already uses timm's names
(``backbone.blocks.L.attn.qkv`` ...), which are setr_edu's too; only the heads are renamed:

===========================================  ===========================================  =====================
official key                                 setr_edu key                                 note
===========================================  ===========================================  =====================
``backbone.{cls_token,pos_embed,...}``       ``encoder.*``                                same names
``backbone.norm_i``                          ``neck.norms.i``                             MLA tap LayerNorms
``backbone.mla.mla_p{i+2}_1x1.{0,1}``        ``neck.lateral.i.{0,1}``                     1x1 conv + BN
``backbone.mla.mla_p{i+2}.{0,1}``            ``neck.smooth.i.{0,1}``                      3x3 conv + BN
``decode_head.mlahead.head{i+2}.{0,1,3,4}``  ``decode_head.streams.i.{0.0,0.1,1.0,1.1}``  (2, 5 are ReLUs)
``auxiliary_head.N.aux``                     ``auxiliary_heads.N.cls``                    MLA aux classifier
``P.norm``                                   ``P'.norm``                                  Naive and PUP heads
``P.conv_i``, ``P.syncbn_fc_i``              ``P'.convs.i.0``, ``P'.convs.i.1``           conv + BN stage i
last ``P.conv_n``                            ``P'.cls``                                   the classifier
``P.conv_seg``                               (dropped)                                    never used in forward
===========================================  ===========================================  =====================

(``P`` = ``decode_head`` or ``auxiliary_head.N``; ``P'`` = ``decode_head`` or ``auxiliary_heads.N``.)
The checkpoint does not store which layers the heads read; they come from the checkpoint's ``meta['config']``
when it is there, else from the official configs for that depth, and the report says which.
"""
from __future__ import annotations

import re

from ..config import DecoderConfig
from ..model.encoder import resize_pos_embed
from ..model.setr import SETR, build_setr
from .common import (ConversionReport, as_ints, config_heads, config_model, copy_weights, count_indexed,
                     infer_encoder, read_checkpoint)

CONV_SEG = "conv_seg: built by mmsegmentation's BaseDecodeHead, never used in the official forward"


def _kind(sd: dict) -> str:
    if any(k.startswith("backbone.mla.") for k in sd):
        return "mla"
    if "decode_head.conv_0.weight" not in sd:
        raise ValueError("no 'decode_head.conv_0' or 'backbone.mla' in the checkpoint: not an official SETR "
                         "checkpoint (for mmsegmentation's SETR use setr_edu.load_mmseg_setr)")
    return "pup" if count_indexed(sd, r"decode_head\.syncbn_fc_(\d+)\.") == 4 else "naive"


def official_taps(kind: str, depth: int, n_aux: int, meta: dict, given: dict, report: ConversionReport) -> dict:
    """Decoder taps (1-based ``Z_m``): passed in, else ``meta['config']``, else the official config for ``depth``."""
    keys = ("mla_taps",) if kind == "mla" else ("main_tap", "aux_taps")
    if all(k in given for k in keys):
        taps, where = {k: given[k] for k in keys}, "passed in"
    else:
        cfg = config_model(meta)
        if kind == "mla":  # VIT_MLA's mla_index (the backbone's; older texts put it on the heads)
            found = [as_ints(part.get("mla_index")) for part in [cfg.get("backbone") or {}, *config_heads(cfg)]]
            found = [f for f in found if f and len(f) == 4]
            taps = {"mla_taps": tuple(i + 1 for i in found[0])} if found else None
        else:  # decode_head.in_index, then each auxiliary head's, in the config's list order
            found = [as_ints(h.get("in_index")) for h in config_heads(cfg)]
            ok = len(found) == 1 + n_aux and all(f and len(f) == 1 for f in found)
            taps = {"main_tap": found[0][0] + 1, "aux_taps": tuple(f[0] + 1 for f in found[1:])} if ok else None
        where = "from the checkpoint's config, meta['cfg'] or meta['config'] (0-based in_index + 1)"
        if taps is None:
            default = DecoderConfig.for_encoder(kind, depth)
            taps = {k: getattr(default, k) for k in keys}
            where = f"the official configs' taps for a {depth}-layer encoder"
        taps.update({k: given[k] for k in keys if k in given})
    if kind != "mla" and len(taps["aux_taps"]) != n_aux:
        raise ValueError(f"the checkpoint has {n_aux} auxiliary heads but the taps {taps['aux_taps']} name "
                         f"{len(taps['aux_taps'])}; pass aux_taps=(...) with one layer per head")
    for k, v in taps.items():
        report.assumed[k] = f"{v} ({where})"
    return taps


def _official_key(key: str, model: SETR) -> str:
    """The official checkpoint name of setr_edu tensor ``key``."""
    if key.startswith("encoder."):
        return "backbone." + key.removeprefix("encoder.")
    if m := re.fullmatch(r"neck\.norms\.(\d)\.(.+)", key):
        return f"backbone.norm_{m[1]}.{m[2]}"
    if m := re.fullmatch(r"neck\.(lateral|smooth)\.(\d)\.(\d)\.(.+)", key):
        suffix = "_1x1" if m[1] == "lateral" else ""
        return f"backbone.mla.mla_p{int(m[2]) + 2}{suffix}.{m[3]}.{m[4]}"
    if m := re.fullmatch(r"decode_head\.streams\.(\d)\.(\d)\.(\d)\.(.+)", key):
        return f"decode_head.mlahead.head{int(m[1]) + 2}.{3 * int(m[2]) + int(m[3])}.{m[4]}"
    if model.decoder.kind == "mla":
        if m := re.fullmatch(r"auxiliary_heads\.(\d+)\.cls\.weight", key):
            return f"auxiliary_head.{m[1]}.aux.weight"
        return key  # decode_head.cls.*
    m = re.fullmatch(r"(decode_head|auxiliary_heads\.(\d+))\.(norm|convs\.(\d)\.(\d)|cls)\.(.+)", key)
    head = model.decode_head if m[2] is None else model.auxiliary_heads[int(m[2])]
    prefix = "decode_head" if m[2] is None else f"auxiliary_head.{m[2]}"
    if m[3] == "norm":
        return f"{prefix}.norm.{m[6]}"
    if m[3] == "cls":
        return f"{prefix}.conv_{len(head.convs)}.{m[6]}"
    return f"{prefix}.{'conv' if m[5] == '0' else 'syncbn_fc'}_{m[4]}.{m[6]}"


def load_official_setr(path_or_state_dict, decoder: str | None = None, *, num_heads: int | None = None,
                       aux: bool = True, strict: bool = True, **build_setr_kwargs) -> SETR:
    """Build a setr_edu :class:`~setr_edu.SETR` from an official SETR checkpoint (a ``.pth`` path or a loaded dict).

    Args:
        decoder: ``"naive"``, ``"pup"`` or ``"mla"``; read from the keys when omitted (and checked when given).
        num_heads: attention heads (not in the tensors): else ``meta['config']``, else width / 64.
        aux: keep the auxiliary heads (``False`` drops them, and the report says so).
        strict: refuse checkpoint tensors that have no place in the model (``False``: list them in the report).
        **build_setr_kwargs: any :func:`setr_edu.build_setr` option, e.g. ``img_size=640`` (the position embedding
            is then resized, bilinear, as the official code does) or taps (``main_tap``, ``aux_taps``, ``mla_taps``).

    Depth, width, patch size, classes, decoder widths and the training size come from the tensor shapes. The result
    is in eval mode; ``model.conversion_report`` (:class:`setr_edu.convert.ConversionReport`) says what was read,
    assumed and dropped.
    """
    sd, meta = read_checkpoint(path_or_state_dict)
    kind = _kind(sd)
    if decoder is not None and decoder != kind:
        raise ValueError(f"decoder={decoder!r} but the checkpoint holds a SETR-{kind} (its keys say so)")
    report = ConversionReport("official SETR (fudan-zvg/SETR)")
    names = dict(patch="patch_embed.proj", fc1="mlp.fc1", qkv_bias="attn.qkv.bias")
    enc, grid = infer_encoder(sd, "backbone.", "blocks", names, meta, num_heads, report)
    n_aux = count_indexed(sd, r"auxiliary_head\.(\d+)\.")
    if kind == "mla":
        K = sd["decode_head.cls.weight"].shape[0]
        dec = dict(decoder_channels=sd["backbone.mla.mla_p2_1x1.0.weight"].shape[0],
                   mla_channels=sd["decode_head.mlahead.head2.0.weight"].shape[0],
                   mla_cls_kernel=sd["decode_head.cls.weight"].shape[-1], mla_align_corners=True)
    else:
        n_convs = count_indexed(sd, r"decode_head\.syncbn_fc_(\d+)\.")
        K = sd[f"decode_head.conv_{n_convs}.weight"].shape[0]
        dec = dict(decoder_channels=sd["decode_head.conv_0.weight"].shape[0])
    report.inferred.update(decoder=kind, num_classes=K, aux_heads=n_aux, **dec)
    taps = official_taps(kind, enc.depth, n_aux, meta, build_setr_kwargs, report)
    kwargs = {"img_size": grid[0] * enc.patch_size, **dec, **build_setr_kwargs, **taps}
    model = build_setr(kind, encoder=enc, num_classes=K, aux=aux and n_aux > 0, **kwargs)
    key_map = {k: (_official_key(k, model), None) for k in model.state_dict()}
    if model.encoder.grid != grid:  # the reader asked for another training size: resize as the official code does
        new = model.encoder.grid
        key_map["encoder.pos_embed"] = ("backbone.pos_embed", lambda p: resize_pos_embed(p, grid, new, 1, "bilinear"))
        report.notes.append(f"pos_embed resized {grid} -> {new} (bilinear)")
    unused = {r"(decode_head|auxiliary_head\.\d+)\.conv_seg\.(weight|bias)": CONV_SEG}
    if not aux:
        unused[r"auxiliary_head\..+"] = "auxiliary heads (aux=False)"
    copy_weights(model, sd, key_map, unused, report, strict=strict)
    model.conversion_report = report
    return model.eval()
