"""Tiny checkpoints written by the official SETR code, shipped with the package (package data).

Chapter 16 and the converter tests read them: one per official variant (``naive``, ``pup``, ``mla``,
``pup_deit``), each ``<variant>.pth`` (the official ``EncoderDecoder`` state dict in mmcv 1.2.2's format) with
``<variant>_io.pt`` (an input and the official code's logits for it). How they were made: ``README.md`` in the
same folder. They come with every install (about 4 MB), so a notebook opened alone (Colab) finds them too.

    >>> sorted(p.name for p in official_stand_ins().glob("pup*.p*"))
    ['pup.pth', 'pup_deit.pth', 'pup_deit_io.pt', 'pup_io.pt']
"""
from __future__ import annotations

from pathlib import Path

VARIANTS = ("naive", "pup", "mla", "pup_deit")


def official_stand_ins() -> Path:
    """The folder holding ``<variant>.pth`` and ``<variant>_io.pt`` for every name in :data:`VARIANTS`."""
    return Path(__file__).with_name("official_setr")
