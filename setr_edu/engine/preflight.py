"""Never lose a run: the checks ``Trainer`` makes before the first iteration, and errors that say how to go on.

Hours of training are lost in a few typical ways: a file that cannot be read, found only when the sampler reaches
it (or at the first validation); a work dir that cannot be written, or a disk too full for the next checkpoint;
``device=cuda`` on a machine without a GPU. Each is checked here before any work starts and refused with one
message that says what is wrong and how to fix it:

* ``check_device`` (defined with ``resolve_device`` in ``distributed.py``): the requested device exists;
* ``WorkDirLock``: one run per work dir. A second ``train`` on the same folder is refused before it touches
  anything (it would delete the live run's in-flight checkpoint and interleave ``log.jsonl``). The lock is a kernel
  lock on ``work_dir/.lock`` (``fcntl.flock``; ``msvcrt.locking`` on Windows), which dies with its process, so a
  lock left by a killed run is stale and taken over; the file records pid, host and start time for the message;
* ``check_work_dir``: the work dir can be created and written; temporary checkpoints that a killed save left behind
  (``.last.pt.*.tmp``, up to a whole checkpoint each) are removed; ``log.jsonl`` must be a file;
* ``check_disk_space``: room for the new checkpoint next to the old one (a save writes the new file first and
  replaces the old one only then: two checkpoints, plus headroom);
* ``check_files``: every image/label file of both splits is readable and consistent (header and end marker of the
  images, decoded labels: single channel, class values, same size as the image), read by several threads; one
  ``BadFileError`` names every bad file. A clean check is remembered until a file changes, so a resume skips it.

``TrainingError`` (a run stopped for a reason the user can fix) and ``TrainingInterrupted`` (SIGINT / SIGTERM: the
checkpoint is saved) carry the message the command line prints on one line. What keeps a run safe once it is
going (time-based checkpoints, stopping on a signal) is in ``interrupts.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from torch import nn

from ..data.datasets import BadFileError
from .checkpoint import checkpoint_bytes, remove_stale_temps
from .distributed import check_device  # noqa: F401  (re-exported: the device check lives with resolve_device)


class TrainingError(RuntimeError):
    """A run that stopped for a reason the user can fix (files, disk, validation); says what and how to resume."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped ``fit``; ``signal`` is the signal's number and the message says how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signal = signum


class WorkDirLock:
    """An exclusive lock on ``work_dir/.lock`` held while a run uses the folder (rank 0 only).

    ``acquire`` raises ``TrainingError`` naming the holder (pid, host, start time) if another process holds it.
    Re-entrant within one process (a notebook that builds a second ``Trainer`` on the same folder): a count per
    folder, the kernel lock released with the last ``release``.
    """

    _held: dict = {}  # resolved lock path -> [file descriptor, count], for this process

    def __init__(self, work_dir: Path):
        self.work_dir, self.path, self.held = Path(work_dir), Path(work_dir) / ".lock", False

    def acquire(self) -> "WorkDirLock":
        if self.held:
            return self
        key = str(self.path.resolve())
        if key in self._held:
            self._held[key][1] += 1
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise TrainingError(f"{self.work_dir} is in use by another training run ({holder}); nothing was "
                                    f"changed. Wait for it to finish or stop it, or use another --work-dir "
                                    f"(work_dir=)")
            info = dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime("%Y-%m-%d %H:%M:%S"))
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0) if hasattr(os, "pwrite") else os.write(
                fd, json.dumps(info).encode())
            self._held[key] = [fd, 1]
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        key = str(self.path.resolve())
        entry = self._held.get(key)
        if entry:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._held[key]
                os.close(entry[0])  # closing the descriptor drops the kernel lock (the file stays: no race)

    close = release  # contextlib.closing


