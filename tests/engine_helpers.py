"""Shared tiny fixtures for the engine tests (test_trainer, test_resume, test_ddp, test_cli, test_inference)."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from setr_edu.engine.trainer import Trainer
from setr_edu.recipes import Recipe, synthetic_recipe

# A SETR small enough that a training step takes milliseconds: 32 px images, 4x4 tokens, width 32, 2 layers.
TINY = dict(crop_size=32, encoder="tiny", encoder_overrides=dict(embed_dim=32, depth=2, num_heads=2, patch_size=8),
            decoder="naive", decoder_channels=16, batch_size=4, num_train=12, num_val=4, max_iters=6, eval_every=3,
            checkpoint_every=3, log_every=2, device="cpu",
            optimizer="sgd", lr=0.01, head_lr_mult=10.0, weight_decay=0.0, warmup_iters=0, min_lr=1e-4)  # the paper's
# The same as `python -m setr_edu train` overrides (max_iters left to each test).
TINY_ARGS = [f"{k}={v!r}" if isinstance(v, dict) else f"{k}={v}" for k, v in TINY.items() if k != "max_iters"]


def tiny_recipe(**kw) -> Recipe:
    return synthetic_recipe("ci", name="tiny", **{**TINY, **kw})


@contextlib.contextmanager
def one_thread():
    """One intra-op thread: bitwise-reproducible CPU results and no oversubscription on a shared 2-core box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def crash_at_iteration(n: int, message: str = "simulated crash"):
    """Inside the block ``Trainer.train_step`` raises ``RuntimeError(message)`` instead of running iteration ``n``
    (1-based): a crash between two checkpoints (Colab disconnected, the job killed)."""
    real_step = Trainer.train_step

    def crashing_step(self, batches):
        if self.iter == n - 1:
            raise RuntimeError(message)
        return real_step(self, batches)

    Trainer.train_step = crashing_step
    try:
        yield
    finally:
        Trainer.train_step = real_step


class PointwiseNet(nn.Module):
    """A 1x1-conv "segmenter" (no BatchNorm): every output pixel depends only on its own input pixel, so it is
    equivariant to flips and translations. Same interface as SETR (``with_aux``, ``decode_head``, aux heads)."""

    def __init__(self, num_classes: int = 7, in_chans: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(in_chans, 8, 1)
        self.decode_head = nn.Conv2d(8, num_classes, 1)
        self.auxiliary_heads = nn.ModuleList([nn.Conv2d(8, num_classes, 1)])

    def forward(self, x, with_aux: bool = False):
        f = torch.tanh(self.stem(x))
        out = self.decode_head(f)
        return (out, [h(f) for h in self.auxiliary_heads]) if with_aux else out


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
