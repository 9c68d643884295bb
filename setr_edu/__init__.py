"""setr_edu: SETR (Zheng et al., CVPR 2021) from scratch, the library behind the setr-edu book.

Public API (documented in the book's API page, book/api.md); keep this a list of names.
"""
import sys as _sys

if _sys.argv[:1] == ["-m"] or _sys.argv[0].endswith("setr-edu"):  # the command line, importing torch (seconds)
    import signal as _signal

    def _ctrl_c_while_starting(signum, frame):  # one line, not a traceback of imports; cli.main takes over
        print("interrupted (Ctrl-C) while starting; nothing was running yet", file=_sys.stderr)
        raise SystemExit(128 + signum)

    _signal.signal(_signal.SIGINT, _ctrl_c_while_starting)

from .config import ENCODER_PRESETS, DecoderConfig, EncoderConfig, encoder_config
from .model import (
    MLP,
    SETR,
    MultiHeadSelfAttention,
    PatchEmbedding,
    TransformerBlock,
    ViTEncoder,
    build_setr,
    download_paper_weights,
    load_timm_weights,
    resize_pos_embed,
)
from .convert import ConversionReport, load_mmseg_setr, load_official_setr  # released SETR checkpoints
from .profile import PROFILES, Profile, get_profile, seed_everything, toy_profile
from .recipes import Recipe, get_recipe, list_recipes  # engine helper: training recipes
from .engine.trainer import Trainer, train  # engine helper: the training loop

__version__ = "0.1.0"
