"""Class names and colour palettes of the paper's datasets (paper §4.1 "Datasets").

* ADE20K SceneParsing: 150 classes (index 0 of the PNGs, "other", is ignored; class k is stored as k + 1);
* Cityscapes: the 19 evaluation classes (``trainId`` 0-18), with the official Cityscapes colours;
* Pascal Context: 60 classes, background + 59 (the setting of the paper's Table 5).

ADE20K and Pascal Context have no single official colour table, so their palettes come from
:func:`voc_colormap`, the bit-interleaving colour map of the PASCAL VOC devkit: every index gets a distinct,
reproducible colour. ``palette_for(name)`` returns ``(names, palette (K, 3) uint8)``; :func:`colorize` paints a label map with one.

    >>> names, pal = palette_for("cityscapes")
    >>> len(names), pal.shape, names[0], pal[0].tolist()
    (19, (19, 3), 'road', [128, 64, 128])
"""
from __future__ import annotations

import numpy as np
import torch

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)

PASCAL_CONTEXT_CLASSES = (
    "background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book",
    "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer",
    "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass",
    "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
    "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa",
    "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood",
)


def voc_colormap(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: the bits of each index are spread over the high bits of R, G and B (PASCAL VOC)."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):  # 3 bits of the index per round, most significant colour bit first
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        out[i] = (r, g, b)
    return out


def _shifted_voc(n: int) -> np.ndarray:
    """VOC colours starting at index 1 (index 0 is black in VOC; black is kept for 'ignore' in our plots)."""
    return voc_colormap(n + 1)[1:]


PALETTES = {
    "ade20k": (ADE20K_CLASSES, _shifted_voc(len(ADE20K_CLASSES))),
    "cityscapes": (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE),
    "pascal_context": (PASCAL_CONTEXT_CLASSES, voc_colormap(len(PASCAL_CONTEXT_CLASSES))),
}


def palette_for(dataset: str) -> tuple[tuple[str, ...], np.ndarray]:
    """``(class_names, palette (K, 3) uint8)`` of ``"ade20k"``, ``"cityscapes"`` or ``"pascal_context"``."""
    if dataset not in PALETTES:
        raise ValueError(f"no palette for dataset {dataset!r}; choose one of {sorted(PALETTES)}")
    return PALETTES[dataset]


def generic_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 distinct colours for any K (e.g. a :class:`~setr_edu.data.datasets.FolderDataset`)."""
    return _shifted_voc(num_classes)


def colorize(label: torch.Tensor | np.ndarray, palette: np.ndarray, ignore_colour=(0, 0, 0)) -> np.ndarray:
    """Label map ``(H, W)`` -> RGB ``uint8 (H, W, 3)`` using ``palette`` ``(K, 3)``; ignore (255) gets ``ignore_colour``."""
    label = label.cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    palette = np.asarray(palette, dtype=np.uint8)
    out = np.empty((*label.shape, 3), dtype=np.uint8)
    valid = label < len(palette)
    out[valid] = palette[label[valid]]
    out[~valid] = ignore_colour
    return out
