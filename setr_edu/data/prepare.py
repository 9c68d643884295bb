"""``python -m setr_edu data DATASET --root DIR``: make a dataset ready, then check its layout with the dataset
classes themselves.

:func:`prepare` downloads ADE20K (:mod:`setr_edu.data.download`), unpacks the official Cityscapes zips once they
are in ``DIR`` and writes the 19-class ``labelTrainIds`` files, then counts the images of each split with the
dataset classes (:mod:`setr_edu.data.datasets`), or says what only the user can do.
"""
from __future__ import annotations

import urllib.error
from pathlib import Path

from .datasets import ADE20K, Cityscapes, DatasetNotFoundError, PascalContext
from .download import (CITYSCAPES_ZIPS, OFFICIAL_SIZES, ADE20K_ZIP, ChecksumError, cityscapes_train_ids,
                       download_ade20k, extract, instructions)


def check_layout(dataset: str, root: str | Path) -> dict[str, int]:
    """Images per split (``{"train": n, "val": m}``) of ``dataset`` at ``root``, read by the dataset classes
    themselves; raises :class:`~setr_edu.data.datasets.DatasetNotFoundError` saying what is missing."""
    cls = dict(ade20k=ADE20K, cityscapes=Cityscapes, pascal_context=PascalContext)[dataset]
    return {split: len(cls(root, split=split)) for split in ("train", "val")}


def prepare(dataset: str, root: str | Path, archive: str | Path | None = None, url: str | None = None,
            md5: str | None = None, keep_archive: bool = False, progress: bool = True, log=print) -> int:
    """``python -m setr_edu data``: make ``dataset`` ready at ``root``; returns the exit status (0: ready,
    2: something only the user can do, explained)."""
    root = Path(root).expanduser()
    if dataset == "ade20k":
        download_ade20k(root, keep_archive, progress, archive, url, md5 or ADE20K_ZIP.md5, log)
    elif dataset == "cityscapes" and all((root / z).is_file() for z in CITYSCAPES_ZIPS) \
            and not (root / "leftImg8bit").is_dir():
        for z in CITYSCAPES_ZIPS:
            log(f"unpacking {root / z}")
            extract(root / z, root)
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
    p.add_argument("--archive", metavar="ZIP", help="ade20k: keep the zip here between sessions (e.g. on Google "
                   "Drive): reused if present, else downloaded here")
    p.add_argument("--keep-archive", action="store_true", help="ade20k: keep the downloaded zip in DIR")
    p.add_argument("--url", help="ade20k: download from this mirror instead")
    p.add_argument("--md5", help="ade20k: expected md5 of the zip (default: the official file's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def command(args) -> int:
    """Run ``python -m setr_edu data`` with parsed ``args`` (see :func:`add_arguments`)."""
    import sys

    try:
        return prepare(args.dataset, args.root, args.archive, args.url, args.md5, args.keep_archive,
                       progress=not args.no_progress)
    except (ChecksumError, ConnectionError, urllib.error.URLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
