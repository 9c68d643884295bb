"""SETR = a ViT encoder + one of three decoders (+ auxiliary heads during training). Paper §3, Figure 1.

    >>> import torch, setr_edu
    >>> model = setr_edu.build_setr("pup", encoder="tiny", depth=4, num_classes=5, img_size=64)
    >>> model(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 5, 64, 64])
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import DecoderConfig, EncoderConfig, encoder_config
from .decoders import MLAAuxHead, MLAHead, MLANeck, naive_head, pup_aux_head, pup_head
from .encoder import ViTEncoder


class SETR(nn.Module):
    """SEgmentation TRansformer.

    ``forward(x)`` -> logits ``(B, K, H, W)`` at the input resolution;
    ``forward(x, with_aux=True)`` -> ``(logits, [aux_logits, ...])``, every map at the input resolution.

    Submodules: ``encoder`` (:class:`ViTEncoder`), ``neck`` (SETR-MLA only), ``decode_head`` and
    ``auxiliary_heads``. The names matter: the paper's recipe trains every parameter whose name contains
    ``"head"`` at 10x the learning rate, and (as in the official code) MLA's neck is not one of them.
    """

    def __init__(self, encoder: ViTEncoder, decoder: DecoderConfig, num_classes: int, aux: bool = True):
        super().__init__()
        decoder.check(encoder.config.depth)
        self.encoder, self.decoder, self.num_classes = encoder, decoder, num_classes
        D, C = encoder.config.embed_dim, decoder.channels
        if decoder.kind == "mla":
            self.neck = MLANeck(D, C, num_levels=len(decoder.mla_taps), eps=encoder.config.ln_eps)
            self.decode_head = MLAHead(C, num_classes, decoder.mla_channels, len(decoder.mla_taps),
                                       decoder.mla_align_corners, decoder.mla_cls_kernel)
            aux_heads = [MLAAuxHead(C, num_classes) for _ in decoder.mla_taps]
        else:
            self.neck = None
            main, aux_head = (naive_head, naive_head) if decoder.kind == "naive" else (pup_head, pup_aux_head)
            self.decode_head = main(D, num_classes, C)
            aux_heads = [aux_head(D, num_classes, C) for _ in decoder.aux_taps]
        self.auxiliary_heads = nn.ModuleList(aux_heads if aux else [])

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        """``(B, 3, H, W)`` -> logits ``(B, K, H, W)``; with ``with_aux=True`` also the auxiliary heads' logits."""
        size = tuple(x.shape[-2:])
        z = self.encoder(x)  # z[m - 1] is the paper's Z_m, (B, D, H/16, W/16)
        if self.neck is not None:
            inputs = self.neck([z[t - 1] for t in self.decoder.mla_taps])  # 4 streams (B, C, H/16, W/16)
            logits = self.decode_head(inputs, size)
        else:
            inputs = [z[t - 1] for t in self.decoder.aux_taps]
            logits = self.decode_head(z[self.decoder.main_tap - 1], size)
        if not with_aux:
            return logits
        return logits, [head(i, size) for head, i in zip(self.auxiliary_heads, inputs)]


def build_setr(decoder: str = "pup", encoder: str | EncoderConfig = "large", num_classes: int = 150,
               img_size: int | tuple[int, int] = 512, aux: bool = True, pos_resize: str = "bilinear",
               decoder_channels: int = 256, **overrides) -> SETR:
    """Build SETR-Naive / -PUP / -MLA.

    Args:
        decoder: ``"naive"``, ``"pup"`` or ``"mla"``.
        encoder: ``"tiny"``, ``"small"``, ``"base"`` (T-Base) or ``"large"`` (T-Large), or an ``EncoderConfig``.
        num_classes: K (150 for ADE20K, 19 for Cityscapes, 60 for Pascal Context).
        img_size: training resolution; sets the position-embedding grid (other input sizes still work).
        aux: build the auxiliary heads (training only; they are never used for the prediction).
        pos_resize: ``"bilinear"`` (SETR) or ``"bicubic"`` (timm) position-embedding interpolation.
        decoder_channels: decoder width (256 in the paper).
        **overrides: encoder fields (``depth=4, embed_dim=128, num_heads=4, patch_size=8`` ...) and decoder
            fields (``main_tap``, ``aux_taps``, ``mla_taps``, ``mla_channels``, ``mla_align_corners``, ``mla_cls_kernel``).
    """
    enc_keys = set(EncoderConfig.__dataclass_fields__)
    enc_cfg = encoder_config(encoder, **{k: v for k, v in overrides.items() if k in enc_keys})
    dec_over = {k: v for k, v in overrides.items() if k not in enc_keys}
    dec_cfg = DecoderConfig.for_encoder(decoder, enc_cfg.depth, channels=decoder_channels, **dec_over)
    vit = ViTEncoder(enc_cfg, img_size=img_size, pos_resize=pos_resize, keep_cls_token=(decoder != "mla"))
    return SETR(vit, dec_cfg, num_classes, aux=aux)
