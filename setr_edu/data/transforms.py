"""Joint image/mask transforms (paper §4 "Implementation details"; spec §4.2). Full pipeline to follow."""
from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)  # RGB, 0-255 scale (mmseg img_norm_cfg)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def to_tensor(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 image (H, W, 3) + label (H, W) -> ImageNet-normalised float (3, H, W) + int64 (H, W)."""
    img = (np.asarray(image, dtype=np.float32) - IMAGENET_MEAN) / IMAGENET_STD  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), torch.from_numpy(np.asarray(label).astype(np.int64))
