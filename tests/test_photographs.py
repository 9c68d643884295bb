"""The two public-domain photographs shipped with the package (chapters 1 and 13): the loader, the files pinned by
SHA-256, and the licence text naming each of them."""
import hashlib
import re

import numpy as np
import pytest

from setr_edu.data import PHOTOS, photo
from setr_edu.data.photographs import PHOTO_DIR

# Pinned: the rocket is scikit-image 0.26.0's skimage/data/rocket.jpg byte for byte (its _registry.py has the same
# hash); the coffee cup is its coffee.png re-encoded as JPEG at quality 90.
SHA256 = {
    "coffee.jpg": "db702e664b962a9daec5ef9395a7ffe7290aa9ef91471a3886717fc1cceaf325",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
}
LICENCE = PHOTO_DIR / "README.md"


def test_the_shipped_files_are_the_pinned_ones_and_small():
    files = sorted(p.name for p in PHOTO_DIR.glob("*.jpg"))
    assert files == sorted(SHA256) == sorted(p.file for p in PHOTOS.values())
    for name, digest in SHA256.items():
        assert hashlib.sha256((PHOTO_DIR / name).read_bytes()).hexdigest() == digest, name
    assert sum((PHOTO_DIR / n).stat().st_size for n in SHA256) < 250_000  # the wheel stays small


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_photo_is_rgb_uint8_of_its_stated_size(name):
    rgb = photo(name)
    assert rgb.dtype == np.uint8 and rgb.shape == (*PHOTOS[name].size, 3)
    assert rgb.flags.writeable  # torch.from_numpy warns on a read-only array
    assert 40 < rgb.mean() < 215 and rgb.std() > 20  # a picture, not a blank or a decoding failure


def test_rocket_has_ade20k_like_aspect():
    h, w = photo("rocket").shape[:2]
    assert (h, w) == (427, 640) and h < w  # non-square, landscape, like most ADE20K images


@pytest.mark.parametrize("name", sorted(SHA256))
def test_licence_text_names_each_file_with_its_source_and_licence(name):
    text = LICENCE.read_text()
    section = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, f"{LICENCE} has no section for {name}"
    body = section.group(1)
    assert "Licence:" in body and "Photographer:" in body and "scikit-image" in text
    if name == "rocket.jpg":  # byte for byte scikit-image's file: the same hash as its registry
        assert SHA256[name] in body
    assert re.search(r"public domain|CC0", body)


def test_credit_lines_state_the_licence():
    for p in PHOTOS.values():
        assert re.search(r"public domain|CC0", p.credit) and "scikit-image" in p.credit


def test_unknown_name_is_refused_with_one_line_listing_the_known_ones():
    with pytest.raises(ValueError) as e:
        photo("astronaut")
    msg = str(e.value)
    assert "\n" not in msg and "'astronaut'" in msg and all(n in msg for n in PHOTOS)
