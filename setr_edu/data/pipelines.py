"""The paper's pipelines: which transform steps, in which order (paper §4.1 "Implementation details").

:func:`train_pipeline` and :func:`test_pipeline` return, by default, a
:class:`~setr_edu.data.fast_transforms.FastCompose` of the readable steps of :mod:`setr_edu.data.transforms`
(the same random draws and geometry, fused; ``fast=False`` gives the readable :class:`~setr_edu.data.transforms.Compose`).
They live here, above both modules, so that neither imports the other.
"""
from __future__ import annotations

from .fast_transforms import FastCompose
from .transforms import Compose, Normalize, Pad, PhotoMetricDistortion, RandomCrop, RandomFlip, RandomResize, ToTensor


def train_pipeline(crop: int | tuple[int, int], img_scale: tuple[int, int], ratio_range=(0.5, 2.0),
                   cat_max_ratio: float = 0.75, flip_prob: float = 0.5, photometric: bool = True,
                   fast: bool = True) -> Compose:
    """The paper's training augmentation, e.g. ``train_pipeline(512, (2048, 512))`` for ADE20K.
    ``fast=False``: the readable ``Compose``; else the ``FastCompose`` of the same steps."""
    steps = [RandomResize(img_scale, ratio_range), RandomCrop(crop, cat_max_ratio), RandomFlip(flip_prob)]
    steps += [PhotoMetricDistortion()] if photometric else []
    return _compose(steps + [Normalize(), Pad(crop), ToTensor()], fast)


def test_pipeline(img_scale: tuple[int, int] | None = None, fast: bool = True, short_side: bool = False) -> Compose:
    """Test-time preprocessing: keep-ratio resize of the image only to ``img_scale`` (None: no resize),
    Normalize, ToTensor. The label keeps its original size; predictions are resized back to it.
    ``short_side=True`` scales the short side to ``min(img_scale)`` (Pascal Context, see :class:`.RandomResize`)."""
    steps = [] if img_scale is None else [RandomResize(img_scale, None, resize_label=False, short_side=short_side)]
    return _compose(steps + [Normalize(), ToTensor()], fast)


def _compose(steps: list, fast: bool) -> Compose:
    return FastCompose(steps) if fast else Compose(steps)


test_pipeline.__test__ = False  # not a pytest test, despite its name
