"""A procedural segmentation task where global context matters (the paper's thesis in miniature).

SETR's claim (paper §1, §3) is that a transformer encoder gives every pixel a *global* receptive field from the
first layer on, while a CNN only sees a local window that grows slowly with depth. This dataset makes that claim
testable in minutes on a laptop:

* every image has a smooth random background texture and 2-4 shapes (``circle``, ``square``, ``triangle``) of
  random colour, size, position and rotation;
* one corner holds a small solid **key** block whose colour (red or blue by default) is the only thing that says
  which "world" the image belongs to;
* every shape pixel's class is the key's colour: ``object|red`` if the key is red, ``object|blue`` if it is
  blue, whatever the shape looks like (shape and colour are independent of the key).
  ``class_per_shape=True`` makes the harder variant where the class is ``(shape, key)``, e.g. ``circle|red``.

A model that only sees a local window around a shape can find the object but must guess the key, so it confuses
``object|red`` with ``object|blue``; a model that can look across the whole image (self-attention) can read the key.
Shapes are kept far from the key (at least ``key_clearance`` x image size away from its centre), so no
small receptive field covers both. The key block itself is labelled 255 (``ignore``): it is a cue, not an object.

With ``num_keys=1`` the key carries no information, which gives the "context-free" control task.

    >>> ds = SyntheticContextDataset(4, img_size=64, seed=0)
    >>> image, label = ds[0]
    >>> tuple(image.shape), tuple(label.shape), label.dtype
    ((3, 64, 64), (64, 64), torch.int64)
    >>> ds.num_classes, ds.class_names
    (3, ('background', 'object|red', 'object|blue'))
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import SeededTransforms

SHAPES = ("circle", "square", "triangle")
# Key colours (RGB) and their names; the first ``num_keys`` are used.
KEY_COLOURS = {"red": (225, 30, 30), "blue": (30, 80, 235), "yellow": (240, 220, 20), "green": (20, 190, 60)}
SPLITS = {"train": 0, "val": 1, "test": 2}
IGNORE_INDEX = 255


class SyntheticContextDataset(SeededTransforms, Dataset):
    """Procedural "shapes + key" segmentation, deterministic per ``(seed, split, index)``.

    Args:
        num_samples: dataset length (images are generated on the fly; nothing is stored).
        img_size: side length H = W in pixels (96 for the ``cpu`` profile, 64 for ``ci``).
        seed: base seed.
        split: ``"train"``, ``"val"`` or ``"test"``: an independent stream each, so train and val never share
            an image.
        num_keys: number of key colours (1-4). Classes are ``background`` + one per key colour
            (+ one per (shape, key) pair with ``class_per_shape=True``).
        num_shapes: (min, max) shapes per image.
        key_size: side of the key block as a fraction of ``img_size``.
        key_clearance: shape centres are at least this fraction of ``img_size`` away from the key's centre.
        shapes: the shape kinds drawn (a subset of ``SHAPES``).
        class_per_shape: also split classes by shape kind (harder: a tiny ViT needs many more steps).
        key_corner: put the key in this corner (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)
            instead of a random one.
        transforms: optional ``setr_edu.data.transforms.Compose`` (called with a generator seeded by
            ``(seed, epoch, index)``, see ``set_epoch``) or any callable ``(image_uint8_HWC, label_HW)``; the
            default gives a float tensor ``(3, H, W)`` normalised with ImageNet mean/std and an int64 ``(H, W)``.

    ``ds[i]`` -> ``(image, label)``; ``ds.get_raw(i)`` -> ``(image uint8 (H, W, 3), label uint8 (H, W))`` for plots.
    Label values are in ``[0, num_classes)`` or 255 (the key block).
    """

    def __init__(self, num_samples: int, img_size: int = 96, seed: int = 0, split: str = "train",
                 num_keys: int = 2, num_shapes: tuple[int, int] = (2, 4), key_size: float = 1 / 6,
                 key_clearance: float = 0.6, shapes: tuple[str, ...] = SHAPES, class_per_shape: bool = False,
                 key_corner: int | None = None, transforms: Callable | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if not 1 <= num_keys <= len(KEY_COLOURS):
            raise ValueError(f"num_keys must be between 1 and {len(KEY_COLOURS)}, got {num_keys}")
        if img_size < 32:
            raise ValueError(f"img_size must be at least 32 pixels for shapes to be recognisable, got {img_size}")
        self.num_samples, self.img_size, self.seed, self.split = int(num_samples), int(img_size), seed, split
        unknown = set(shapes) - set(SHAPES)
        if unknown or not shapes:
            raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {shapes!r}")
        self.shapes, self.key_corner, self.class_per_shape = tuple(shapes), key_corner, class_per_shape
        self.num_keys, self.num_shapes = num_keys, tuple(num_shapes)
        self.key_size, self.key_clearance = key_size, key_clearance
        self.transforms, self.transform_seed = transforms, seed
        self.key_names = tuple(list(KEY_COLOURS)[:num_keys])
        kinds = self.shapes if class_per_shape else ("object",)
        self.class_names = ("background",) + tuple(f"{s}|{k}" for k in self.key_names for s in kinds)
        self.num_classes = len(self.class_names)
        self.ignore_index = IGNORE_INDEX
        self.palette = self._make_palette()

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        image, label = self.get_raw(index)
        return self.apply_transforms(image, label, index)

    def class_index(self, shape: str, key: str) -> int:
        """Label value of ``shape`` ("circle" | "square" | "triangle") in an image whose key is ``key``."""
        if not self.class_per_shape:
            return 1 + self.key_names.index(key)
        return 1 + self.key_names.index(key) * len(self.shapes) + self.shapes.index(shape)

    def get_raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw sample: image uint8 ``(H, W, 3)`` and label uint8 ``(H, W)`` (no transforms)."""
        return self.render(index)[:2]

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """Draw sample ``index``: ``(image, label, info)``; ``info`` says where the key is and what was drawn."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for a dataset of {self.num_samples} samples")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        S = self.img_size
        image = _background(rng, S)  # (S, S, 3) float in [0, 255]
        label = np.zeros((S, S), dtype=np.uint8)

        key = int(rng.integers(self.num_keys))
        corner = int(rng.integers(4)) if self.key_corner is None else self.key_corner  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
        k = max(4, round(self.key_size * S))
        ky, kx = (0 if corner < 2 else S - k), (0 if corner % 2 == 0 else S - k)
        key_centre = np.array([ky + k / 2, kx + k / 2])

        yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5  # pixel centres
        shapes = []
        for _ in range(int(rng.integers(self.num_shapes[0], self.num_shapes[1] + 1))):
            r = rng.uniform(0.09, 0.16) * S  # "radius": large enough to cover several 8x8 patches at 96 px
            for _attempt in range(50):  # rejection-sample a centre far from the key
                c = rng.uniform(r, S - r, size=2)
                if np.linalg.norm(c - key_centre) >= self.key_clearance * S:
                    break
            else:
                continue
            kind = self.shapes[int(rng.integers(len(self.shapes)))]
            mask = _shape_mask(kind, yy - c[0], xx - c[1], r, rng.uniform(0, 2 * np.pi))
            colour = _random_colour(rng)
            shade = 1 + 0.15 * ((yy - c[0]) + (xx - c[1])) / (2 * r)  # gentle gradient so shapes look solid
            image[mask] = np.clip(colour[None, :] * shade[mask][:, None], 0, 255)
            label[mask] = self.class_index(kind, self.key_names[key])
            shapes.append(dict(kind=kind, centre=c.tolist(), radius=float(r)))

        image[ky:ky + k, kx:kx + k] = KEY_COLOURS[self.key_names[key]]
        label[ky:ky + k, kx:kx + k] = IGNORE_INDEX
        image += rng.normal(0, 6, size=image.shape)  # sensor noise everywhere (key included)
        info = dict(key=self.key_names[key], corner=corner, key_box=(ky, kx, k), shapes=shapes)
        return np.clip(image, 0, 255).astype(np.uint8), label, info

    def _make_palette(self) -> np.ndarray:
        """(K, 3) uint8 colours for plotting labels: dark grey background, each key's hue (one shade per shape)."""
        rows = [(40, 40, 40)]
        for name in self.key_names:
            base = np.array(KEY_COLOURS[name], dtype=np.float32)
            for shade in ((1.0, 0.7, 0.45)[:len(self.shapes)] if self.class_per_shape else (1.0,)):
                rows.append(tuple(np.clip(base * shade + (1 - shade) * 255 * 0.35, 0, 255)))
        return np.array(rows, dtype=np.uint8)

    def __repr__(self) -> str:
        return (f"SyntheticContextDataset(num_samples={self.num_samples}, img_size={self.img_size}, seed={self.seed}, "
                f"split={self.split!r}, num_keys={self.num_keys}, class_per_shape={self.class_per_shape}, "
                f"num_classes={self.num_classes})")


