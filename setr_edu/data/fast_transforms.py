"""The training transforms, fast: the same steps as :mod:`setr_edu.data.transforms`, computed the way a data
loader that has to keep a GPU busy computes them.

:class:`FastCompose` takes the *same* transform objects as :class:`~setr_edu.data.transforms.Compose` and asks
them for their random draws (``RandomResize.draw_size``, ``RandomCrop.choose``, ``RandomFlip.draw``,
``PhotoMetricDistortion.draw``), so with the same generator both pick the same size, the same crop window, the
same flip and the same colour jitter. Only the arithmetic differs:

* **resize**: OpenCV's ``cv2.resize`` with ``INTER_LINEAR`` (what mmcv's ``imrescale`` calls) instead of
  ``torch.nn.functional.interpolate``. Same geometry (half-pixel centres, edge pixels repeated, no antialias);
  OpenCV uses fixed-point weights, so a uint8 pixel may differ by 1 from the float result. Labels use the same
  nearest-neighbour indices in both (:func:`~setr_edu.data.transforms.nearest_indices`): identical.
* **brightness and contrast** are functions of one uint8 value, so they become 256-entry lookup tables (exact:
  the table holds the readable formula's own float32 results), and consecutive tables are composed into one.
* **saturation and hue**: ``cv2.cvtColor`` to OpenCV's 8-bit HSV and back (exactly what mmcv's ``bgr2hsv`` does)
  instead of the textbook formulas of ``rgb_to_hsv``/``hsv_to_rgb``: RGB -> HSV agrees within one step of H or S;
  HSV -> RGB within one grey level (OpenCV 4 rounds like the textbook formula, OpenCV 5 mostly truncates).
* **flip, normalise, pad, to tensor** happen in one pass that writes straight into the padded ``(3, H, W)``
  tensor through a per-channel table ``(v - mean) / std`` (again the readable float32 values, exact). A flip is
  applied there too when only lookup tables came after it: they act pixel by pixel, so flipping before or after
  them gives the same result (OpenCV's HSV conversion is not exactly pixel by pixel, so it flips first).

"Agree" therefore means (tests/test_transforms_fast.py): the same draws (the generator ends in the same state),
the same geometry, **identical labels**, and images that differ only by that rounding: at most 1 grey level
without the photometric distortion (resize only: normalise, flip and pad are exact). With it, contrast up to 1.5x
after an HSV round trip, and one step of hue, can turn a rounding step into a few levels: measured with OpenCV 5.0
on 60 samples, 0.45 levels mean absolute difference, 8% of pixel values more than 1 level apart, 0.4% more than
4, at most 13. Against mmseg's own way of computing the steps with OpenCV (``setr_edu.perf.data_bench``) the
samples are the same to float rounding (1e-5).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .transforms import (
    Compose, Normalize, Pad, PhotoMetricDistortion, RandomCrop, RandomFlip, RandomResize, ToTensor, _as_numpy,
    nearest_indices,
)

GEOMETRIC = (RandomResize, RandomCrop, RandomFlip, PhotoMetricDistortion)


class ResizedLabel:
    """A label resized with nearest neighbour, not yet computed: ``label[np.ix_(rows, cols)]``. Slicing it
    gathers only the slice, so a crop of a resized label costs the crop, not the whole resized label."""

    def __init__(self, label: np.ndarray, size: tuple[int, int]):
        self.label = label
        self.rows, self.cols = nearest_indices(label.shape[0], size[0]), nearest_indices(label.shape[1], size[1])
        self.shape = (len(self.rows), len(self.cols))

    def __getitem__(self, window: tuple[slice, slice]) -> np.ndarray:
        return self.label.take(self.rows[window[0]], axis=0).take(self.cols[window[1]], axis=1)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:, :] if dtype is None else self[:, :].astype(dtype)


def resize_fast(image: np.ndarray, label: np.ndarray | None, size: tuple[int, int]):
    """:func:`~setr_edu.data.transforms.resize` with ``cv2.resize`` for the image (``size = (H, W)``); the label
    comes back as a :class:`ResizedLabel` (``np.asarray`` computes it)."""
    out = cv2.resize(np.ascontiguousarray(image), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    out = out.reshape(size[0], size[1], -1)  # OpenCV drops a channel axis of size 1
    return out, (None if label is None else ResizedLabel(label, size))


def accept_fast(crop: RandomCrop):
    """``crop.accept`` with OpenCV's histogram (the same counts as ``np.bincount``, 7x faster)."""
    def accept(label_crop: np.ndarray) -> bool:
        counts = cv2.calcHist([np.ascontiguousarray(label_crop, dtype=np.uint8)], [0], None, [256], [0, 256]).ravel()
        counts[crop.ignore_index] = 0
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < crop.cat_max_ratio

    return accept


