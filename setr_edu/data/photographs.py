"""Two public-domain photographs shipped with the package (``setr_edu/data/photos/``), so that a chapter can show a
real picture from an empty folder, offline: ``photo("coffee")`` (600x400) and ``photo("rocket")`` (640x427, the
aspect of an ADE20K image). Both come from scikit-image's data module; ``photos/README.md`` states their sources
and licences, and ``PHOTOS[name].credit`` gives the one line a figure should carry."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import read_image

PHOTO_DIR = Path(__file__).with_name("photos")


@dataclass(frozen=True)
class Photo:
    """One shipped photograph: its file in ``PHOTO_DIR``, size as ``(height, width)``, and who took it under
    which licence (``credit``: one line for a caption; ``photos/README.md`` has the full record)."""

    file: str
    size: tuple[int, int]
    credit: str


PHOTOS = {
    "coffee": Photo("coffee.jpg", (400, 600),
                    "Rachel Michetti / Pikolo Espresso Bar, CC0 (public domain), via scikit-image"),
    "rocket": Photo("rocket.jpg", (427, 640), "SpaceX, public domain, via scikit-image"),
}


def photo(name: str) -> np.ndarray:
    """The shipped photograph ``name`` (a key of ``PHOTOS``) as a writable RGB ``uint8 (H, W, 3)`` array, like
    ``read_image`` (``torch.from_numpy`` takes it without a warning); ``ValueError`` naming the known photographs
    otherwise."""
    if name not in PHOTOS:
        raise ValueError(f"no photograph {name!r}: setr_edu ships {', '.join(sorted(PHOTOS))}")
    return read_image(PHOTO_DIR / PHOTOS[name].file).copy()
