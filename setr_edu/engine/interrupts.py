"""Never lose a run, once it is going: when ``Trainer.fit`` saves, and how it stops on a signal or a failure.

``preflight.py`` refuses a run that cannot succeed before it starts; this module keeps what a running one has done:

* **time-based checkpoints**: ``last.pt`` is written every ``checkpoint_minutes`` of wall time as well as every
  ``checkpoint_every`` iterations, so a crash (a Colab disconnect, a killed job) loses minutes, not hours;
* **checkpoint, then validate**: a validation that fails (a bad file, out of memory) says which checkpoint is kept
  and how to resume, so fixing the cause and resuming loses nothing;
* **signals**: SIGINT (Ctrl-C, a notebook's stop button), SIGTERM (``kill``, ``timeout``, Slurm's ``scancel``, a
  container stop, Colab or a cluster preempting the job) and SIGHUP (the terminal or SSH session closed) finish the
  current iteration, save it and raise ``TrainingInterrupted``, whose message says how to resume; a second signal
  stops at once, except during a save, which always finishes first (so ``last.pt`` is the old file or the new one,
  never a torn one). Under DDP every rank stops at the same iteration (one all-reduce of the signal);
* **process groups**: ``timeout``, ``scancel`` and a terminal send the signal to every process of the group, the
  DataLoader workers included. Workers ignore the stop signals (``ignore_stop_signals``; those forked later, e.g.
  by a validation, ignore the trainer's handler): the main process saves, then stops them, so their deaths are
  never reported as errors.

``Interruptible`` holds this logic for ``Trainer``, which mixes it in; it uses the trainer's ``iter``, ``recipe``,
``work_dir``, ``env``, ``device``, ``resume_hint``, ``_print``, ``save`` and ``validate``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import torch

from ..data.datasets import BadFileError
from .distributed import all_reduce_max
from .preflight import TrainingError, TrainingInterrupted, one_line

# Ctrl-C / a notebook's interrupt; kill, timeout, Slurm, a container stop; the terminal closed (not on Windows)
STOP_SIGNALS = tuple(getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s))


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave the stop signals to the main process (``timeout``, ``scancel`` and a terminal send
    them to every process of the group), which saves a checkpoint and then stops them (and a worker whose parent
    died exits by itself: torch's watchdog)."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


ignore_sigint = ignore_stop_signals  # the old name


@contextlib.contextmanager
def stopping_workers(batches):
    """Stop the DataLoader's worker processes when ``fit`` ends, also by an exception (whose traceback would
    otherwise keep them alive until the interpreter exits)."""
    try:
        yield
    finally:
        if hasattr(batches, "_shutdown_workers"):
            batches._shutdown_workers()


class Interruptible:
    """``Trainer``'s saving and stopping logic (see the module docstring)."""

    _stop_signal: int | None = None  # the signal received during this iteration (SIGINT, SIGTERM), if any
    _saved_iter: int | None = None  # the iteration last written to (or resumed from) last.pt
    _last_save: float = 0.0  # time.monotonic() of that save
    _validating = False
    _saving = False  # inside save(): a signal now never interrupts the write
    _stop_now = False  # a second signal came during a save: stop right after it

    def _checkpoint_due(self, end: int) -> bool:
        """Every ``checkpoint_every`` iterations, at ``end`` and after ``checkpoint_minutes`` (0: off) of wall time."""
        r = self.recipe
        minutes = (time.monotonic() - self._last_save) / 60
        return self.iter % r.checkpoint_every == 0 or self.iter == end or 0 < r.checkpoint_minutes <= minutes

    def _checkpoint_note(self) -> str:
        ckpt = self.work_dir / "last.pt"
        return f"the last checkpoint is {ckpt}" if ckpt.exists() else "no checkpoint was written yet"

    def _validate_keeping_checkpoint(self) -> None:
        """``validate``, run after this iteration's checkpoint was written; a failure says what failed (the bad
        file, out of memory) and that the checkpoint is kept, so fixing it and resuming loses nothing."""
        path = self.work_dir / "last.pt"
        kept = (f"the checkpoint of iteration {self.iter} is saved in {path}" if self._saved_iter == self.iter
                else f"the checkpoint {path} is unchanged")
        self._validating = True
        try:
            self.validate()
        except (BadFileError, OSError, torch.cuda.OutOfMemoryError) as e:
            raise TrainingError(f"validation at iteration {self.iter} failed: {one_line(e)}; {kept}. Fix "
                                f"that, then resume with: {self.resume_hint}") from e
        except Exception as e:  # a bug: keep the traceback, and still say that nothing is lost
            e.add_note(f"validation at iteration {self.iter} failed; {kept}; resume with: {self.resume_hint}")
            raise
        finally:
            self._validating = False

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGINT, SIGTERM and SIGHUP set ``_stop_signal``: ``fit`` finishes the current iteration, saves a
        checkpoint and stops with ``TrainingInterrupted``. A second signal, or one during a validation whose
        checkpoint is already written, stops at once; one during a save stops right after the save."""
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return

        owner = os.getpid()

        def handler(signum, frame):
            if os.getpid() != owner:  # a forked DataLoader worker: the main process stops it after saving
                return
            if self._saving:  # never break a save (a torn file, "unexpected pos"): stop as soon as it is written
                self._stop_signal, self._stop_now = self._stop_signal or signum, True
                return
            if self._stop_signal is not None or (self._validating and self._saved_iter == self.iter):
                raise self._interrupted(signum)
            self._stop_signal = signum
            with contextlib.suppress(RuntimeError):  # print is not reentrant: the signal may interrupt a print
                self._print(f"\n{signal.Signals(signum).name}: finishing this iteration, saving a checkpoint, then "
                            f"stopping (send it again to stop at once)")

        previous = [(s, signal.signal(s, handler)) for s in STOP_SIGNALS]
        try:
            yield
        finally:
            for s, h in previous:
                signal.signal(s, h)
            self._stop_signal, self._stop_now = None, False

    @contextlib.contextmanager
    def _saving_uninterrupted(self):
        """Around ``save``: a signal only takes note (``handler`` above), and the run stops right after the write
        (under DDP at the next iteration's check, where every rank stops together)."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False
        if self._stop_now and not self.env.distributed:
            raise self._interrupted(self._stop_signal)

    def _stop_if_signalled(self) -> None:
        stop = self._stop_signal or 0
        if self.env.distributed:  # every rank stops at the same iteration, whichever got the signal first
            stop = int(all_reduce_max(torch.tensor(stop, device=self.device)).item())
        if stop:
            if self._saved_iter != self.iter:
                self.save()
            raise self._interrupted(stop)

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        name, path = signal.Signals(signum).name, self.work_dir / "last.pt"
        if self._saved_iter is None and not path.exists():
            return TrainingInterrupted(f"{name}: stopped during iteration {self.iter + 1}, before the first "
                                       f"checkpoint; there is nothing to resume", signum)
        where = (f"saved iteration {self.iter} of {self.recipe.max_iters} to {path}" if self._saved_iter == self.iter
                 else f"stopped during iteration {self.iter + 1}; {path} holds an earlier iteration")
        return TrainingInterrupted(f"{name}: {where}; resume with: {self.resume_hint}", signum)