def _try_lock(fd: int) -> bool:
    """Take the kernel lock on ``fd`` without waiting; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) if hasattr(os, "pread") else b"{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting"


def check_work_dir(work_dir: Path, log=print, lock: WorkDirLock | None = None) -> None:
    """The work dir can be created and written (found now, not after ``log_every`` iterations); ``lock`` is
    acquired (refused if another run holds it); temporary checkpoints that a killed save left there are removed."""
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        probe = work_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"cannot write to the work dir {work_dir} ({e.strerror or e}); pass a folder you can "
                            f"write to with --work-dir (work_dir=)") from None
    if lock is not None:
        lock.acquire()
    if (work_dir / "log.jsonl").exists() and not (work_dir / "log.jsonl").is_file():
        raise TrainingError(f"{work_dir / 'log.jsonl'} is not a file (training appends its log there); move it "
                            f"away or use another --work-dir (work_dir=)")
    files, size = remove_stale_temps(work_dir / "last.pt")
    if files:
        log(f"removed {files} temporary checkpoint file(s) ({size / 2 ** 20:.1f} MiB) left in {work_dir} by a save "
            f"that was killed")


def check_disk_space(work_dir: Path, model: nn.Module, optimizer: str) -> None:
    """Enough free space for the old and the new checkpoint of ``model`` side by side (a save writes the new one
    before it replaces the old one), less the old one if it is already there, plus 10% and 1 MiB of headroom."""
    need = checkpoint_bytes(model, optimizer)
    free = shutil.disk_usage(work_dir).free
    old = work_dir / "last.pt"
    have = old.stat().st_size if old.is_file() else 0  # already on the disk: counts as used, not as needed
    want = 2 * need - min(have, need)
    if free < 1.1 * want + 2 ** 20:
        mib = lambda n: f"{n / 2 ** 20:,.1f} MiB"  # noqa: E731
        raise TrainingError(f"the disk of {work_dir} has {mib(free)} free but a checkpoint of this model takes "
                            f"about {mib(need)}, and a save keeps the old one until the new one is written: "
                            f"{mib(1.1 * want)} are needed; free some space or pass --work-dir (work_dir=) on a "
                            f"bigger disk")


def check_files(splits: dict, work_dir: Path, log=print, remember: bool = True) -> None:
    """Every file of the datasets in ``splits`` (``{"train": ds, "val": ds}``; those without files, like the
    synthetic task, are skipped); one ``BadFileError`` names every bad file. A clean check is remembered in
    ``work_dir/.files-checked`` (digest of paths, sizes, modification times) when ``remember``."""
    splits = {s: ds for s, ds in splits.items() if hasattr(ds, "bad_files")}
    if not splits:
        return
    stamp, marker = _files_stamp(splits.values()), work_dir / ".files-checked"
    if stamp and marker.is_file() and marker.read_text() == stamp:
        return
    t, bad = time.perf_counter(), []
    for split, ds in splits.items():
        bad += [f"[{split}] {p}" for p in ds.bad_files()]
    log(f"checked {sum(len(ds) for ds in splits.values())} image/label pairs in {time.perf_counter() - t:.1f} s")
    if bad:
        shown = bad if len(bad) <= 30 else bad[:30] + [f"... and {len(bad) - 30} more"]
        raise BadFileError(f"{len(bad)} bad file(s) in the dataset; nothing was trained:\n  " + "\n  ".join(shown)
                           + "\nFix or remove them (an image together with its label) and run again.")
    if stamp and remember:
        marker.write_text(stamp)


def _files_stamp(datasets) -> str | None:
    """A digest of every file's path, size and modification time, plus the label mapping (None if one vanished)."""
    h = hashlib.sha1()
    try:
        for ds in datasets:
            h.update(f"{ds.num_classes} {ds.reduce_zero_label}".encode())
            for path in (p for pair in ds.pairs for p in pair):
                st = os.stat(path)
                h.update(os.fsencode(path) + f" {st.st_size} {st.st_mtime_ns}\n".encode())  # any file name
    except (OSError, AttributeError):
        return None
    return h.hexdigest()


def read_log(path: Path, log=print) -> list[tuple[str, dict]]:
    """``(line, record)`` pairs of a ``log.jsonl``; a torn last line (the process was killed while writing it) is
    dropped with a message, a broken line elsewhere is refused naming the file and the line."""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    out = []
    for i, ln in enumerate(lines):
        try:
            out.append((ln, json.loads(ln)))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise TrainingError(f"{path} line {i + 1} is not JSON ({ln[:60]!r}); delete that line and resume "
                                    f"again") from None
            log(f"{path}: dropped its torn last line {ln[:40]!r} (the run was killed while writing it)")
    return out


def one_line(e: BaseException) -> str:
    """``e``'s message on one line; an error re-raised from a DataLoader worker carries the worker's traceback
    ("Caught BadFileError in DataLoader worker process 0. ..."), whose last line is the original message."""
    lines = str(e).strip().splitlines() or [type(e).__name__]
    return lines[-1].split(": ", 1)[-1] if lines[0].startswith("Caught ") else lines[0]
