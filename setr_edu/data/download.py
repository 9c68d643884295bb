"""Getting the data: resumable, checksummed, atomic downloads, and ``python -m setr_edu data DATASET --root DIR``.

Only ADE20K is freely downloadable; for Cityscapes and Pascal Context :func:`instructions` says where to get them
and which layout to create; ``setr_edu.data.prepare`` unpacks the official Cityscapes zips once they are in
``DIR`` and writes the 19-class ``labelTrainIds`` files.

:func:`download_url` writes to ``<file>.part``, resumes an interrupted transfer with an HTTP ``Range`` request,
checks the md5 / sha256 and only then renames the file into place (``os.replace``, atomic), so a file with the
final name is always complete; :mod:`setr_edu.data.archives` unpacks it safely (no paths outside the target).
:func:`download_ade20k` can keep the archive somewhere that outlives the machine (``archive=`` a path on Google
Drive): reused when it is there, downloaded there otherwise, copied to local disk and unpacked.

    >>> print(instructions("cityscapes").splitlines()[0])
    Cityscapes (19 classes) is not freely downloadable: register and download it yourself.
"""
from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..io import file_digest  # noqa: F401  (re-exported: setr_edu.data.download.file_digest)
from .archives import ArchiveError, UnpackBudget, copy_file, extract  # noqa: F401  (ArchiveError, UnpackBudget:
#   re-exported, their public path before data/archives.py)


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

#: The Google Drive folder where the book (ch12) and these instructions keep the ADE20K zip between Colab sessions;
#: ch12's code builds the same path from it (tests/test_archives.py checks they agree).
COLAB_DRIVE_DIR = "/content/drive/MyDrive/setr-edu"
#: Where the ADE20K zip is kept on Google Drive (``--archive`` of ``python -m setr_edu data ade20k`` on Colab).
COLAB_ARCHIVE = f"{COLAB_DRIVE_DIR}/{ADE20K_ZIP.filename}"

INSTRUCTIONS = {
    "ade20k": """ADE20K SceneParsing (150 classes) is freely downloadable (resumable, checksummed):
    python -m setr_edu data ade20k --root <root>
(on Colab, add --archive {archive} to keep the zip on Drive for next time;
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
    text = INSTRUCTIONS[dataset]
    if dataset == "ade20k":  # only the ADE20K text has {placeholders}
        r = ADE20K_ZIP
        text = text.format(url=r.url, size=r.size_hint, md5=r.md5, archive=COLAB_ARCHIVE)
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


def download_ade20k(root: str | Path = "data/ade20k", keep_archive: bool = False, progress: bool = True,
                    archive: str | Path | None = None, url: str | None = None, md5: str | None = ADE20K_ZIP.md5,
                    log=print, max_bytes: int | None = None) -> Path:
    """Download (923 MB, resumable, md5-checked) and unpack ADE20K SceneParsing into ``root``; returns
    ``root/ADEChallengeData2016``. Does nothing if that folder already holds both splits.

    ``archive``: where the zip is kept between sessions (on Colab :data:`COLAB_ARCHIVE`, on Google Drive).
    If it exists it is checked and reused (nothing is downloaded); otherwise it is downloaded there (an interrupted
    download resumes from ``archive.part`` next time). Either way it is copied to ``root`` (local disk: unpacking
    from a network drive is slow), unpacked, and the local copy removed (also when unpacking fails).
    ``url``/``md5``: a mirror and its checksum; ``max_bytes``: see :func:`~setr_edu.data.archives.extract`.
    """
    root = Path(root)
    target = root / "ADEChallengeData2016"
    if all((target / kind / split).is_dir() for kind in ("images", "annotations") for split in ("training", "validation")):
        return target
    local = root / ADE20K_ZIP.filename
    copied = False
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
            copied = True
        keep_archive = keep_archive or archive.resolve() == local.resolve()
    else:
        download_url(url or ADE20K_ZIP.url, local, md5=md5, progress=progress)
    log(f"unpacking {local} into {root}")
    try:
        extract(local, root, max_bytes)
    except BaseException:
        if copied:  # the original stays where the user keeps it
            local.unlink(missing_ok=True)
        raise
    if not keep_archive:
        local.unlink()
    return target
