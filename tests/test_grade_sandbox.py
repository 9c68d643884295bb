"""``python -m setr_edu grade`` on hostile submissions (issues 21 and 22): honest grades right and kept, the others
contained. One folder holds an honest notebook and one of each attack, graded in one run (A5: three parts):

* forgers: a cell that replaces ``run_official``, every grader and ``Grader.finish``; a value whose pickle, or whose
  call, rewrites the grader inside the grading process;
* a tamperer: writes a classmate's notebook and the scores, deletes an instructor file, reads a classmate's
  notebook, leaves a detached process (``setsid``, double fork) that writes the scores after grading;
* a fork-bomb-lite (hundreds of processes), a memory hog (3 GiB), a crash (``os._exit``) after two correct parts,
  a check that hangs, a cell that hangs;
and an interrupted run (SIGINT) keeps every row written and a rerun grades only the rest.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from setr_edu.checks import grade
from setr_edu.checks.sandbox import landlock_abi

ROOT = Path(__file__).resolve().parents[1]
FENCED = landlock_abi() > 0
TOKEN = f"tamper{uuid.uuid4().hex[:8]}"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="grading needs Linux")

CM = """import torch
def confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
"""
IOU = """def iou_from_confusion(conf):
    conf = conf.double()
    tp = conf.diag()
    return tp / (conf.sum(0) + conf.sum(1) - tp)
"""
MIOU = """def mean_iou(pairs, num_classes, ignore_index=255):
    conf = sum(confusion_matrix(p, t, num_classes, ignore_index) for p, t in pairs)
    return float(torch.nanmean(iou_from_confusion(conf)))
"""
STUBS = """def confusion_matrix(pred, target, num_classes, ignore_index=255):
    raise NotImplementedError()
def iou_from_confusion(conf):
    raise NotImplementedError()
def mean_iou(pairs, num_classes, ignore_index=255):
    raise NotImplementedError()
"""
FORGE = """import setr_edu.checks as c, setr_edu.checks.result as r
from setr_edu.checks import ASSIGNMENTS
def fake(*args, **kwargs):
    return r.CheckResult("A5", "miou", "forged", True, 10.0, 10.0, 1, 1, [])
c.run_official = r.run_official = fake
for name in c.__all__:
    if name.startswith("check_"):
        setattr(c, name, fake)
import setr_edu.checks.miou as m
m.check_confusion_matrix = m.check_iou = m.check_miou = fake
r.Grader.finish = lambda self: fake()
"""
PICKLE_BOMB = """class Payload:  # runs when unpickled, inside the grading process
    def __reduce__(self):
        return (exec, ("import setr_edu.checks.result as r; r.Grader.finish = lambda self: None",))
def mean_iou(pairs, num_classes, ignore_index=255, _p=Payload()):
    return 0.0
def iou_from_confusion(conf):  # rewrites the grader when called
    import setr_edu.checks.result as r
    r.Grader.finish = lambda self: None
    raise NotImplementedError()
"""
BOMB = """import subprocess
procs = []
try:
    for i in range(400):
        procs.append(subprocess.Popen(["sleep", "31.7"]))
except Exception as e:
    print("stopped at", len(procs), type(e).__name__)
"""
HOG = """try:
    block = bytearray(3 << 30)
    print("allocated 3 GiB")
except MemoryError:
    print("MemoryError")
"""


def tamper(victim: Path, scores: Path, instructor: Path) -> str:
    return f"""import os, subprocess
for what, action in [("write", lambda: open({str(victim)!r}, "w").write("overwritten")),
                     ("scores", lambda: open({str(scores)!r}, "a").write("forged,row\\n")),
                     ("delete", lambda: os.remove({str(instructor)!r})),
                     ("read", lambda: open({str(victim)!r}).read())]:
    try:
        action()
        print(what, "done")
    except Exception as e:
        print(what, type(e).__name__)
later = "sleep 3; echo forged >> {scores}; echo forged > {victim}; rm -f {instructor}; sleep 30 # {TOKEN}"
subprocess.Popen(["sh", "-c", later], start_new_session=True)
if os.fork() == 0:  # double fork + setsid: re-parented away from the kernel
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", later])
    os._exit(0)
"""


def notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["setr_edu"] = {"assignment": "A5"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def leftovers(*words: str) -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(w in cmd for w in words) and "pytest" not in cmd:
                found.append(f"{d}: {cmd}")
    return found


def with_marker(marker: str) -> list[str]:
    """Processes started by the grading run whose environment carries ``marker``."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if f"SETR_TEST_MARK={marker}".encode() in Path(f"/proc/{d}/environ").read_bytes():
                    found.append(d)
            except OSError:
                continue
    return found


def read_rows(out: Path) -> dict:
    return {(r["student"], r["part"]): r for r in csv.DictReader(out.open())}


