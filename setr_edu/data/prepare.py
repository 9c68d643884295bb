"""``python -m setr_edu data DATASET --root DIR``: make a dataset ready, then check its layout with the dataset
classes themselves.

:func:`prepare` downloads ADE20K (:mod:`setr_edu.data.download`), unpacks the official Cityscapes zips once they
are in ``DIR`` and writes the 19-class ``labelTrainIds`` files, then counts the images of each split with the
dataset classes (:mod:`setr_edu.data.datasets`), or says what only the user can do.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

from .datasets import ADE20K, Cityscapes, DatasetNotFoundError, PascalContext
from .archives import ArchiveError, extract
from .download import ADE20K_ZIP, COLAB_ARCHIVE, ChecksumError, download_ade20k, instructions


# --- the official sizes and Cityscapes' label ids ----------------------------------------------------------------------------------------
OFFICIAL_SIZES = dict(ade20k=(20_210, 2_000), cityscapes=(2_975, 500), pascal_context=(4_996, 5_104))
CITYSCAPES_ZIPS = ("leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip")
# Cityscapes label id -> train id (the 19 evaluated classes; 255 = ignored), the table of cityscapesScripts'
# helpers/labels.py: road 7 -> 0, sidewalk 8 -> 1, building 11 -> 2, ..., bicycle 33 -> 18.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def cityscapes_train_ids(root: str | Path, log=print) -> int:
    """Write ``*_gtFine_labelTrainIds.png`` next to every ``*_gtFine_labelIds.png`` of the train and val splits
    that lacks one (what cityscapesScripts' ``csCreateTrainIdLabelImgs`` writes from the polygons: each pixel's id
    mapped through :data:`CITYSCAPES_TRAIN_IDS`); returns how many files were written."""
    import numpy as np
    from PIL import Image

    table = np.full(256, 255, np.uint8)
    table[list(CITYSCAPES_TRAIN_IDS)] = list(CITYSCAPES_TRAIN_IDS.values())
    todo = [p for split in ("train", "val") for p in sorted((Path(root) / "gtFine" / split).glob("*/*_labelIds.png"))
            if not p.with_name(p.name.replace("_labelIds", "_labelTrainIds")).is_file()]
    if todo:
        log(f"writing {len(todo)} labelTrainIds files (19 classes) from the labelIds files")
    for p in todo:
        out = p.with_name(p.name.replace("_labelIds", "_labelTrainIds"))
        Image.fromarray(table[np.asarray(Image.open(p))]).save(out.with_suffix(".tmp.png"))
        os.replace(out.with_suffix(".tmp.png"), out)
    return len(todo)


def check_layout(dataset: str, root: str | Path) -> dict[str, int]:
    """Images per split (``{"train": n, "val": m}``) of ``dataset`` at ``root``, read by the dataset classes
    themselves; raises :class:`~setr_edu.data.datasets.DatasetNotFoundError` saying what is missing."""
    cls = dict(ade20k=ADE20K, cityscapes=Cityscapes, pascal_context=PascalContext)[dataset]
    return {split: len(cls(root, split=split)) for split in ("train", "val")}


def _stamp(zip_path: Path) -> tuple[Path, str]:
    """The ``<zip>.done`` file written once ``zip_path`` was unpacked completely, and what it records (the zip's
    size and modification time, so a different zip put there later is unpacked again)."""
    st = zip_path.stat()
    return zip_path.with_name(zip_path.name + ".done"), f"{st.st_size} {st.st_mtime_ns}\n"


def unpack_cityscapes(root: Path, max_bytes: int | None = None, log=print) -> None:
    """Unpack each official Cityscapes zip found in ``root`` that has not been unpacked completely yet: a zip is
    marked done (``<zip>.done``) only after :func:`~setr_edu.data.archives.extract` finished, so a run cut off in
    the middle of ``gtFine`` leaves the finished ``leftImg8bit`` alone and resumes ``gtFine`` after its members
    already written."""
    for name in CITYSCAPES_ZIPS:
        z = root / name
        if not z.is_file():
            continue
        stamp, record = _stamp(z)
        if stamp.is_file() and stamp.read_text() == record:
            continue
        log(f"unpacking {z}")
        extract(z, root, max_bytes)
        stamp.write_text(record)


def prepare(dataset: str, root: str | Path, archive: str | Path | None = None, url: str | None = None,
            md5: str | None = None, keep_archive: bool = False, progress: bool = True, log=print,
            max_bytes: int | None = None) -> int:
    """``python -m setr_edu data``: make ``dataset`` ready at ``root``; returns the exit status (0: ready,
    2: something only the user can do, explained). ``max_bytes``: the unpacking limit of
    :func:`~setr_edu.data.archives.extract` (default: its zip-bomb guard)."""
    root = Path(root).expanduser()
    if dataset == "ade20k":
        download_ade20k(root, keep_archive, progress, archive, url, md5 or ADE20K_ZIP.md5, log, max_bytes)
    elif dataset == "cityscapes":
        unpack_cityscapes(root, max_bytes, log)
    if dataset == "cityscapes":
        cityscapes_train_ids(root, log)
    try:
        counts = check_layout(dataset, root)
    except DatasetNotFoundError as err:
        log(f"{dataset} is not ready in {root}: {str(err).splitlines()[0]}\n\n{instructions(dataset, root)}")
        return 2
    official = dict(zip(("train", "val"), OFFICIAL_SIZES[dataset]))
    log(f"{dataset} is ready in {root}: {counts['train']} training and {counts['val']} validation images")
    if counts != official:
        log(f"note: the official {dataset} has {official['train']} and {official['val']}; is this a partial copy?")
    return 0


def add_arguments(p) -> None:
    """The options of ``python -m setr_edu data`` (an ``argparse`` parser)."""
    p.add_argument("dataset", choices=("ade20k", "cityscapes", "pascal_context"), help="which dataset")
    p.add_argument("--root", required=True, metavar="DIR", help="the dataset folder (the recipes' data_root)")
    p.add_argument("--archive", metavar="ZIP", help="ade20k: keep the zip here between sessions (on Colab: "
                   f"{COLAB_ARCHIVE}): reused if present, else downloaded here")
    p.add_argument("--keep-archive", action="store_true", help="ade20k: keep the downloaded zip in DIR")
    p.add_argument("--url", help="ade20k: download from this mirror instead")
    p.add_argument("--md5", help="ade20k: expected md5 of the zip (default: the official file's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--max-unpacked-gb", type=float, metavar="N", help="unpack archives of up to N GiB (default: "
                   "refuse more than 100x the archive's size + 1 MiB or 64 GiB, a zip-bomb guard)")


def command(args) -> int:
    """Run ``python -m setr_edu data`` with parsed ``args`` (see :func:`add_arguments`)."""
    import sys

    try:
        gb = getattr(args, "max_unpacked_gb", None)
        return prepare(args.dataset, args.root, args.archive, args.url, args.md5, args.keep_archive,
                       progress=not args.no_progress, max_bytes=None if gb is None else int(gb * (1 << 30)))
    except (ChecksumError, ArchiveError, ConnectionError, urllib.error.URLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
