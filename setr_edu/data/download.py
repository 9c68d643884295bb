"""Getting the data: resumable, checksummed, atomic downloads, and ``python -m setr_edu data DATASET --root DIR``.

Only ADE20K is freely downloadable; for Cityscapes and Pascal Context :func:`instructions` says where to get them
and which layout to create; ``setr_edu.data.prepare`` unpacks the official Cityscapes zips once they are in
``DIR`` and writes the 19-class ``labelTrainIds`` files.

:func:`download_url` writes to ``<file>.part``, resumes an interrupted transfer with an HTTP ``Range`` request,
checks the md5 / sha256 and only then renames the file into place (``os.replace``, atomic), so a file with the
final name is always complete. :func:`extract` unpacks zip / tar archives safely (no paths outside the target).
:func:`download_ade20k` can keep the archive somewhere that outlives the machine (``archive=`` a path on Google
Drive): reused when it is there, downloaded there otherwise, copied to local disk and unpacked.

    >>> print(instructions("cityscapes").splitlines()[0])
    Cityscapes (19 classes) is not freely downloadable: register and download it yourself.
"""
from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..io import file_digest  # noqa: F401  (re-exported: setr_edu.data.download.file_digest)


class ChecksumError(RuntimeError):
    """A downloaded file does not have the expected md5 / sha256."""


@dataclass(frozen=True)
class Resource:
    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size_hint: str = ""


ADE20K_ZIP = Resource("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
                      "ADEChallengeData2016.zip", md5="7328b3957e407ddae1d3cbf487f149ef", size_hint="923 MB")

INSTRUCTIONS = {
    "ade20k": """ADE20K SceneParsing (150 classes) is freely downloadable (resumable, checksummed):
    python -m setr_edu data ade20k --root <root>
(on Colab, add --archive /content/drive/MyDrive/ADEChallengeData2016.zip to keep the zip on Drive for next time;
in Python: setr_edu.data.download_ade20k("<root>")), or by hand:
    {url} ({size}, md5 {md5}), unzipped so that this layout exists:
    <root>/ADEChallengeData2016/images/training/ADE_train_00000001.jpg ...      (20,210 images)
    <root>/ADEChallengeData2016/images/validation/ADE_val_00000001.jpg ...     (2,000 images)
    <root>/ADEChallengeData2016/annotations/{{training,validation}}/*.png         (same stems, values 0-150)""",
    "cityscapes": """Cityscapes (19 classes) is not freely downloadable: register and download it yourself.
1. Register at https://www.cityscapes-dataset.com/ and download leftImg8bit_trainvaltest.zip (11 GB) and
   gtFine_trainvaltest.zip (241 MB) from https://www.cityscapes-dataset.com/downloads/ into <root>, then unzip
   them there with
       python -m setr_edu data cityscapes --root <root>
2. The same command writes the 19-class label maps (*_gtFine_labelTrainIds.png) from the *_gtFine_labelIds.png
   files; cityscapesScripts makes the same files from the polygons (pip install cityscapesscripts, then
       CITYSCAPES_DATASET=<root> csCreateTrainIdLabelImgs )
3. The layout is then:
    <root>/leftImg8bit/{train,val}/<city>/<city>_xxxxxx_yyyyyy_leftImg8bit.png
    <root>/gtFine/{train,val}/<city>/<city>_xxxxxx_yyyyyy_gtFine_labelTrainIds.png   (values 0-18, 255)""",
    "pascal_context": """Pascal Context (60 classes) needs two downloads and a conversion (the mmsegmentation layout):
1. VOC2010: http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar, untar into <root>.
2. The Context labels (trainval_merged.json) from https://cs.stanford.edu/~roozbeh/pascal-context/ into
   <root>/VOCdevkit/VOC2010/, then convert them to 60-class PNGs and split lists with mmsegmentation's
   tools/dataset_converters/pascal_context.py (needs the `detail` API), which writes:
    <root>/VOCdevkit/VOC2010/JPEGImages/2008_000002.jpg ...
    <root>/VOCdevkit/VOC2010/SegmentationClassContext/2008_000002.png ...      (values 0-59, 0 = background)
    <root>/VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt    (4,996 / 5,104 image ids)""",
    "folder": """A folder dataset pairs images with single-channel PNG masks of class indices by file stem:
    <root>/images/{train,val}/NAME.jpg|png   and   <root>/annotations/{train,val}/NAME.png
(or FolderDataset(images_dir, masks_dir)); 255 marks ignored pixels; optional <root>/classes.txt lists names.""",
}


def instructions(dataset: str, root: str | Path = "<root>") -> str:
    """Where to get ``dataset`` ("ade20k" | "cityscapes" | "pascal_context" | "folder") and its expected layout,
    with ``root`` written into the commands."""
    if dataset not in INSTRUCTIONS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(INSTRUCTIONS)}")
    r = ADE20K_ZIP  # only the ADE20K text has {placeholders}
    text = INSTRUCTIONS[dataset].format(url=r.url, size=r.size_hint, md5=r.md5) if dataset == "ade20k" else INSTRUCTIONS[dataset]
    return text.replace("<root>", str(root))


