"""The training-memory estimator against PyTorch's own tracker of a whole step (issue 19).

``tracked_training_peak`` runs what the Trainer runs (forward under autocast with the auxiliary heads, the loss on
fp32 logits, backward, SGD-momentum step, two steps, gradient accumulation) under
``torch.distributed._tools.mem_tracker.MemTracker`` on fake tensors; the estimate must be within 10% of its peak.
Small models here (seconds); ``benchmarks/memory_grid.py`` runs the book's T-Large/T-Base grid the same way.
"""
from __future__ import annotations

import pytest

import setr_edu
from setr_edu.perf.memory import GPU_MEMORY_GIB, GiB, estimate_training_memory, fits, tracked_training_peak

pytest.importorskip("torch.distributed._tools.mem_tracker")

SMALL = dict(embed_dim=64, depth=4, num_heads=2, patch_size=8, decoder_channels=16)

# (decoder, crop, classes, micro-batch, amp, checkpointing, accumulation): the shapes of the recipes, made small
GRID = [
    ("pup", 64, 150, 2, None, False, 1),
    ("pup", 64, 150, 4, "fp16", True, 2),   # the Colab recipe's form: fp16, checkpointing, accumulation
    ("naive", 64, 150, 2, "bf16", False, 1),
    ("mla", 64, 150, 2, "bf16", True, 1),
    ("pup", 96, 19, 2, "fp16", True, 4),    # Cityscapes-like: 19 classes, larger crop
    ("naive", 32, 2, 1, None, True, 1),     # few activations: the peak is at the end of backward
]


@pytest.mark.parametrize("dec, size, K, B, amp, ckpt, accum", GRID)
def test_estimate_within_ten_percent_of_the_tracked_peak(dec, size, K, B, amp, ckpt, accum):
    make = lambda: setr_edu.build_setr(dec, "tiny", num_classes=K, img_size=size, **SMALL)
    est = estimate_training_memory(make, (B, 3, size, size), amp=amp, checkpointing=ckpt, grad_accum_steps=accum)
    tracked = tracked_training_peak(make, (B, 3, size, size), amp=amp, checkpointing=ckpt, num_classes=K,
                                    grad_accum_steps=accum)
    assert est.total == pytest.approx(tracked["peak"], rel=0.10), (est.as_gib(), tracked)
    assert sum(est.at_peak().values()) == est.total


def test_the_peak_moment_moves_with_the_configuration():
    big_logits = estimate_training_memory(lambda: setr_edu.build_setr("pup", "tiny", num_classes=150, img_size=64,
                                                                      **SMALL), (2, 3, 64, 64))
    assert big_logits.peak_at == "backward start" and big_logits.transient > big_logits.grads
    tiny = estimate_training_memory(lambda: setr_edu.build_setr("naive", "tiny", num_classes=2, img_size=32, **SMALL),
                                    (1, 3, 32, 32), checkpointing=True)
    assert tiny.peak_at == "backward end" and tiny.at_peak()["grads"] == tiny.grads
    accum = estimate_training_memory(lambda: setr_edu.build_setr("pup", "tiny", num_classes=150, img_size=64,
                                                                 **SMALL), (2, 3, 64, 64), grad_accum_steps=2)
    assert accum.total == big_logits.total + big_logits.grads  # gradients held through the second micro-batch


def test_fits_counts_the_cuda_context_and_the_allocator():
    t4 = GPU_MEMORY_GIB["T4 16 GB"]
    assert fits(14 * GiB, t4, context_gib=0.0, headroom=0.0)
    assert not fits(14 * GiB, t4)  # 14 x 1.1 + 0.5 = 15.9 GiB > the 14.7 a T4 offers
    assert not fits(13 * GiB, t4) and fits(12 * GiB, t4)  # 13 x 1.1 + 0.5 = 14.8; 12 x 1.1 + 0.5 = 13.7