def run_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SETR_TEST_MARK=TOKEN)
    return subprocess.Popen([sys.executable, "-m", "setr_edu", "grade", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_hostile_submissions_are_contained_honest_grades_kept_and_an_interrupt_loses_nothing(tmp_path):
    subs, out, graded = tmp_path / "subs", tmp_path / "scores.csv", tmp_path / "graded"
    instructor = tmp_path / "instructor_key.txt"
    instructor.write_text("keep me")
    notebook(subs / "alice" / "a5.ipynb", CM, IOU, MIOU)
    victim_bytes = (subs / "alice" / "a5.ipynb").read_bytes()
    notebook(subs / "forger" / "a5.ipynb", STUBS, FORGE, PICKLE_BOMB)
    notebook(subs / "tamperer" / "a5.ipynb", CM, tamper(subs / "alice" / "a5.ipynb", out, instructor))
    notebook(subs / "hog_bomb" / "a5.ipynb", CM, HOG, IOU, BOMB)
    hang = MIOU.replace("    conf = sum", "    while True:\n        pass\n    conf = sum")
    notebook(subs / "crash" / "a5.ipynb", CM, IOU, hang, "import os\nos._exit(3)")
    notebook(subs / "zoe_hangs" / "a5.ipynb", CM, "while True:\n    pass", IOU)
    args = [str(subs), "--out", str(out), "--profile", "ci", "--check-timeout", "4", "--memory-mb", "1024"]
    p = run_cli(*args, "--jobs", "2", "--timeout", "300", "--executed", str(graded))
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and len(read_rows(out) if out.exists() else ()) < 5 * 3:
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)  # while zoe's notebook runs (it would for 280 s): Ctrl-C
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 130 and "interrupted: 5 of 6 notebooks graded" in stderr, stdout + stderr
    assert "Traceback" not in stdout + stderr, stdout + stderr  # one line per notebook, nothing else
    assert len(stdout.strip().splitlines()) == 5 + 1, stdout
    assert not with_marker(TOKEN) and not leftovers("sleep 31.7")  # no process of the run is left
    rows = read_rows(out)
    score = {k: float(r["score"]) for k, r in rows.items()}

    def scores(student):
        return [score[student, part] for part in ("confusion_matrix", "iou", "miou")]

    assert scores("alice") == [3, 3, 4] and rows["alice", "miou"]["passed"] == "True"
    assert scores("forger") == [0, 0, 0]  # the forging cell changed nothing: graded as the stub it is
    assert "not implemented yet" in rows["forger", "confusion_matrix"]["feedback"]
    for part in ("iou", "miou"):  # the pickled payload and the call-time patch are caught by the tripwire
        assert rows["forger", part]["status"].startswith("refused: the grader was modified"), rows["forger", part]
    assert scores("tamperer")[0] == 3
    assert scores("hog_bomb") == [3, 3, 0]  # 3 GiB refused (MemoryError), then the processes stopped
    hog_out = nbformat.read(graded / "hog_bomb" / "a5.ipynb", as_version=4).cells[1].outputs[0]["text"]
    assert "MemoryError" in hog_out
    assert scores("crash") == [3, 3, 0]  # two correct parts kept; the hanging check costs its own part only
    crash = rows["crash", "miou"]
    assert crash["notebook_status"] == "stopped in cell 3: crashed (exit code 3)" and crash["status"] == \
        "timed out after 4 s", crash
    time.sleep(3.5)  # the detached processes would have written by now
    assert not leftovers(TOKEN), leftovers(TOKEN)
    if FENCED:  # Landlock: no write outside the scratch folder, no read of a classmate's notebook
        assert (subs / "alice" / "a5.ipynb").read_bytes() == victim_bytes
        assert instructor.read_text() == "keep me" and "forged" not in out.read_text()
        printed = nbformat.read(graded / "tamperer" / "a5.ipynb", as_version=4).cells[1].outputs[0]["text"]
        for what in ("write", "scores", "delete", "read"):
            assert f"{what} PermissionError" in printed, printed

    # the same command again: the five graded notebooks are skipped, zoe's is graded within its budget
    t0 = time.monotonic()
    assert grade.main(args + ["--timeout", "16"]) == 0
    rows = read_rows(out)
    assert [k[0] for k in rows] == [k[0] for k in rows if k[0] != "zoe_hangs"] + ["zoe_hangs"] * 3
    assert all(r == rows[k] for k, r in read_rows(out).items() if k[0] == "alice")
    assert float(rows["zoe_hangs", "confusion_matrix"]["score"]) == 3
    zoe = rows["zoe_hangs", "iou"]
    assert zoe["notebook_status"].startswith("timeout: cell 1") and "rename" not in zoe["feedback"]
    assert "not defined yet when the notebook stopped" in zoe["feedback"]
    assert time.monotonic() - t0 < 16 + 60  # the budget, plus starting the grading process on a busy machine


def test_rerun_keeps_complete_rows_only(tmp_path):
    """A rerun skips notebooks whose rows are complete; rows cut short (a part missing, the grading process
    died) are dropped and graded again; a CSV of another format is kept aside, never overwritten."""
    out = tmp_path / "scores.csv"
    row = dict.fromkeys(grade.COLUMNS, "")

    def rows(nb, parts, status="ok"):
        return [dict(row, student=nb, notebook=nb, assignment="A5", part=p, notebook_status=status)
                for p in parts]

    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=grade.COLUMNS)
        w.writeheader()
        w.writerows(rows("a", ["confusion_matrix", "iou", "miou"]) + rows("b", ["confusion_matrix"])
                    + rows("c", ["confusion_matrix", "iou", "miou"], grade.DIED + " before it finished"))
    assert list(grade.previous(out, regrade=False)) == ["a"]
    assert [r["notebook"] for r in csv.DictReader(out.open())] == ["a"] * 3
    out.write_text("student,score\nalice,3\n")
    assert grade.previous(out, regrade=False) == {} and not out.exists()
    assert (tmp_path / "scores.csv.old").read_text() == "student,score\nalice,3\n"
