"""Unpacking dataset archives safely: ``.zip`` and ``.tar(.gz)`` into a folder, nothing outside it.

:func:`extract` refuses what a dataset archive never holds (links, devices, members that would land outside the
target), guards against zip bombs on the declared sizes and on the bytes actually written (:class:`UnpackBudget`),
and moves members into place only after the whole archive was read, so a failed or interrupted unpack leaves
nothing half-made in the target; an interrupted one resumes where it stopped. :func:`copy_file` copies through
``<dest>.part`` and an atomic rename. Used by :mod:`setr_edu.data.download` (ADE20K) and
:mod:`setr_edu.data.prepare` (the Cityscapes zips).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path


class ArchiveError(ValueError):
    """An archive that cannot or must not be unpacked (corrupt, hostile, too big); the message says why and what
    to do. Nothing of it is left in the target folder."""


MAX_UNPACKED_BYTES = 64 << 30  # the largest dataset archive (Cityscapes leftImg8bit, 11 GB) unpacks to ~11.6 GB
MAX_RATIO = 100  # images are already compressed: a real dataset zip unpacks to ~1-5x its size, a zip bomb to 1000x
CHUNK = 1 << 20


class UnpackBudget:
    """How many bytes an archive may unpack to; ``declare`` checks the sizes its headers declare before
    anything is written, ``spend`` counts the bytes actually written (a header can lie)."""

    def __init__(self, limit: int, archive, why: str = ""):
        self.limit, self.archive, self.why, self.declared, self.written = limit, archive, why, 0, 0

    def _refuse(self, amount: int, what: str):
        raise ArchiveError(f"{self.archive} {what} {amount:,} bytes, more than the limit of {self.limit:,}"
                           f"{self.why}: a zip bomb? "
                           f"If you trust it, allow more with --max-unpacked-gb N (extract(..., max_bytes=N))")

    def declare(self, size: int) -> None:
        self.declared += size
        if self.declared > self.limit:
            self._refuse(self.declared, "would unpack to")

    def spend(self, size: int) -> None:
        self.written += size
        if self.written > self.limit:
            self._refuse(self.written, "unpacked to more than")


def copy_counted(src, path: Path, budget: UnpackBudget) -> None:
    """Copy the stream ``src`` to ``path`` chunk by chunk, charging every byte to ``budget``."""
    with open(path, "wb") as out:
        while chunk := src.read(CHUNK):
            budget.spend(len(chunk))
            out.write(chunk)


LINK_KINDS = ((tarfile.TarInfo.issym, "a symbolic link"), (tarfile.TarInfo.islnk, "a hard link"),
              (tarfile.TarInfo.ischr, "a character device"), (tarfile.TarInfo.isblk, "a block device"),
              (tarfile.TarInfo.isfifo, "a fifo"))


def extract(archive: str | Path, dest: str | Path, max_bytes: int | None = None) -> Path:
    """Unpack a .zip / .tar(.gz) into ``dest`` safely; returns ``dest``.

    Members go to a temporary folder ``dest/.extracting-<name>`` and are moved into place only after the whole
    archive was read. An interrupted unpack (Ctrl-C, a lost Colab runtime, a full disk) keeps that folder, marked
    with the archive's fingerprint (:func:`fingerprint`), and the next ``extract`` of the same archive resumes:
    it skips every member already written in full and writes the rest. A refused or corrupt archive removes the
    folder and raises one :class:`ArchiveError`. Refused: members that
    would land outside ``dest``, links and devices (dataset archives hold only files and folders), a corrupt
    archive, and more than ``max_bytes`` unpacked (default: ``MAX_RATIO`` x the archive's size + 1 MiB, at
    most ``MAX_UNPACKED_BYTES``; checked on the declared sizes first, then on the bytes written). A folder
    that already exists in ``dest`` is merged into (files of the same name replaced), never deleted."""
    archive, dest = Path(archive), Path(dest)
    if max_bytes is None:
        size = archive.stat().st_size
        budget = UnpackBudget(min(MAX_UNPACKED_BYTES, MAX_RATIO * size + (1 << 20)), archive,
                              f" ({MAX_RATIO}x its size + 1 MiB, at most {MAX_UNPACKED_BYTES >> 30} GiB)")
    else:
        budget = UnpackBudget(max_bytes, archive)
    tmp = dest / f".extracting-{archive.name}"
    mark, ident = tmp.with_name(tmp.name + ".from"), fingerprint(archive)
    if not (mark.is_file() and mark.read_text() == ident):  # left by another archive of this name: start afresh
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    mark.write_text(ident)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, budget)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp, budget)
        else:
            raise ArchiveError(f"{archive} is neither a zip nor a tar archive (a partial or corrupt download?)")
        for entry in tmp.iterdir():
            _check_merge(entry, dest / entry.name)
        for entry in tmp.iterdir():
            _merge(entry, dest / entry.name)
    except ArchiveError:
        _discard(tmp, mark)
        raise
    except (zipfile.BadZipFile, zlib.error, tarfile.TarError, EOFError, NotImplementedError) as err:
        _discard(tmp, mark)
        raise ArchiveError(f"{archive} is corrupt and cannot be unpacked ({type(err).__name__}: {err}); "
                           f"download or copy it again") from None
    # any other exception (an interrupt, a full disk) keeps tmp and mark: the next run resumes from them
    _discard(tmp, mark)
    return dest


def fingerprint(archive: Path) -> str:
    """What identifies an archive across copies (a copy from Google Drive gets a new modification time): its size
    and a SHA-256 of its first and last MiB, which for a zip include the central directory with every member's
    CRC-32. Reads 2 MiB, not the whole 11-GB archive."""
    size = archive.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(archive, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()


def _discard(tmp: Path, mark: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    mark.unlink(missing_ok=True)


def _write_member(open_member, path: Path, size: int, budget: UnpackBudget) -> None:
    """Write one member of ``size`` bytes to ``path``, unless an interrupted earlier run of the same archive
    already wrote all of it (members are written in order, so a member cut off is shorter than ``size``)."""
    if path.is_file() and not path.is_symlink() and path.stat().st_size == size:
        budget.spend(size)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_member() as src:
        copy_counted(src, path, budget)


def _extract_zip(archive: Path, tmp: Path, budget: UnpackBudget) -> None:
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        _check_members([i.filename for i in infos], tmp)
        for info in infos:
            budget.declare(info.file_size)
        for info in infos:
            path = tmp / info.filename
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            _write_member(lambda info=info: z.open(info), path, info.file_size, budget)


def _extract_tar(archive: Path, tmp: Path, budget: UnpackBudget) -> None:
    with tarfile.open(archive) as t:
        members = t.getmembers()
        _check_members([m.name for m in members], tmp)
        for m in members:
            kind = next((what for test, what in LINK_KINDS if test(m)), None)
            if kind:
                raise ArchiveError(f"{archive}: member {m.name!r} is {kind}; dataset archives hold only files and "
                                   f"folders, so it was refused and nothing was unpacked")
            budget.declare(m.size if m.isfile() else 0)
        for m in members:
            if m.isdir():
                (tmp / m.name).mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                _write_member(lambda m=m: t.extractfile(m), tmp / m.name, m.size, budget)


def _check_members(names, root: Path) -> None:
    root = root.resolve()
    for name in names:
        if not (root / name).resolve().is_relative_to(root):
            raise ArchiveError(f"archive member {name!r} would be written outside {root}; refusing to extract")


def _check_merge(src: Path, target: Path) -> None:
    """Refuse (before anything moves) an entry whose kind clashes with what is already there."""
    if not target.exists() and not target.is_symlink():
        return
    if src.is_dir() != (target.is_dir() and not target.is_symlink()):
        there, new = ("a folder", "a file") if target.is_dir() else ("a file", "a folder")
        raise ArchiveError(f"{target} is already {there} but the archive holds {new} of that name; move it away "
                           f"and run again (nothing was changed)")
    if src.is_dir():
        for entry in src.iterdir():
            _check_merge(entry, target / entry.name)


def _merge(src: Path, target: Path) -> None:
    """Move ``src`` to ``target``; a folder that exists receives the archive's entries (nothing of it deleted)."""
    if src.is_dir() and target.is_dir():
        for entry in src.iterdir():
            _merge(entry, target / entry.name)
        src.rmdir()
    else:
        os.replace(src, target)


def copy_file(src: str | Path, dest: str | Path, chunk_size: int = 16 << 20) -> Path:
    """Copy ``src`` to ``dest`` through ``dest.part`` and an atomic rename (a cut copy never looks complete)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with open(src, "rb") as fin, open(part, "wb") as fout:
        shutil.copyfileobj(fin, fout, chunk_size)
    os.replace(part, dest)
    return dest
