"""Inference and evaluation: whole image, sliding window, multi-scale + flip (paper §4; fudan-zvg/SETR ``test_cfg`` in ``configs/SETR/*.py``).

* ``whole_inference``: one forward pass on the full image (padded to a multiple of the patch size);
* ``slide_inference``: the paper's single-scale test. Square ``crop`` windows every ``stride`` pixels
  (768/512 on Cityscapes, 512/341 on ADE20K, 480/320 on Pascal Context); the logits of overlapping windows are
  **averaged**; an image smaller than the crop is padded to it first (SETR's ViT is trained at a fixed size);
* ``predict``: the two above at several scales (0.5-1.75) and/or with horizontal flips; the softmax
  probabilities of all views, resized back to the image, are averaged (mmsegmentation's ``aug_test``);
* ``evaluate``: a dataset -> ``setr_edu.engine.metrics.SegmentationMetric`` results and per-class
  report, sharded across ranks under DDP; ``colorize`` paints a label map with a dataset's palette.

**Devices.** The model stays where it is. Every function here moves its input images to the model's device
(:func:`model_device`: where its first parameter lives) and gives its result back on the device the images came
from, so ``predict(model_on_gpu, cpu_images)`` returns CPU probabilities, ready for numpy and matplotlib, and
GPU images give GPU results. ``evaluate`` runs the model and the metric on the model's device.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..data.loader import loader_kwargs
from ..data.palettes import colorize  # noqa: F401  (re-exported: setr_edu.engine.colorize)

IGNORE_INDEX = 255


def _patch_multiple(model: nn.Module) -> int:
    """Input sides must be multiples of this (the ViT patch size; 1 for models that accept any size)."""
    enc = getattr(model, "encoder", None)
    return enc.config.patch_size if enc is not None and hasattr(enc, "config") else 1


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model without any."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _pad_to(images: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Zero-pad ``(B, 3, H, W)`` at the bottom/right to ``(B, 3, h, w)`` (0 = the mean colour after normalisation)."""
    return F.pad(images, (0, w - images.shape[-1], 0, h - images.shape[-2]))


