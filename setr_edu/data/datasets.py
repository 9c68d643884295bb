"""Loaders for the paper's datasets in their real on-disk layouts (paper §4.1), plus a generic folder dataset.

* **ADE20K** (150 classes): ``ADEChallengeData2016/images/{training,validation}/*.jpg`` and
  ``ADEChallengeData2016/annotations/{training,validation}/*.png``; 0 ("other") becomes 255 and k becomes k - 1
  (mmseg's ``reduce_zero_label``).
* **Cityscapes** (19 classes): ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
  ``gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png`` (255 = ignore).
* **Pascal Context** (60 classes, 0 = background): ``VOCdevkit/VOC2010/JPEGImages/*.jpg``,
  ``VOCdevkit/VOC2010/SegmentationClassContext/*.png`` and
  ``VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt``.
* **FolderDataset** (any classes): ``images/<split>/*.jpg|png`` and ``annotations/<split>/*.png`` (same stems).

``root`` may also be the inner folder (``ADEChallengeData2016``, ``VOC2010``). Every item is
``(image, label)``: by default a float tensor ``(3, H, W)`` normalised with ImageNet mean/std and an int64 label
``(H, W)``; pass ``transforms=train_pipeline(...)`` for the paper's augmentation. ``get_raw(i)`` gives the uint8
image ``(H, W, 3)`` and the uint8 label after the dataset's label mapping. A missing folder raises
:class:`DatasetNotFoundError` with the expected layout and where to download; a label value that is neither a
class nor 255 raises a ``ValueError`` naming the file.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .palettes import generic_palette, palette_for
from .download import instructions
from .transforms import SeededTransforms

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}  # a file cut short (a partial copy) lacks its end marker
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what PIL raises on a bad file


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder is missing or malformed; the message says what layout is expected and where to get it."""


class BadFileError(ValueError):
    """An image or label file that cannot be used (unreadable, truncated, wrong size or values); names the file."""


def _why(e: Exception) -> str:
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__