def _background(rng: np.random.Generator, S: int) -> np.ndarray:
    """Smooth coloured noise: a random 6x6 grid bilinearly upsampled to (S, S, 3), muted greys/browns."""
    grid = rng.uniform(70, 170, size=(6, 6, 1)) + rng.uniform(-20, 20, size=(6, 6, 3))
    t = torch.from_numpy(grid.transpose(2, 0, 1)[None].astype(np.float32))
    up = torch.nn.functional.interpolate(t, size=(S, S), mode="bilinear", align_corners=False)
    return up[0].numpy().transpose(1, 2, 0).copy()


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour of random hue (any hue: shape colour says nothing about the class)."""
    h = rng.uniform(0, 1)
    rgb = np.clip(np.abs(((h * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1)  # HSV(h, 1, 1) -> RGB
    return (60 + 180 * rgb).astype(np.float32)


def _shape_mask(kind: str, dy: np.ndarray, dx: np.ndarray, r: float, angle: float) -> np.ndarray:
    """Boolean (S, S) mask of a rotated shape with "radius" r, given pixel offsets from its centre."""
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the coordinates, not the shape
    if kind == "circle":
        return u * u + v * v <= r * r
    if kind == "square":
        h = r * 0.85  # half side: similar area to the circle
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if kind == "triangle":
        R = r * 1.25  # circumradius of an equilateral triangle; inside = on the inner side of all 3 edges
        inside = np.ones_like(u, dtype=bool)
        for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= (u * np.cos(a) + v * np.sin(a)) <= R / 2
        return inside
    raise ValueError(f"unknown shape {kind!r}; choose one of {SHAPES}")