def verify(path: str | Path, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches every checksum given."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and (actual := file_digest(path, algorithm)) != expected.lower():
            raise ChecksumError(f"{path}: {algorithm} is {actual}, expected {expected}")


def download_url(url: str, dest: str | Path, md5: str | None = None, sha256: str | None = None, retries: int = 3,
             timeout: float = 60, chunk_size: int = 1 << 20, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with resume, checksum and atomic rename; returns ``dest``.

    An existing ``dest`` that passes the checksums is kept. Bytes go to ``dest + ".part"``; if a ``.part`` file
    exists the transfer continues from its end (HTTP ``Range``; if the server ignores ``Range`` the download
    restarts). A dropped connection is retried ``retries`` times, each time resuming. A checksum mismatch deletes
    the ``.part`` file (it cannot be repaired by resuming) and raises :class:`ChecksumError`.
    """
    dest = Path(dest)
    if dest.is_file():
        verify(dest, md5, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, chunk_size, progress)
            break
        except (OSError, http.client.HTTPException) as err:  # URLError, ConnectionError, IncompleteRead ...
            if isinstance(err, urllib.error.HTTPError) and err.code not in (408, 429, 500, 502, 503, 504):
                raise
            if attempt == retries:
                raise ConnectionError(f"download of {url} failed after {retries + 1} attempts ({err}); "
                                      f"run again to resume from {part} ({_size(part)} bytes so far)") from err
            time.sleep(min(2 ** attempt, 30) * 0.1)
    try:
        verify(part, md5, sha256)
    except ChecksumError as err:
        part.unlink()
        raise ChecksumError(f"{err}; deleted the corrupt {part.name}, run again to download it afresh") from None
    os.replace(part, dest)  # atomic: dest appears only when complete and verified
    return dest


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _fetch(url: str, part: Path, timeout: float, chunk_size: int, progress: bool) -> None:
    """Append the missing bytes of ``url`` to ``part`` (one HTTP request)."""
    start = _size(part)
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the .part file is already complete
            return
        raise
    with response:
        resumed = start and response.status == 206
        if start and not resumed:  # the server ignored Range and sends everything: start over
            start = 0
        total = response.headers.get("Content-Length")
        total = int(total) + start if total is not None else None
        bar = _progress_bar(total, start, part.name) if progress else None
        with open(part, "ab" if resumed else "wb") as f:
            while chunk := response.read(chunk_size):
                f.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if bar is not None:
            bar.close()
    if total is not None and _size(part) < total:
        raise ConnectionError(f"connection closed after {_size(part)} of {total} bytes")


def _progress_bar(total, initial, name):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Unpack a .zip / .tar(.gz) into ``dest`` via a temporary folder, refusing members that would land outside
    ``dest``; top-level entries are moved into place only after the whole archive was read."""
    archive, dest = Path(archive), Path(dest)
    tmp = dest / f".extracting-{archive.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            _check_members(z.namelist(), tmp)
            z.extractall(tmp)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            _check_members(t.getnames(), tmp)
            t.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    for entry in tmp.iterdir():
        target = dest / entry.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(entry, target)
    tmp.rmdir()
    return dest


def _check_members(names, root: Path) -> None:
    root = root.resolve()
    for name in names:
        if not (root / name).resolve().is_relative_to(root):
            raise ValueError(f"archive member {name!r} would be written outside {root}; refusing to extract")


def copy_file(src: str | Path, dest: str | Path, chunk_size: int = 16 << 20) -> Path:
    """Copy ``src`` to ``dest`` through ``dest.part`` and an atomic rename (a cut copy never looks complete)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with open(src, "rb") as fin, open(part, "wb") as fout:
        shutil.copyfileobj(fin, fout, chunk_size)
    os.replace(part, dest)
    return dest


def download_ade20k(root: str | Path = "data/ade20k", keep_archive: bool = False, progress: bool = True,
                    archive: str | Path | None = None, url: str | None = None, md5: str | None = ADE20K_ZIP.md5,
                    log=print) -> Path:
    """Download (923 MB, resumable, md5-checked) and unpack ADE20K SceneParsing into ``root``; returns
    ``root/ADEChallengeData2016``. Does nothing if that folder already holds both splits.

    ``archive``: where the zip is kept between sessions (e.g. ``/content/drive/MyDrive/ADEChallengeData2016.zip``).
    If it exists it is checked and reused (nothing is downloaded); otherwise it is downloaded there (an interrupted
    download resumes from ``archive.part`` next time). Either way it is copied to ``root`` (local disk: unpacking
    from a network drive is slow), unpacked, and the local copy removed. ``url``/``md5``: a mirror and its checksum.
    """
    root = Path(root)
    target = root / "ADEChallengeData2016"
    if all((target / kind / split).is_dir() for kind in ("images", "annotations") for split in ("training", "validation")):
        return target
    local = root / ADE20K_ZIP.filename
    if archive is not None:
        archive = Path(archive).expanduser()
        if archive.is_file():
            log(f"reusing {archive} (checking its md5)")
            verify(archive, md5=md5)
        else:
            download_url(url or ADE20K_ZIP.url, archive, md5=md5, progress=progress)
        if archive.resolve() != local.resolve():
            log(f"copying {archive} to {local}")
            copy_file(archive, local)
        keep_archive = keep_archive or archive.resolve() == local.resolve()
    else:
        download_url(url or ADE20K_ZIP.url, local, md5=md5, progress=progress)
    log(f"unpacking {local} into {root}")
    extract(local, root)
    if not keep_archive:
        local.unlink()
    return target


# --- python -m setr_edu data ----------------------------------------------------------------------------------------
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
