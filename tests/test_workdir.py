"""One run per work dir, and a resume that never starts over by mistake (issue 21).

A second `train` on a live run's folder used to delete the live run's in-flight temporary checkpoint before it was
refused, two `--resume` interleaved log.jsonl, and `--resume` with last.pt gone started from scratch and replaced
the old log. Each test failed on the code before the fix."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from engine_helpers import one_thread, tiny_recipe

from setr_edu.engine.checkpoint import CheckpointError
from setr_edu.engine.preflight import TrainingError
from setr_edu.engine.trainer import Trainer

# Another process holding the work dir's lock, as a live run does (flock on .lock, its pid/host/start in the file).
HOLDER = textwrap.dedent("""
    import fcntl, json, os, socket, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(), started="2026-01-01 10:00:00")).encode())
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _trainer(work_dir, **kw):
    return Trainer(tiny_recipe(max_iters=4, eval_every=100, checkpoint_every=2), work_dir, progress=False, log=None,
                   **kw)


@pytest.mark.skipif(sys.platform == "win32", reason="the holder uses fcntl")
def test_a_second_run_on_a_live_work_dir_is_refused_before_touching_anything(tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    in_flight = work / ".last.pt.abc123.tmp"  # the live run is writing its checkpoint right now
    in_flight.write_bytes(b"PK half a checkpoint")
    (work / "log.jsonl").write_text('{"iter": 1}\n')
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(work / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for kw in (dict(), dict(resume=True), dict(overwrite=True)):
            with pytest.raises(TrainingError, match=rf"{work} is in use by another training run \(pid {holder.pid} "
                                                    rf"on .*, started 2026-01-01 10:00:00\); nothing was changed"):
                _trainer(work, **kw)
            assert in_flight.read_bytes() == b"PK half a checkpoint"
            assert (work / "log.jsonl").read_text() == '{"iter": 1}\n'
    finally:
        holder.kill()
        holder.wait()
    # the holder died (kill -9): its lock went with it, the file left behind is stale and taken over
    t = _trainer(work, overwrite=True)
    assert not in_flight.exists()  # now it is a leftover of a killed save, and removed
    assert json.loads((work / ".lock").read_text())["pid"] == os.getpid()
    probe = [sys.executable, "-c", HOLDER.replace("fcntl.LOCK_EX)", "fcntl.LOCK_EX | fcntl.LOCK_NB)").replace(
        "time.sleep(120)", "sys.exit(0)"), str(work / ".lock")]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0  # held between init and fit
    t.fit()
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0  # free again after fit


def test_the_same_process_may_build_a_second_trainer_on_its_work_dir(tmp_path):
    """A notebook: a Trainer built, not fitted, then a second one on the same folder (re-running a cell)."""
    a = _trainer(tmp_path)
    b = _trainer(tmp_path, overwrite=True)
    b.fit()
    assert _trainer(tmp_path, resume=True).iter == 4
    del a


def test_resume_without_last_pt_after_an_earlier_run_is_refused_and_the_log_kept(tmp_path):
    _trainer(tmp_path).fit()
    log = (tmp_path / "log.jsonl").read_text()
    (tmp_path / "last.pt").rename(tmp_path / "elsewhere.pt")
    with pytest.raises(CheckpointError, match=r"cannot resume: .*last\.pt does not exist, but .*log\.jsonl holds the "
                                              r"log of an earlier run; restore its last\.pt, or pass --overwrite"):
        _trainer(tmp_path, resume=True)
    (tmp_path / "last.pt").symlink_to(tmp_path / "gone.pt")  # a dangling link (a Drive folder not mounted)
    with pytest.raises(CheckpointError, match=r"cannot resume: .*last\.pt is a link to .*gone\.pt, which does not "
                                              r"exist"):
        _trainer(tmp_path, resume=True)
    assert (tmp_path / "log.jsonl").read_text() == log
    _trainer(tmp_path / "fresh", resume=True)  # a fresh folder: resume=True starts from scratch (the book's cells)