# EXIF tag 0x0112 (Orientation) -> the transpose that shows the picture upright (what photo viewers and
# PIL.ImageOps.exif_transpose do): a phone stores a portrait photo as the sensor read it, with tag 6.
EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                  5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 = stored upright) from the header alone (a PNG's eXIf chunk counts only when
    it comes before the pixels, so the header read and the full read agree)."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        return int(im.getexif().get(0x0112, 1))
    except (ValueError, TypeError, SyntaxError, OSError):  # a broken EXIF block: show the pixels as stored
        return 1


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB. 8-bit modes go through ``convert("RGB")``; deeper ones are scaled, not clipped:
    16-bit integers by 1/257 (65535 -> 255), 32-bit integers the same if they fit in 16 bits, else by their
    maximum; floats in [0, 1] by 255 (the usual convention), in [0, 255] as they are, larger by their maximum
    (NaN -> 0). ``convert`` alone would clip 16-bit values above 255 to white and floats in [0, 1] to black.
    (16-bit RGB PNGs are already reduced to 8 bits per channel by Pillow when it opens them.)"""
    if not (im.mode.startswith("I") or im.mode == "F"):
        return np.asarray(im.convert("RGB"))
    a = np.asarray(im).astype(np.float64)  # (H, W)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    top = a.max(initial=0)
    if im.mode.startswith("I;16") or (im.mode == "I" and 255 < top <= 65535):
        a = a / 257
    elif im.mode == "F" and top <= 1:
        a = a * 255
    elif top > 255:
        a = a * (255 / top)
    return np.repeat(a.round().clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)


def read_image(path) -> np.ndarray:
    """The image at ``path`` as RGB ``uint8 (H, W, 3)``, as a viewer shows it: EXIF orientation applied,
    16-bit and float images scaled to 8 bits (:func:`_to_rgb8`); ``BadFileError`` naming the file if it cannot
    be decoded (random bytes, a truncated JPEG, a text file with an image suffix)."""
    try:
        with Image.open(path) as im:
            turn = EXIF_TRANSPOSE.get(_orientation(im))
            rgb = _to_rgb8(im)
    except UNREADABLE as e:
        raise BadFileError(f"{path} is not a readable image ({_why(e)})") from None
    return np.asarray(Image.fromarray(rgb).transpose(turn)) if turn is not None else rgb


def image_header(path) -> tuple[int, int]:
    """``(width, height)`` of an image as displayed (EXIF orientation applied) from its header alone, checking
    that the file ends with its format's end marker (JPEG, PNG), which catches files cut short without decoding
    them; ``BadFileError`` otherwise."""
    try:
        with Image.open(path) as im:
            size, fmt = im.size, im.format
            if _orientation(im) in (5, 6, 7, 8):  # turned by 90 degrees: width and height swap
                size = size[::-1]
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 1024))
            tail = f.read()
    except UNREADABLE as e:
        raise BadFileError(f"{path} is not a readable image ({_why(e)})") from None
    marker = END_MARKERS.get(fmt)
    if marker and marker not in tail:
        raise BadFileError(f"{path} is truncated (no {fmt} end marker): copy or download it again")
    return size


def _not_found(dataset: str, problem: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{problem}\n\n{instructions(dataset)}")


class SegmentationDataset(SeededTransforms, Dataset):
    """Base class: a list of ``(image_path, label_path)`` pairs plus class names, palette and label mapping."""

    name = "folder"

    def __init__(self, pairs: list[tuple[Path, Path]], class_names, palette=None, reduce_zero_label: bool = False,
                 transforms: Callable | None = None, transform_seed: int = 0):
        self.pairs, self.class_names = list(pairs), tuple(class_names)
        self.num_classes = len(self.class_names)
        self.palette = np.asarray(palette if palette is not None else generic_palette(self.num_classes), np.uint8)
        self.reduce_zero_label, self.ignore_index = reduce_zero_label, IGNORE_INDEX
        self.transforms, self.transform_seed = transforms, transform_seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image, label = self.get_raw(index)
        return self.apply_transforms(image, label, index)

    def get_raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image uint8 ``(H, W, 3)`` RGB and label uint8 ``(H, W)`` in ``[0, num_classes)`` or 255."""
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = self.read_label(label_path)
        if label.shape != image.shape[:2]:
            raise BadFileError(f"{label_path} is {label.shape[1]}x{label.shape[0]} but its image {image_path} is "
                             f"{image.shape[1]}x{image.shape[0]}; image and label must have the same size")
        return image, label

    def read_label(self, path: Path) -> np.ndarray:
        """Read a single-channel PNG of class indices, apply ``reduce_zero_label`` and check every value."""
        try:
            with Image.open(path) as im:
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise BadFileError(f"label file {path} has mode {im.mode!r}; expected a single-channel PNG of "
                                       f"class indices (mode 'L' or 'P'), not a colour-coded mask")
                label = np.asarray(im)
        except (OSError, SyntaxError, Image.DecompressionBombError) as e:
            raise BadFileError(f"label file {path} is not a readable image ({_why(e)})") from None
        if label.max(initial=0) > 255:
            raise BadFileError(f"label file {path} holds values up to {label.max()}; class indices must fit in 0-255")
        label = label.astype(np.uint8)
        if self.reduce_zero_label:  # 0 ("other") -> 255 (ignored), k -> k - 1
            label = (label.astype(np.int16) - 1).astype(np.uint8)  # 0 - 1 wraps to 255
            label[label == 254] = IGNORE_INDEX  # a stored 255 stays ignored (mmseg does the same)
        counts = np.bincount(label.ravel(), minlength=256)
        bad = [int(v) for v in np.flatnonzero(counts) if v >= self.num_classes and v != IGNORE_INDEX]
        if bad:
            stored = [v + 1 for v in bad] if self.reduce_zero_label else bad  # the values as written in the file
            raise BadFileError(f"label file {path} holds values {stored[:10]} that are neither a class in "
                             f"[0, {self.num_classes}) nor {IGNORE_INDEX} (ignore)"
                             + (f" after reduce_zero_label (k -> k - 1, so the file may hold 0-{self.num_classes})"
                                if self.reduce_zero_label else "")
                             + f"; is this really a {self.name} label map?")
        return label

    def bad_files(self, threads: int | None = None) -> list[str]:
        """One line per unusable file: every image readable (header + end marker, no full decode), every label
        decoded and checked (single channel, values, same size as its image). Threads overlap the reads."""

        def check(pair) -> list[str]:
            image_path, label_path = pair
            problems, size = [], None
            try:
                size = image_header(image_path)
            except BadFileError as e:
                problems.append(str(e))
            try:
                h, w = self.read_label(label_path).shape
                if size and (w, h) != size:
                    problems.append(f"{label_path} is {w}x{h} but its image {image_path} is {size[0]}x{size[1]}")
            except BadFileError as e:
                problems.append(str(e))
            return problems

        with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
            return [p for found in pool.map(check, self.pairs) for p in found]

    def validate(self, threads: int | None = None) -> "SegmentationDataset":
        """Check every file (``bad_files``) and raise one ``BadFileError`` naming all the bad ones."""
        bad = self.bad_files(threads)
        if bad:
            raise BadFileError(f"{len(bad)} problem(s) in the {len(self)} image/label pairs of {self.name}:\n  "
                               + "\n  ".join(bad) + "\nFix or remove these files (an image and its label together).")
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {self.num_classes} classes)"


