"""Stopping a real `python -m setr_edu train` process the ways users and schedulers do (issue 21): a second signal
inside the checkpoint save, SIGTERM / SIGHUP to the whole process group with DataLoader workers, Ctrl-C during
the imports. Each test failed on the code before the fix (a traceback, exit status 1, or nothing saved)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from engine_helpers import TINY_ARGS

from setr_edu.engine.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}

# A real CLI process whose checkpoint writes are watched: HOOK_SIGNALS are sent to the process itself from inside
# the n-th `write` of the save of iteration HOOK_ITER (the moment a user presses Ctrl-C a second time), and
# HOOK_FIRST is sent during the training step of that iteration (the first press). Deterministic timing.
DRIVER = textwrap.dedent("""
    import os, signal, sys
    import torch
    from setr_edu.engine import checkpoint, trainer

    at_iter, first, during_save = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",") if sys.argv[3] else []
    real_save, real_step = torch.save, trainer.Trainer.train_step

    class Watched:  # the file torch.save writes: a signal arrives after a few of its writes
        def __init__(self, f):
            self.f, self.n = f, 0
        def write(self, b):
            self.n += 1
            if self.n in (3, 6) and len(during_save) >= self.n // 3:
                os.kill(os.getpid(), getattr(signal, during_save[self.n // 3 - 1]))
            return self.f.write(b)
        def flush(self):
            self.f.flush()

    def save(obj, f, *a, **k):
        return real_save(obj, Watched(f) if obj["iter"] == at_iter else f, *a, **k)

    def step(self, batches):
        if first and self.iter == at_iter - 1:
            os.kill(os.getpid(), getattr(signal, first))
        return real_step(self, batches)

    checkpoint.torch.save, trainer.Trainer.train_step = save, step
    from setr_edu.cli import main
    sys.exit(main(sys.argv[4:]))
""")


def _train_args(work, *extra):
    return ["train", "--config", "synthetic_ci", "--work-dir", str(work), "--threads", "1", "--no-progress",
            *TINY_ARGS, "max_iters=40", "eval_every=1000", "checkpoint_minutes=0", "log_every=1", *extra]


@pytest.mark.parametrize("first, during_save, every, saved", [
    ("SIGINT", "SIGINT", 1000, 3),  # Ctrl-C, then Ctrl-C again while its checkpoint (the first one) is written
    ("SIGTERM", "SIGTERM", 2, 3),  # kill twice; an earlier checkpoint (iteration 2) exists
    ("", "SIGINT,SIGINT", 3, 3),  # both presses inside a scheduled save
])
def test_a_second_signal_during_the_save_finishes_it_and_prints_the_resume_line(tmp_path, first, during_save,
                                                                                 every, saved):
    work = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(saved), first, during_save,
                           *_train_args(work, f"checkpoint_every={every}")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    sig = getattr(signal, (first or during_save).split(",")[0])
    assert proc.returncode == 128 + sig and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{sig.name}: saved iteration {saved} of 40 to {work / 'last.pt'}; resume with: "
                           f"python -m setr_edu train") and last.endswith("--resume"), proc.stderr
    assert load_checkpoint(work / "last.pt")["iter"] == saved  # the write finished: a whole, new checkpoint
    assert not list(work.glob(".last.pt.*.tmp"))


def _wait_for_log(log, lines: int, proc, timeout=120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and sum(1 for ln in log.read_text().splitlines() if ln.endswith("}")) >= lines:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("training wrote no log lines in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_to_the_process_group_with_workers_saves_and_prints_one_line(tmp_path, sig):
    """What `timeout`, Slurm's scancel and a container stop do (SIGTERM), and a closed terminal (SIGHUP): the signal
    reaches the main process and every DataLoader worker at once."""
    work = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "setr_edu", *_train_args(work, "max_iters=100000",
                                                                             "checkpoint_every=100000",
                                                                             "num_workers=2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    _wait_for_log(work / "log.jsonl", 2, proc)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "DataLoader worker" not in err and "killed by signal" not in err, err
    saved = load_checkpoint(work / "last.pt")["iter"]
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"{sig.name}: saved iteration {saved} of 100000") and "--resume" in lines[-1], err
    assert len([ln for ln in lines if ln.strip()]) <= 3, err  # the start line(s), the notice, the result


def test_ctrl_c_during_the_imports_prints_one_line(tmp_path):
    """Ctrl-C while `python -m setr_edu` still imports torch (seconds on a cold disk)."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import builtins, os, signal
        real = builtins.__import__
        def slow_import(name, *a, **k):
            if name == "torch":
                builtins.__import__ = real
                os.kill(os.getpid(), signal.SIGINT)
            return real(name, *a, **k)
        builtins.__import__ = slow_import
    """))
    env = {**ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ENV['PYTHONPATH']}"}
    proc = subprocess.run([sys.executable, "-m", "setr_edu", "recipes"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == ["interrupted (Ctrl-C) while starting; nothing was running yet"]
