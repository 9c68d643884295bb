"""Joint image/mask transforms of the paper's recipe (paper §4 "Implementation details"; fudan-zvg/SETR ``configs/_base_/datasets/*.py``).

Training, in the official order (fudan-zvg/SETR = mmsegmentation 0.x configs):

1. :class:`RandomResize` ratio 0.5-2.0 of a base scale, keep aspect ratio (image bilinear, label nearest);
2. :class:`RandomCrop` with ``cat_max_ratio=0.75`` (re-draw up to 10 times if one class fills > 75% of the crop);
3. :class:`RandomFlip` horizontal, p = 0.5;
4. :class:`PhotoMetricDistortion`: brightness +-32, contrast 0.5-1.5, saturation 0.5-1.5, hue +-18, each p = 0.5;
5. :class:`Normalize` with ImageNet mean/std; 6. :class:`Pad` to the crop size (image 0, label 255); :class:`ToTensor`.

Every transform takes and returns ``(image, label)``: image ``(H, W, 3)`` numpy (uint8 until Normalize, then
float32), label ``(H, W)`` numpy. PIL images and ``(3, H, W)`` tensors are accepted at the input of
:class:`Compose`. Randomness comes only from a ``numpy.random.Generator`` passed as ``rng``: the datasets pass
one seeded by ``(seed, epoch, index)``, so an augmented sample is reproducible no matter which DataLoader worker
draws it, and a resumed run sees exactly the same crops (see :class:`SeededTransforms`).

The classes here are the readable version. ``train_pipeline`` and ``test_pipeline`` (:mod:`setr_edu.data.pipelines`)
return, by default, a
:class:`~setr_edu.data.fast_transforms.FastCompose` of the same steps: the same random draws and the same geometry,
computed with OpenCV and lookup tables (8x faster on one core: 3.9 instead of 32 ms per 512x512 ADE20K crop;
``setr_edu/data/fast_transforms.py`` says exactly how far apart the two can be). ``fast=False`` gives the readable :class:`Compose`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)  # RGB, 0-255 scale (mmseg img_norm_cfg)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
IGNORE_INDEX = 255


def to_tensor(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 image (H, W, 3) + label (H, W) -> ImageNet-normalised float (3, H, W) + int64 (H, W)."""
    return ToTensor()(*Normalize()(image, label))


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output index for nearest-neighbour resizing ``n_in -> n_out`` pixels:
    ``floor(i * n_in / n_out)`` (OpenCV's ``INTER_NEAREST``, which mmcv/mmseg use for labels; computed in double
    precision as OpenCV does). ``label[np.ix_(rows, cols)]`` is then the resized label."""
    return np.minimum(np.floor(np.arange(n_out) * (1.0 / (n_out / n_in))).astype(np.int64), n_in - 1)


def resize(image: np.ndarray, label: np.ndarray | None, size: tuple[int, int]):
    """Resize to ``size = (H, W)``: image bilinear (align_corners=False, no antialias, like OpenCV's INTER_LINEAR),
    label nearest (:func:`nearest_indices`). ``label=None`` resizes the image only."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    if image.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if label is None:
        return out, None
    rows, cols = nearest_indices(label.shape[0], size[0]), nearest_indices(label.shape[1], size[1])
    return out, label[np.ix_(rows, cols)]


def rescale_size(h: int, w: int, scale: tuple[int, int]) -> tuple[int, int]:
    """Keep-ratio target size (mmcv ``imrescale``): the largest size with long side <= max(scale) and short
    side <= min(scale). Returns ``(new_h, new_w)``."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


class RandomResize:
    """Resize so the image fits ``img_scale x ratio`` (keep ratio), ``ratio ~ U(ratio_range)``.

    ``img_scale`` is the base scale as (long, short) in any order, e.g. (2048, 512) for ADE20K. With
    ``ratio_range=None`` the ratio is 1 (the deterministic test-time resize). ``resize_label=False`` leaves the
    label at its original size (test time: metrics are computed at the original resolution, as in mmseg).
    ``short_side=True``: the short side becomes ``min(img_scale x ratio)`` whatever the long side (the test-time
    resize of the paper-era official code for Pascal Context, ``Resize(dataset='pascal_context')`` in
    fudan-zvg/SETR's first commit: 375x500 -> 520x693 with img_scale (520, 520))."""

    def __init__(self, img_scale: tuple[int, int], ratio_range: tuple[float, float] | None = (0.5, 2.0),
                 resize_label: bool = True, short_side: bool = False):
        self.img_scale, self.ratio_range, self.resize_label = tuple(img_scale), ratio_range, resize_label
        self.short_side = short_side

    def draw_size(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
        """Draw the ratio and return the output size ``(new_h, new_w)`` for an ``h x w`` image."""
        ratio = 1.0 if self.ratio_range is None else rng.uniform(*self.ratio_range)
        scale = (int(self.img_scale[0] * ratio), int(self.img_scale[1] * ratio))
        if self.short_side:  # official: target (short, short * long / short), then mmcv's imrescale to it
            scale = (min(scale), min(scale) * max(h, w) / min(h, w))
        return rescale_size(h, w, scale)

    def __call__(self, image, label, rng: np.random.Generator):
        size = self.draw_size(image.shape[0], image.shape[1], rng)
        image_out, label_out = resize(image, label if self.resize_label else None, size)
        return image_out, (label_out if self.resize_label else label)


class RandomCrop:
    """Random ``crop = (h, w)`` window (smaller images are kept whole; :class:`Pad` fills them later).

    ``cat_max_ratio < 1``: re-draw the window (up to 10 times) unless the crop holds at least two classes and
    none of them covers ``>= cat_max_ratio`` of the non-ignored pixels. As in mmseg, after 10 failures the
    11th window is used unchecked."""

    def __init__(self, crop: int | tuple[int, int], cat_max_ratio: float = 0.75, ignore_index: int = IGNORE_INDEX):
        self.crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
        self.cat_max_ratio, self.ignore_index = cat_max_ratio, ignore_index

    def window(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        y = int(rng.integers(0, max(h - self.crop[0], 0) + 1))
        x = int(rng.integers(0, max(w - self.crop[1], 0) + 1))
        return y, min(y + self.crop[0], h), x, min(x + self.crop[1], w)

    def accept(self, label_crop: np.ndarray) -> bool:
        counts = np.bincount(label_crop.ravel(), minlength=256)  # pixels per label value (uint8 labels)
        counts = counts[np.arange(len(counts)) != self.ignore_index]
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def choose(self, label: np.ndarray, rng: np.random.Generator, accept=None) -> tuple[int, int, int, int]:
        """The crop window ``(y0, y1, x0, x1)`` for ``label``, with the ``cat_max_ratio`` re-draws (``accept``:
        another implementation of :meth:`accept`)."""
        accept = accept or self.accept
        y0, y1, x0, x1 = self.window(*label.shape[:2], rng)
        if self.cat_max_ratio < 1:
            for _ in range(10):
                if accept(label[y0:y1, x0:x1]):
                    break
                y0, y1, x0, x1 = self.window(*label.shape[:2], rng)
        return y0, y1, x0, x1

    def __call__(self, image, label, rng: np.random.Generator):
        y0, y1, x0, x1 = self.choose(label, rng)
        return image[y0:y1, x0:x1], label[y0:y1, x0:x1]


class RandomFlip:
    """Horizontal flip of image and label together with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def draw(self, rng: np.random.Generator) -> bool:
        return bool(rng.uniform() < self.prob)

    def __call__(self, image, label, rng: np.random.Generator):
        if self.draw(rng):
            return image[:, ::-1], label[:, ::-1]
        return image, label


class PhotoMetricDistortion:
    """mmseg's photometric distortion on a uint8 RGB image (the label is untouched).

    Order: brightness, then contrast either first (mode 0: after hue) or second (mode 1), saturation, hue. Each
    step happens with p = 0.5. Saturation and hue act in OpenCV's 8-bit HSV (H in [0, 180), S and V in [0, 255]),
    so ``hue_delta=18`` is +-36 degrees, as in the official code."""

    def __init__(self, brightness_delta: int = 32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5),
                 hue_delta: int = 18):
        self.brightness_delta, self.hue_delta = brightness_delta, hue_delta
        self.contrast_range, self.saturation_range = contrast_range, saturation_range

    @staticmethod
    def _convert(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
        return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    def draw(self, rng: np.random.Generator) -> list[tuple[str, float]]:
        """The random steps in the order they apply, e.g. ``[("brightness", 12.5), ("hue", -7)]``."""
        steps = []
        if rng.integers(2):
            steps.append(("brightness", rng.uniform(-self.brightness_delta, self.brightness_delta)))
        mode = rng.integers(2)
        if mode == 1 and rng.integers(2):  # contrast first
            steps.append(("contrast", rng.uniform(*self.contrast_range)))
        if rng.integers(2):
            steps.append(("saturation", rng.uniform(*self.saturation_range)))
        if rng.integers(2):  # numpy's integers: high is exclusive, as in mmseg's randint
            steps.append(("hue", rng.integers(-self.hue_delta, self.hue_delta) if self.hue_delta else 0))
        if mode == 0 and rng.integers(2):  # contrast last
            steps.append(("contrast", rng.uniform(*self.contrast_range)))
        return steps

    def apply(self, img: np.ndarray, steps: list[tuple[str, float]]) -> np.ndarray:
        for name, value in steps:
            if name == "brightness":
                img = self._convert(img, beta=value)
            elif name == "contrast":
                img = self._convert(img, alpha=value)
            else:
                hsv = rgb_to_hsv(img)
                if name == "saturation":
                    hsv[..., 1] = self._convert(hsv[..., 1], alpha=value)
                else:
                    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + value) % 180
                img = hsv_to_rgb(hsv)
        return img

    def __call__(self, image, label, rng: np.random.Generator):
        return self.apply(image, self.draw(rng)), label


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 HSV in OpenCV's 8-bit convention (H = degrees / 2)."""
    x = rgb.astype(np.float32)
    v, mn = x.max(-1), x.min(-1)
    d = v - mn
    s = np.where(v > 0, 255 * d / np.maximum(v, 1e-6), 0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    dd = np.maximum(d, 1e-6)
    h = np.where(v == r, 60 * (g - b) / dd, np.where(v == g, 120 + 60 * (b - r) / dd, 240 + 60 * (r - g) / dd))
    h = np.where(d == 0, 0, h) % 360
    # round half up, as OpenCV's integer conversion does (np.rint would round half to even)
    return np.stack([np.floor(h / 2 + 0.5) % 180, np.floor(s + 0.5), v], -1).astype(np.uint8)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv` (uint8 in, uint8 out)."""
    h = hsv[..., 0].astype(np.float32) * 2 / 60  # sector in [0, 6)
    s, v = hsv[..., 1].astype(np.float32) / 255, hsv[..., 2].astype(np.float32)
    k = (np.array([5, 3, 1], dtype=np.float32) + h[..., None]) % 6  # R, G, B
    rgb = v[..., None] * (1 - s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


class Normalize:
    """(image - mean) / std per RGB channel -> float32 (ImageNet statistics on the 0-255 scale by default)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __call__(self, image, label, rng=None):
        return (np.asarray(image, dtype=np.float32) - self.mean) / self.std, label


class Pad:
    """Pad bottom/right up to ``size = (h, w)``: image with ``pad_val`` (0, i.e. the mean colour after
    Normalize), label with ``seg_pad_val`` (255, ignored by the loss and the metric)."""

    def __init__(self, size: int | tuple[int, int], pad_val: float = 0, seg_pad_val: int = IGNORE_INDEX):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.pad_val, self.seg_pad_val = pad_val, seg_pad_val

    def __call__(self, image, label, rng=None):
        ph, pw = max(self.size[0] - image.shape[0], 0), max(self.size[1] - image.shape[1], 0)
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=self.pad_val)
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=self.seg_pad_val)
        return image, label


class ToTensor:
    """(H, W, 3) image -> float32 tensor (3, H, W); (H, W) label -> int64 tensor (H, W)."""

    def __call__(self, image, label, rng=None):
        img = torch.from_numpy(np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1)))
        return img, torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))


class Compose:
    """Apply transforms in order; ``compose(image, label, rng)``. Without ``rng`` a fresh unseeded generator is
    used (fine for looking at samples, not for reproducible training: datasets pass a seeded one)."""

    def __init__(self, transforms: list):
        self.transforms = list(transforms)

    def __call__(self, image, label, rng: np.random.Generator | None = None):
        rng = np.random.default_rng() if rng is None else rng
        image, label = _as_numpy(image, label)
        for t in self.transforms:
            image, label = t(image, label, rng)
        return image, label

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"  {type(t).__name__}({vars(t)}),\n" for t in self.transforms) + ")"


def _as_numpy(image, label):
    if isinstance(image, torch.Tensor):  # (3, H, W) -> (H, W, 3)
        image = image.permute(1, 2, 0).numpy()
    if isinstance(label, torch.Tensor):
        label = label.numpy()
    return np.asarray(image), np.asarray(label)


class SeededTransforms:
    """Mixin for datasets: ``apply_transforms(image, label, index)`` runs ``self.transforms`` with a generator
    seeded by ``(transform_seed, epoch, index)``. Call ``set_epoch(e)`` each epoch (like DistributedSampler) so
    every epoch sees new augmentations while any sample stays reproducible. Plain callables
    ``f(image, label)`` (no rng argument) are called as they are."""

    transforms = None
    transform_seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def apply_transforms(self, image, label, index: int):
        if self.transforms is None:
            return to_tensor(image, label)
        if isinstance(self.transforms, Compose):
            rng = np.random.default_rng([self.transform_seed, self.epoch, index])
            return self.transforms(image, label, rng)
        return self.transforms(image, label)