def _find_root(root, inner: str, must_have: str, dataset: str) -> Path:
    """``root`` or ``root/inner``, whichever contains ``must_have``."""
    root = Path(root).expanduser()
    for candidate in (root / inner, root):
        if (candidate / must_have).is_dir():
            return candidate
    raise _not_found(dataset, f"{dataset}: no {inner}/{must_have} folder under {root.resolve()}")


def _check_split(split: str, allowed: dict) -> str:
    if split not in allowed:
        raise ValueError(f"split must be one of {sorted(allowed)}, got {split!r}")
    return allowed[split]


def _pairs_or_raise(pairs, dataset: str, where: Path):
    if not pairs:
        raise _not_found(dataset, f"{dataset}: found no image/label pairs in {where}")
    return sorted(pairs)


class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing (``ADEChallengeData2016``), 150 classes, ``reduce_zero_label``; splits train | val."""

    name = "ade20k"

    def __init__(self, root, split: str = "train", transforms: Callable | None = None, transform_seed: int = 0):
        sub = _check_split(split, {"train": "training", "val": "validation"})
        base = _find_root(root, "ADEChallengeData2016", f"images/{sub}", self.name)
        ann = base / "annotations" / sub
        if not ann.is_dir():
            raise _not_found(self.name, f"ade20k: {ann} is missing (images without annotations)")
        pairs = []
        for img in (base / "images" / sub).glob("*.jpg"):
            label = ann / (img.stem + ".png")
            if not label.is_file():
                raise _not_found(self.name, f"ade20k: {img.name} has no annotation {label}")
            pairs.append((img, label))
        names, palette = palette_for("ade20k")
        super().__init__(_pairs_or_raise(pairs, self.name, base / "images" / sub), names, palette,
                         reduce_zero_label=True, transforms=transforms, transform_seed=transform_seed)


class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations, 19 classes from ``*_gtFine_labelTrainIds.png``; splits train | val."""

    name = "cityscapes"

    def __init__(self, root, split: str = "train", transforms: Callable | None = None, transform_seed: int = 0):
        sub = _check_split(split, {"train": "train", "val": "val"})
        base = _find_root(root, "cityscapes", f"leftImg8bit/{sub}", self.name)
        pairs, missing = [], []
        for img in (base / "leftImg8bit" / sub).glob("*/*_leftImg8bit.png"):
            stem = img.name[: -len("_leftImg8bit.png")]
            label = base / "gtFine" / sub / img.parent.name / f"{stem}_gtFine_labelTrainIds.png"
            (pairs if label.is_file() else missing).append((img, label))
        if missing:
            hint = ("the gtFine_labelIds.png files exist but the trainId versions do not: run cityscapesScripts' "
                    "createTrainIdLabelImgs (see below)" if Path(str(missing[0][1]).replace("labelTrainIds", "labelIds")
                                                              ).is_file() else "gtFine is missing or incomplete")
            raise _not_found(self.name, f"cityscapes: {len(missing)} images have no {missing[0][1].name}-style label "
                                        f"(e.g. {missing[0][1]}); {hint}")
        names, palette = palette_for("cityscapes")
        super().__init__(_pairs_or_raise(pairs, self.name, base / "leftImg8bit" / sub), names, palette,
                         transforms=transforms, transform_seed=transform_seed)


class PascalContext(SegmentationDataset):
    """Pascal Context, 60 classes (background + 59), mmseg's preprocessed VOC2010 layout; splits train | val."""

    name = "pascal_context"

    def __init__(self, root, split: str = "train", transforms: Callable | None = None, transform_seed: int = 0):
        _check_split(split, {"train": "train", "val": "val"})
        root = Path(root).expanduser()
        base = next((c for c in (root / "VOCdevkit" / "VOC2010", root / "VOC2010", root)
                     if (c / "JPEGImages").is_dir()), None)
        if base is None:
            raise _not_found(self.name, f"pascal_context: no VOCdevkit/VOC2010/JPEGImages folder under {root.resolve()}")
        split_file = base / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        if not split_file.is_file() or not (base / "SegmentationClassContext").is_dir():
            raise _not_found(self.name, f"pascal_context: {split_file} or {base / 'SegmentationClassContext'} is "
                                        f"missing (the 60-class labels must be converted first)")
        pairs = []
        for name in split_file.read_text().split():
            img, label = base / "JPEGImages" / f"{name}.jpg", base / "SegmentationClassContext" / f"{name}.png"
            if not (img.is_file() and label.is_file()):
                raise _not_found(self.name, f"pascal_context: {split_file.name} lists {name!r} but {img} or {label} "
                                            f"does not exist")
            pairs.append((img, label))
        names, palette = palette_for("pascal_context")
        super().__init__(_pairs_or_raise(pairs, self.name, split_file), names, palette,
                         transforms=transforms, transform_seed=transform_seed)


