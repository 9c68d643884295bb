"""Small files in the real on-disk formats, shared by the data tests (test_download, test_archives)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def png(shape) -> bytes:
    """A black PNG of ``shape`` ((H, W) grey or (H, W, 3) RGB), as bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros(shape, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def cityscapes_zips(root: Path, labels: str = "labelTrainIds") -> None:
    """The two official Cityscapes zips in ``root`` (``leftImg8bit_trainvaltest.zip``, ``gtFine_trainvaltest.zip``)
    with one 12x16 image per split and its ``_gtFine_<labels>.png``, in the official layout."""
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "leftImg8bit_trainvaltest.zip", "w") as z:
        for split in ("train", "val"):
            z.writestr(f"leftImg8bit/{split}/aachen/aachen_000000_000019_leftImg8bit.png", png((12, 16, 3)))
    with zipfile.ZipFile(root / "gtFine_trainvaltest.zip", "w") as z:
        for split in ("train", "val"):
            z.writestr(f"gtFine/{split}/aachen/aachen_000000_000019_gtFine_{labels}.png", png((12, 16)))
