"""Model configurations: encoder sizes and the layers each SETR decoder taps.

Sizes (paper Table 1, official code ``vit.py``):

==========  ======  =====  =====  ==============================
preset      layers  width  heads  same shapes as
==========  ======  =====  =====  ==============================
``tiny``    12      192    3      timm ``vit_tiny_patch16_*``
``small``   12      384    6      timm ``vit_small_patch16_*``
``base``    12      768    12     T-Base, timm ``vit_base_patch16_384``
``large``   24      1024   16     T-Large, timm ``vit_large_patch16_384``
==========  ======  =====  =====  ==============================

Taps are written the way the paper writes them: ``Z_m`` is the output of transformer layer ``m``
(1-based), so SETR-MLA on T-Large taps ``(6, 12, 18, 24)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of a ViT encoder (paper §3.2, Table 1). Any field can be overridden for CPU-sized toys."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    in_chans: int = 3
    qkv_bias: bool = True
    ln_eps: float = 1e-6

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                f"each head gets embed_dim // num_heads channels, so pick a width that splits evenly."
            )
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")


ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "tiny": EncoderConfig(embed_dim=192, depth=12, num_heads=3),
    "small": EncoderConfig(embed_dim=384, depth=12, num_heads=6),
    "base": EncoderConfig(embed_dim=768, depth=12, num_heads=12),
    "large": EncoderConfig(embed_dim=1024, depth=24, num_heads=16),
}

# Official-code taps for the two paper encoders (1-based Z indices; paper §3.3 and fudan-zvg/SETR
# configs/SETR/*.py: ``in_index`` of decode/auxiliary heads, ``mla_index`` of the MLA backbone).
# T-Base values come from the official Base/DeiT configs (in_index 11; aux 2,5,8 / 4,7,9,11).
_OFFICIAL_TAPS = {
    ("naive", 24): dict(main_tap=24, aux_taps=(10, 15, 20)),
    ("pup", 24): dict(main_tap=24, aux_taps=(10, 15, 20, 24)),
    ("mla", 24): dict(mla_taps=(6, 12, 18, 24)),
    ("naive", 12): dict(main_tap=12, aux_taps=(3, 6, 9)),
    ("pup", 12): dict(main_tap=12, aux_taps=(5, 8, 10, 12)),
    ("mla", 12): dict(mla_taps=(3, 6, 9, 12)),
}


@dataclass(frozen=True)
class DecoderConfig:
    """Which encoder layers a decoder reads, and its width (paper §3.3, official code).

    ``main_tap`` / ``aux_taps`` are used by Naive and PUP; ``mla_taps`` by MLA (whose four auxiliary heads
    sit on the four MLA streams). ``channels`` is the decoder width (256 in the paper).
    """

    kind: str = "pup"
    main_tap: int = 24
    aux_taps: tuple[int, ...] = (10, 15, 20, 24)
    mla_taps: tuple[int, ...] = (6, 12, 18, 24)
    channels: int = 256
    mla_channels: int = 128
    mla_align_corners: bool = True  # official code; mmsegmentation uses False
    mla_cls_kernel: int = 3  # official code; mmsegmentation uses a 1x1 classifier

    @staticmethod
    def for_encoder(kind: str, depth: int, **overrides) -> "DecoderConfig":
        """The official taps for ``depth`` 24 (T-Large) and 12 (T-Base); evenly scaled taps otherwise."""
        if kind not in ("naive", "pup", "mla"):
            raise ValueError(f"decoder must be one of 'naive', 'pup', 'mla', got {kind!r}")
        taps = _OFFICIAL_TAPS.get((kind, depth))
        if taps is None:  # toy depths: scale T-Large's taps to this depth
            scale = lambda zs: tuple(sorted({max(1, min(depth, round(z * depth / 24))) for z in zs}))
            large = _OFFICIAL_TAPS[(kind, 24)]
            taps = {k: (depth if k == "main_tap" else scale(v)) for k, v in large.items()}
            if kind == "mla" and len(taps["mla_taps"]) != 4:
                raise ValueError(f"SETR-MLA needs 4 distinct layers to tap; depth={depth} is too shallow (use >= 4)")
        unknown = set(overrides) - {f.name for f in fields(DecoderConfig)}
        if unknown:
            raise TypeError(f"unknown decoder option(s) {sorted(unknown)}; known: {[f.name for f in fields(DecoderConfig)]}")
        cfg = replace(DecoderConfig(kind=kind), **taps)
        return replace(cfg, **overrides)

    def check(self, depth: int) -> None:
        used = self.mla_taps if self.kind == "mla" else (self.main_tap, *self.aux_taps)
        bad = [z for z in used if not 1 <= z <= depth]
        if bad:
            raise ValueError(f"tap(s) {bad} are outside the encoder's layers 1..{depth} (taps are 1-based Z_m indices)")
        if self.kind == "mla" and len(self.mla_taps) != 4:
            raise ValueError(f"SETR-MLA aggregates exactly 4 streams, got mla_taps={self.mla_taps}")


def encoder_config(encoder: str | EncoderConfig = "large", **overrides) -> EncoderConfig:
    """Look up a preset by name and apply overrides, e.g. ``encoder_config("tiny", depth=4)``."""
    if isinstance(encoder, EncoderConfig):
        base = encoder
    elif encoder in ENCODER_PRESETS:
        base = ENCODER_PRESETS[encoder]
    else:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(ENCODER_PRESETS)}")
    known = {f.name for f in fields(EncoderConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown encoder option(s) {sorted(unknown)}; known: {sorted(known)}")
    return replace(base, **overrides)
