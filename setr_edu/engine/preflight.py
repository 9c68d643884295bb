"""Never lose a run: the checks ``Trainer`` makes before the first iteration, and errors that say how to go on.

Hours of training are lost in a few typical ways: a file that cannot be read, found only when the sampler reaches
it (or at the first validation); a work dir that cannot be written, or a disk too full for the next checkpoint;
``device=cuda`` on a machine without a GPU. Each is checked here before any work starts and refused with one
message that says what is wrong and how to fix it:

* ``check_device`` (defined with ``resolve_device`` in ``distributed.py``): the requested device exists;
* ``check_work_dir``: the work dir can be created and written; temporary checkpoints that a killed save left behind
  (``.last.pt.*.tmp``, up to a whole checkpoint each) are removed;
* ``check_disk_space``: room for one more checkpoint (a save writes the new file next to the old one);
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


def check_work_dir(work_dir: Path, log=print) -> None:
    """The work dir can be created and written (found now, not after ``log_every`` iterations); temporary
    checkpoints that a killed save left there are removed."""
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        probe = work_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"cannot write to the work dir {work_dir} ({e.strerror or e}); pass a folder you can "
                            f"write to with --work-dir (work_dir=)") from None
    files, size = remove_stale_temps(work_dir / "last.pt")
    if files:
        log(f"removed {files} temporary checkpoint file(s) ({size / 2 ** 20:.1f} MiB) left in {work_dir} by a save "
            f"that was killed")


def check_disk_space(work_dir: Path, model: nn.Module, optimizer: str) -> None:
    """Enough free space for one more checkpoint of ``model``, plus 10% and 1 MiB of headroom."""
    need = checkpoint_bytes(model, optimizer)
    free = shutil.disk_usage(work_dir).free
    if free < 1.1 * need + 2 ** 20:
        mib = lambda n: f"{n / 2 ** 20:,.1f} MiB"  # noqa: E731
        raise TrainingError(f"the disk of {work_dir} has {mib(free)} free but a checkpoint of this model takes "
                            f"about {mib(need)} (plus 10% headroom); free some space or pass --work-dir (work_dir=) "
                            f"on a bigger disk")


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
                h.update(f"{path} {st.st_size} {st.st_mtime_ns}\n".encode())
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