@torch.no_grad()
def whole_inference(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` -> logits ``(B, K, H, W)`` from one forward pass of the whole image.

    Runs on the model's device; the logits come back on the device of ``images``."""
    H, W = images.shape[-2:]
    m = _patch_multiple(model)
    padded = _pad_to(images.to(model_device(model)), math.ceil(H / m) * m, math.ceil(W / m) * m)
    return model(padded)[..., :H, :W].to(images.device)


def too_big_for_whole(h: int, w: int, crop: int, factor: float = 4.0) -> bool:
    """Whether one whole-image pass over ``h x w`` costs far more than a training crop: more than ``factor`` times
    the crop's patches. Global attention grows with the square of the patch count (a 6000x4000 photo has 94k
    patches of 16 px, 92x a 512 crop's, so its attention matrices are ~8,500x larger): slide instead."""
    return h * w > factor * crop * crop


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Top (or left) coordinates of the sliding windows along one side; the last window ends at the border."""
    n = max(size - crop + stride - 1, 0) // stride + 1  # mmseg's grid count
    return sorted({max(min(i * stride, size - crop), 0) for i in range(n)})


@torch.no_grad()
def slide_inference(model: nn.Module, images: torch.Tensor, crop: int | tuple[int, int], stride: int | tuple[int, int],
                    window_batch: int = 8, small: str = "pad") -> torch.Tensor:
    """Sliding-window logits ``(B, K, H, W)``: ``crop`` windows every ``stride`` pixels, overlaps averaged.

    Windows are run ``window_batch`` at a time. A side smaller than the crop: ``small="pad"`` zero-pads it up to
    the crop and cuts the padding off the result (the official SETR code: its ViT runs at the training size);
    ``small="shrink"`` runs the smaller window as it is (mmsegmentation's ``slide_inference``, whose window ends
    at the image border). Runs (and averages) on the model's device; the logits come back on the device of
    ``images``.
    """
    if small not in ("pad", "shrink"):
        raise ValueError(f"small must be 'pad' (official SETR) or 'shrink' (mmsegmentation), got {small!r}")
    home, images = images.device, images.to(model_device(model))
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    B, _, H, W = images.shape
    if small == "shrink":
        ch, cw = min(ch, H), min(cw, W)
    padded = _pad_to(images, max(H, ch), max(W, cw))
    Hp, Wp = padded.shape[-2:]
    boxes = [(y, x) for y in window_starts(Hp, ch, sh) for x in window_starts(Wp, cw, sw)]
    logits = count = None
    for i in range(0, len(boxes), window_batch):
        chunk = boxes[i:i + window_batch]
        crops = torch.cat([padded[:, :, y:y + ch, x:x + cw] for y, x in chunk])  # (len(chunk) * B, 3, ch, cw)
        out = whole_inference(model, crops).float()  # (len(chunk) * B, K, ch, cw)
        if logits is None:
            logits = out.new_zeros(B, out.shape[1], Hp, Wp)
            count = out.new_zeros(1, 1, Hp, Wp)
        for j, (y, x) in enumerate(chunk):
            logits[:, :, y:y + ch, x:x + cw] += out[j * B:(j + 1) * B]
            count[:, :, y:y + ch, x:x + cw] += 1
    return (logits / count)[..., :H, :W].to(home)


def scaled_size(h: int, w: int, scale: float, min_size: int | None = None) -> tuple[int, int]:
    """``(h, w)`` times ``scale``; with ``min_size`` (the official ``setr_multi_scale``), a short side below it is
    raised to ``min_size`` keeping the aspect ratio, so sliding windows always fit the ViT's training size.
    The raised size is computed from ``(h, w)`` as mmcv's ``imrescale`` does (``int(x * f + 0.5)``), so every
    ratio whose short side falls below ``min_size`` gives exactly the same view."""
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if min_size and min(nh, nw) < min_size:
        r = min_size / min(h, w)
        nh, nw = max(min_size, int(h * r + 0.5)), max(min_size, int(w * r + 0.5))
    return nh, nw


# Named test protocols. "paper": the six ratios the paper's text describes (§4), with flips. "official": the
# img_ratios of the official *_MS.py config (fudan-zvg/SETR configs/SETR), with flips; the ADE20K Naive and MLA
# configs list only (0.5, 0.75, 1.0), which the short-side rule (min_size = crop) turns into one scale.
PAPER_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
PROTOCOLS = ("single", "paper", "official")


def protocol_views(protocol: str, official_ratios: Sequence[float] = PAPER_RATIOS) -> tuple[tuple[float, ...], bool]:
    """``(scales, flip)`` of a named protocol: ``"single"`` (1.0, no flip), ``"paper"`` or ``"official"``
    (``official_ratios``, e.g. ``setr_edu.recipes.official_ms_ratios(recipe)``). Multi-scale runs use
    ``min_size=crop`` in :func:`predict`, as the official ``setr_multi_scale`` resize does."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown test protocol {protocol!r}; choose one of {PROTOCOLS}")
    if protocol == "single":
        return (1.0,), False
    return (PAPER_RATIOS if protocol == "paper" else tuple(official_ratios)), True


def protocol_sizes(h: int, w: int, protocol: str, crop: int,
                   official_ratios: Sequence[float] = PAPER_RATIOS) -> list[tuple[int, int]]:
    """The distinct image sizes a protocol runs on an ``h x w`` (test-resized) image, each also flipped when
    multi-scale: shows when ratios collapse, e.g. ``(0.5, 0.75, 1.0)`` at crop 512 on a 512x683 image."""
    scales, _ = protocol_views(protocol, official_ratios)
    min_size = crop if len(scales) > 1 else None
    return sorted({scaled_size(h, w, s, min_size) for s in scales})


#: The evaluation conventions, named after the code a checkpoint comes from (see :func:`convention`).
CONVENTIONS = ("official", "mmseg")


def convention(name: str, crop: int | None, scales: Sequence[float]) -> dict:
    """``predict``/``evaluate`` keyword arguments of an evaluation convention, named after the code the
    checkpoint comes from (setr_edu's own runs follow the official SETR code):

    * ``"official"`` (fudan-zvg/SETR ``setr_multi_scale`` + its slide inference): multi-scale views keep a short
      side of at least the crop (``min_size=crop``), and a window larger than the image is padded;
    * ``"mmseg"`` (mmsegmentation's ``MultiScaleFlipAug`` + ``slide_inference``): plain scale factors, and a
      window never larger than the image.

        >>> convention("mmseg", 512, (0.5, 1.0))
        {'min_size': None, 'small': 'shrink'}
    """
    if name not in CONVENTIONS:
        raise ValueError(f"eval convention must be one of {CONVENTIONS}, got {name!r}")
    if name == "mmseg":
        return {"min_size": None, "small": "shrink"}
    return {"min_size": crop if len(scales) > 1 else None, "small": "pad"}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, mode: str = "whole", crop: int | None = None,
            stride: int | None = None, scales: Sequence[float] = (1.0,), flip: bool = False,
            min_size: int | None = None, out_size: tuple[int, int] | None = None, small: str = "pad") -> torch.Tensor:
    """Class probabilities ``(B, K, *out_size)`` (default: the input size), averaged over scales and flips.

    ``min_size`` and ``small`` follow the checkpoint's code (:func:`convention`): the official SETR code raises
    a short side below the crop in multi-scale runs and pads small windows; mmsegmentation does neither.

    ``mode``: ``"whole"`` or ``"slide"`` (needs ``crop``; ``stride`` defaults to 2/3 of it). ``scales``: e.g. the
    paper's ``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``. ``flip``: also run the mirrored image and mirror the result back.
    Everything runs on the model's device; the probabilities come back on the device of ``images``.
    """
    if mode not in ("whole", "slide"):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and not crop:
        raise ValueError("mode='slide' needs crop=<window size> (e.g. 512 for ADE20K)")
    stride = stride or (2 * crop // 3 if crop else None)
    H, W = images.shape[-2:]
    out_size = tuple(out_size or (H, W))
    home, images = images.device, images.to(model_device(model))  # resize and average where the model is
    probs = None
    views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    for scale, flipped in views:
        size = scaled_size(H, W, scale, min_size)
        x = images if size == (H, W) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        x = x.flip(-1) if flipped else x
        logits = slide_inference(model, x, crop, stride, small=small) if mode == "slide" else whole_inference(model, x)
        logits = logits.flip(-1) if flipped else logits
        if tuple(logits.shape[-2:]) != out_size:
            logits = F.interpolate(logits.float(), size=out_size, mode="bilinear", align_corners=False)
        p = logits.float().softmax(dim=1)
        probs = p if probs is None else probs + p
    return (probs / len(views)).to(home)


@torch.no_grad()
def evaluate(model: nn.Module, dataset, num_classes: int, mode: str = "whole", crop: int | None = None,
             stride: int | None = None, scales: Sequence[float] = (1.0,), flip: bool = False, batch_size: int = 1,
             device: str | torch.device | None = None, amp_dtype: torch.dtype | None = None, rank: int = 0,
             world_size: int = 1, progress: bool = False, min_size: int | None = None,
             class_names: Sequence[str] | None = None, num_workers: int = 0, small: str = "pad") -> dict:
    """Run ``predict`` over ``dataset`` (items ``(image (3, H, W), label (H', W'))``) and return the metric.
    ``num_workers``: DataLoader worker processes that load (decode, resize) the next images meanwhile.

    Returns ``SegmentationMetric.compute``'s dict (``mIoU``, ``mAcc``, ``aAcc``, ``IoU``, ``Acc``) plus
    ``"report"``, the per-class table of ``SegmentationMetric.report``. Under DDP each
    rank takes every ``world_size``-th image and the confusion matrices are summed across ranks, so every rank
    returns the dataset-level result. Images of different sizes need ``batch_size=1``. ``device``: where images,
    labels and the metric live (default: the model's device); ``amp_dtype``: autocast on the model's device.
    """
    from tqdm.auto import tqdm

    from .metrics import SegmentationMetric

    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index=IGNORE_INDEX, class_names=class_names, device=device)
    indices = list(range(rank, len(dataset), world_size))
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size,
                        **loader_kwargs(num_workers, device, persistent=False))
    batches = iter(loader)
    try:
        for images, labels in tqdm(batches, total=len(loader), desc="eval", disable=not progress, leave=False):
            images, labels = images.to(device), labels.to(device)
            with torch.autocast(model_device(model).type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                probs = predict(model, images, mode, crop, stride, scales, flip, min_size, out_size=labels.shape[-2:],
                                small=small)
            metric.update(probs.argmax(dim=1), labels)
    finally:
        del batches  # stops the workers now, also when an image fails to load
    metric.all_reduce()  # sum the confusion matrices of all ranks (no-op in one process)
    model.train(was_training)
    return {**metric.compute(), "report": metric.report()}
