"""Run profiles: one notebook, three scales.

``SETR_EDU_PROFILE`` = ``ci`` | ``cpu`` | ``gpu`` (default: ``gpu`` when CUDA is available, else ``cpu``).
A profile only changes *scale*: image size, model size, iterations, dataset size. It never changes code paths.

    >>> import setr_edu
    >>> P = setr_edu.get_profile("ci")
    >>> P.img_size, P.train_iters
    (64, 30)
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

ENV_VAR = "SETR_EDU_PROFILE"


@dataclass(frozen=True)
class Profile:
    """The knobs a chapter scales by. ``encoder`` + ``encoder_overrides`` feed :func:`setr_edu.build_setr`."""

    name: str
    img_size: int  # training / teaching crop size (pixels)
    encoder: str  # preset name: tiny | small | base | large
    encoder_overrides: dict = field(default_factory=dict)  # e.g. depth=4, embed_dim=128 for CPU toys
    decoder_channels: int = 256  # decoder width (256 in the paper)
    batch_size: int = 8
    train_iters: int = 300  # optimisation steps in a chapter's training run
    num_train: int = 512  # synthetic training images
    num_val: int = 64  # synthetic validation images
    eval_every: int = 100
    num_workers: int = 0
    device: str = "cpu"
    bench_repeats: int = 5  # timing repetitions for performance cells

    def model_kwargs(self, **extra) -> dict:
        """Keyword arguments for ``build_setr`` at this profile's scale."""
        kw = dict(encoder=self.encoder, img_size=self.img_size, decoder_channels=self.decoder_channels)
        kw.update(self.encoder_overrides)
        kw.update(extra)
        return kw


_TOY = dict(embed_dim=128, depth=4, num_heads=4, patch_size=8)

PROFILES: dict[str, Profile] = {
    # Seconds per notebook: what nbval runs in CI.
    "ci": Profile("ci", img_size=64, encoder="tiny", encoder_overrides=dict(embed_dim=64, depth=4, num_heads=2, patch_size=8),
                  decoder_channels=32, batch_size=4, train_iters=30, num_train=32, num_val=8, eval_every=15,
                  bench_repeats=2),
    # A few minutes per notebook on a 2-core laptop; the book's stored outputs come from here.
    "cpu": Profile("cpu", img_size=96, encoder="tiny", encoder_overrides=_TOY, decoder_channels=64,
                   batch_size=16, train_iters=600, num_train=1024, num_val=128, eval_every=100, bench_repeats=5),
    # The real thing: the paper's T-Large at 512x512.
    "gpu": Profile("gpu", img_size=512, encoder="large", decoder_channels=256, batch_size=8, train_iters=160_000,
                   num_train=20_210, num_val=2_000, eval_every=16_000, num_workers=8, device="cuda",
                   bench_repeats=20),
}


def get_profile(name: str | None = None) -> Profile:
    """The active profile: ``name``, else ``$SETR_EDU_PROFILE``, else ``gpu`` if CUDA is available, else ``cpu``."""
    name = name or os.environ.get(ENV_VAR) or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {ENV_VAR} or the argument); choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def toy_profile(profile: Profile | str | None = None) -> Profile:
    """The scale of the small models a chapter trains to *draw* (the feature maps of chapters 4-6): ``profile``
    itself under ``ci`` and ``cpu``; under ``gpu`` the ``cpu`` toy, trained on the GPU in seconds. T-Large at
    512 x 512 would need hours to learn the synthetic task (``gpu``'s ``train_iters`` are the paper's 160k; on a
    T4 it does not even fit at batch 8 in fp32), and its 24 maps are too many to draw.

        >>> toy_profile("gpu").name, toy_profile("ci").name
        ('cpu', 'ci')
    """
    P = profile if isinstance(profile, Profile) else get_profile(profile)
    return PROFILES["cpu"] if P.name == "gpu" else P


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a notebook prints the same numbers every run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