class FolderDataset(SegmentationDataset):
    """Any image/mask folder pair; masks are single-channel PNGs of class indices with the image's stem.

    Either ``FolderDataset(images_dir, masks_dir, num_classes=K)`` or ``FolderDataset(root, split="train")`` for
    ``root/images/<split>`` + ``root/annotations/<split>`` (``masks/`` also accepted). Class names come from
    ``class_names``, else ``root/classes.txt`` (one per line), else ``num_classes``, else the largest label value
    found + 1 (reads every mask once). ``reduce_zero_label=True`` treats 0 as "ignore" like ADE20K.
    """

    def __init__(self, images_dir, masks_dir=None, split: str | None = None, num_classes: int | None = None,
                 class_names=None, palette=None, reduce_zero_label: bool = False,
                 transforms: Callable | None = None, transform_seed: int = 0):
        images_dir = Path(images_dir).expanduser()
        root = images_dir
        if masks_dir is None:
            masks = next((root / m for m in ("annotations", "masks") if (root / m).is_dir()), root / "annotations")
            images_dir, masks_dir = root / "images", masks
            if split is not None:
                images_dir, masks_dir = images_dir / split, masks_dir / split
        masks_dir = Path(masks_dir).expanduser()
        for d in (images_dir, masks_dir):
            if not d.is_dir():
                raise _not_found("folder", f"folder dataset: {d} does not exist")
        pairs, orphans = [], []
        for img in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            mask = masks_dir / (img.stem + ".png")
            (pairs if mask.is_file() else orphans).append((img, mask))
        if orphans:
            raise _not_found("folder", f"folder dataset: {len(orphans)} images in {images_dir} have no mask in "
                                       f"{masks_dir} (e.g. {orphans[0][0].name} -> {orphans[0][1].name})")
        pairs = _pairs_or_raise(pairs, "folder", images_dir)
        if class_names is None and (root / "classes.txt").is_file():
            class_names = [line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
        if class_names is None:
            if num_classes is None:
                num_classes = _infer_num_classes([p for _, p in pairs], reduce_zero_label, root)
            class_names = [str(k) for k in range(num_classes)]
        self.name = f"folder dataset ({images_dir})"
        super().__init__(pairs, class_names, palette, reduce_zero_label, transforms, transform_seed)


def _infer_num_classes(label_paths: list[Path], reduce_zero_label: bool, root: Path) -> int:
    """Number of classes from the label values on disk (no ``classes.txt``): largest value + 1 (or the largest
    value with ``reduce_zero_label``). Values 0..max must all occur: a gap means a stray value (a typo, another
    dataset's label) that would otherwise silently become an extra class, so it is refused naming its files."""

    def values(path: Path) -> set[int]:
        try:
            with Image.open(path) as im:
                return set(np.unique(np.asarray(im)).tolist()) - {IGNORE_INDEX}
        except (OSError, SyntaxError) as e:
            raise BadFileError(f"label file {path} is not a readable image ({_why(e)})") from None

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(label_paths, pool.map(values, label_paths)))
    present = set().union(*found.values())
    first = 1 if reduce_zero_label else 0
    top = max(present, default=first)
    missing = sorted(set(range(first, top)) - present)
    if missing:
        stray = sorted(v for v in present if v > missing[0])
        files = [str(p) for p, v in found.items() if v & set(stray)]
        raise BadFileError(
            f"folder dataset {root}: there is no classes.txt, so the classes come from the label values, but "
            f"{missing[:10]} never occur while {stray[:10]} do (in {len(files)} file(s): {', '.join(files[:5])}). "
            f"A stray value would become an extra class: write {root / 'classes.txt'} (one class name per line, "
            f"line k = value k) or pass num_classes=, and fix the files holding values outside the classes.")
    return top + 1 - first