def convert_table(alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``PhotoMetricDistortion._convert`` (``clip(x * alpha + beta)`` in float32, then uint8) for every uint8 value."""
    return PhotoMetricDistortion._convert(np.arange(256, dtype=np.uint8), alpha, beta)


def photometric_fast(img: np.ndarray, steps: list[tuple[str, float]], lut: np.ndarray | None = None):
    """Apply ``PhotoMetricDistortion.draw``'s steps; returns ``(image, lut)`` where ``lut`` (or None) is a pending
    uint8 table still to be applied to every channel (the caller folds it into normalisation)."""
    for name, value in steps:
        if name in ("brightness", "contrast"):
            table = convert_table(beta=value) if name == "brightness" else convert_table(alpha=value)
            lut = table if lut is None else table[lut]  # table(lut(v)): compose the maps
            continue
        if lut is not None:
            img, lut = cv2.LUT(img, lut), None
        hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV)  # uint8, H in [0, 180)
        if name == "saturation":
            hsv[..., 1] = cv2.LUT(hsv[..., 1], convert_table(alpha=value))
        else:
            hsv[..., 0] = cv2.LUT(hsv[..., 0], ((np.arange(256) + value) % 180).astype(np.uint8))
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img, lut


def normalize_pad_tensor(image: np.ndarray, label, normalize: Normalize, pad: Pad | None, flip: bool = False,
                         lut: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(h, w, 3)`` + label -> float ``(3, H, W)`` + int64 ``(H, W)``: optional flip and pending ``lut``,
    ``(v - mean) / std`` per channel, padding bottom/right to ``pad.size`` (image ``pad_val``, label
    ``seg_pad_val``), in one pass through per-channel lookup tables."""
    h, w = image.shape[:2]
    H, W = (max(h, pad.size[0]), max(w, pad.size[1])) if pad is not None else (h, w)
    out = torch.full((3, H, W), float(pad.pad_val) if pad is not None else 0.0)
    values = np.arange(256, dtype=np.float32) if lut is None else lut.astype(np.float32)
    image = cv2.flip(image, 1) if flip else np.ascontiguousarray(image)
    o = out.numpy()  # shares memory with `out`
    for c, channel in enumerate(cv2.split(image)):
        table = (values - normalize.mean[c]) / normalize.std[c]  # float32, as Normalize computes it
        o[c, :h, :w] = cv2.LUT(channel, table)
    label = np.asarray(label)[:, ::-1] if flip else np.asarray(label)
    if pad is None:  # e.g. the test pipeline: the label keeps its own size
        return out, torch.from_numpy(label.astype(np.int64))
    out_label = torch.full((H, W), pad.seg_pad_val, dtype=torch.int64)
    out_label.numpy()[:h, :w] = label
    return out, out_label


class FastCompose(Compose):
    """:class:`~setr_edu.data.transforms.Compose`, computed fast (see the module docstring for what differs).

    Accepts any sequence of ``RandomResize``, ``RandomCrop``, ``RandomFlip`` and ``PhotoMetricDistortion`` ending
    in ``Normalize``, optionally ``Pad``, and ``ToTensor`` (what ``train_pipeline`` and ``test_pipeline``
    build). Images that are not uint8 go through the readable path."""

    def __init__(self, transforms: list):
        super().__init__(transforms)
        head, tail = self.transforms, []
        while head and isinstance(head[-1], (Normalize, Pad, ToTensor)):
            head, tail = head[:-1], [head[-1]] + tail
        kinds = [type(t) for t in tail]
        if kinds not in ([Normalize, ToTensor], [Normalize, Pad, ToTensor]) or not all(
                isinstance(t, GEOMETRIC) for t in head):
            raise ValueError("FastCompose needs RandomResize/RandomCrop/RandomFlip/PhotoMetricDistortion steps "
                             "followed by Normalize, [Pad,] ToTensor; use Compose for other pipelines")
        self.head, self.normalize = head, tail[0]
        self.pad = tail[1] if len(tail) == 3 else None

    def readable(self) -> Compose:
        """The readable pipeline with the same steps (and so the same draws)."""
        return Compose(self.transforms)

    def __call__(self, image, label, rng: np.random.Generator | None = None):
        rng = np.random.default_rng() if rng is None else rng
        image, label = _as_numpy(image, label)
        if image.dtype != np.uint8:
            return super().__call__(image, label, rng)
        flip, lut = False, None
        for t in self.head:
            if isinstance(t, PhotoMetricDistortion):
                steps = t.draw(rng)
                if flip and any(name in ("saturation", "hue") for name, _ in steps):
                    # OpenCV's HSV -> RGB rounds the SIMD body and the scalar end of a row differently, so
                    # it is not exactly pixel by pixel: flip first, as the readable order does
                    image, label, flip = cv2.flip(image, 1), np.asarray(label)[:, ::-1], False
                image, lut = photometric_fast(image, steps, lut)
                continue
            if isinstance(t, RandomFlip):
                flip ^= t.draw(rng)
                continue
            if flip:  # a geometric step after a flip: make the flip real first
                image, label, flip = image[:, ::-1], np.asarray(label)[:, ::-1], False
            if lut is not None:  # and a resize needs the jittered colours
                image, lut = cv2.LUT(np.ascontiguousarray(image), lut), None
            if isinstance(t, RandomResize):
                size = t.draw_size(image.shape[0], image.shape[1], rng)
                image, resized = resize_fast(image, label if t.resize_label else None, size)
                label = resized if t.resize_label else label
            else:  # RandomCrop (on a ResizedLabel, only the candidate windows are computed)
                y0, y1, x0, x1 = t.choose(label, rng, accept_fast(t))
                image, label = np.ascontiguousarray(image[y0:y1, x0:x1]), label[y0:y1, x0:x1]
        return normalize_pad_tensor(image, label, self.normalize, self.pad, flip, lut)

    def __repr__(self) -> str:
        return "Fast" + super().__repr__()
