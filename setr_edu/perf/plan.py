"""How long will a run take? Expected time of a training recipe on a GPU, from FLOPs (book chapters 12 and 15).

The estimate is arithmetic, not a measurement:

* training FLOPs per image: the *model* FLOPs, forward + backward with the auxiliary heads, counted on the meta
  device (:func:`setr_edu.perf.flops.train_flops`); activation checkpointing's recompute is not counted;
* the GPU's speed: its datasheet peak for the precision ``amp="auto"`` picks there
  (:data:`setr_edu.perf.timing.PEAK_TFLOPS`: fp16 on a T4 or V100, bf16 from the A100 on) times the model FLOPs
  utilisation ``mfu`` (:func:`setr_edu.perf.timing.mfu`, PaLM's definition, recompute excluded: the same number
  ``bench`` and ``benchmarks/gpu_check.py`` measure, so a measured MFU can be passed in as it is). By default it
  is **assumed**: the GPU executes 25% of its peak on the FLOPs it runs (:data:`ASSUMED_HFU`), which is an MFU
  of 0.25 without checkpointing and 0.25 x model / (model + recompute) = about 0.195 for T-Large with it;
* the data pipeline: if it delivers fewer images per second than the GPU trains, the data sets the pace;
* validation: sliding windows over the dataset's validation images (their typical size after the test resize).

    >>> from setr_edu.recipes import get_recipe
    >>> t = expected_time(get_recipe("ade20k_pup_colab"), gpu="Tesla T4")  # doctest: +SKIP
    >>> round(t["hours_total"], 1), round(t["hours_to_first_val"], 2)  # doctest: +SKIP
"""
from __future__ import annotations

import functools

from ..recipes import Recipe
from .timing import PEAK_TFLOPS, peak_tflops

ASSUMED_HFU = 0.25  # fraction of the peak the GPU sustains on the FLOPs it executes (assumed, unverified)
# Validation images and their typical size after the test resize (ADE20K: short side 512 of a 4:3 photo;
# Cityscapes: 1024 x 2048; Pascal Context: short side 520): approximations for the sliding-window count.
TYPICAL_VAL = dict(ade20k=(2000, (512, 683)), cityscapes=(500, (1024, 2048)), pascal_context=(5105, (520, 693)))


def gpu_peak(gpu: str) -> tuple[str, float]:
    """``(precision, TFLOP/s)`` that ``amp="auto"`` gets on ``gpu`` (a name as in
    :data:`~setr_edu.perf.timing.PEAK_TFLOPS`)."""
    amp = "bf16" if peak_tflops(gpu, "bf16") else "fp16"  # = compute capability >= 8.0 for the GPUs in the table
    peak = peak_tflops(gpu, amp)
    if peak is None:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(PEAK_TFLOPS)}")
    return amp, peak


def recipe_flops(recipe: Recipe, num_classes: int | None = None) -> dict[str, float]:
    """FLOPs per image of ``recipe``'s model: ``train`` (model FLOPs: fwd + bwd with aux heads), ``recompute``
    (the extra encoder forward of activation checkpointing; 0 without it) and ``inference`` (one ``crop_size``
    window, main head only)."""
    K = num_classes or recipe.num_classes or 150
    return dict(_model_flops(recipe.decoder, recipe.encoder, K, recipe.crop_size, recipe.decoder_channels,
                             tuple(sorted(recipe.encoder_overrides.items())), recipe.grad_checkpointing))


@functools.lru_cache(maxsize=64)
def _model_flops(decoder, encoder, K, size, channels, overrides, checkpointing) -> tuple:
    """Counted on the meta device (a few seconds for T-Large), once per model shape."""
    from ..model import build_setr
    from .flops import count_flops, train_flops

    def make():
        return build_setr(decoder, encoder, num_classes=K, img_size=size, decoder_channels=channels,
                          **dict(overrides))

    shape = (1, 3, size, size)
    train = train_flops(make, shape)
    inference = count_flops(make, shape).forward
    recompute = count_flops(lambda: make().encoder, shape).forward if checkpointing else 0
    return ("train", float(train)), ("recompute", float(recompute)), ("inference", float(inference))


def expected_time(recipe: Recipe, gpu: str = "Tesla T4", mfu: float | None = None,
                  data_samples_per_s: float | None = None) -> dict[str, float]:
    """Expected wall time of ``recipe`` on one ``gpu`` (see the module docstring for what is assumed).

    ``mfu``: model FLOPs utilisation of training (:func:`setr_edu.perf.timing.mfu`, e.g. measured by
    ``gpu_check``); ``None``: assumed from :data:`ASSUMED_HFU` (returned as ``mfu``, with ``mfu_assumed`` 1.0).
    Returns ``amp``, ``peak_tflops``, ``mfu``, ``mfu_assumed``, ``train_tflops_per_image`` (model FLOPs),
    ``images_per_s`` (the slower of GPU and data), ``data_bound`` (1.0 if the data sets the pace),
    ``seconds_per_iter``, ``val_minutes`` (one validation), ``hours_to_first_val`` (training up to the first
    validation, plus that validation) and ``hours_total``.
    """
    from ..engine.inference import window_starts

    amp, peak = gpu_peak(gpu)
    flops = recipe_flops(recipe)
    assumed = mfu is None
    if assumed:
        mfu = ASSUMED_HFU * flops["train"] / (flops["train"] + flops["recompute"])
    gpu_images_per_s = mfu * peak * 1e12 / flops["train"]
    images_per_s = min(gpu_images_per_s, data_samples_per_s or float("inf"))
    s_per_iter = recipe.batch_size / images_per_s
    n_val, (h, w) = TYPICAL_VAL.get(recipe.dataset, (0, (recipe.crop_size, recipe.crop_size)))
    crop, stride = recipe.crop_size, recipe.stride
    windows = len(window_starts(max(h, crop), crop, stride)) * len(window_starts(max(w, crop), crop, stride))
    val_s = n_val * windows * flops["inference"] / (ASSUMED_HFU * peak * 1e12)
    n_val_runs = recipe.max_iters // recipe.eval_every + (recipe.max_iters % recipe.eval_every != 0)
    first = min(recipe.eval_every, recipe.max_iters)
    return dict(amp=amp, peak_tflops=peak, mfu=mfu, mfu_assumed=float(assumed),
                train_tflops_per_image=flops["train"] / 1e12,
                images_per_s=images_per_s, data_bound=float(images_per_s < gpu_images_per_s),
                seconds_per_iter=s_per_iter, val_minutes=val_s / 60,
                hours_to_first_val=(first * s_per_iter + val_s) / 3600,
                hours_total=(recipe.max_iters * s_per_iter + n_val_runs * val_s) / 3600)
