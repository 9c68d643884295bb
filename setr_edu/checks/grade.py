"""Grade a folder of submitted assignment notebooks into a CSV of scores.

::

    python -m setr_edu grade SUBMISSIONS_DIR --out scores.csv [--timeout 600] [--jobs 4] [--executed DIR]

Layout: ``SUBMISSIONS_DIR/<student>/<any name>.ipynb`` (one folder per student, as most LMS exports give), or
flat ``SUBMISSIONS_DIR/<student>.ipynb``. Each notebook's assignment is read from its metadata
(``metadata.setr_edu.assignment``, written into every handed-out notebook), else from an ``a1`` to ``a6`` in its
file name, else from the check functions it calls.

Submissions are untrusted code. :mod:`setr_edu.checks.runner` runs each one in its own scratch folder, in
confined processes (:mod:`setr_edu.checks.sandbox`: CPU, memory, process and wall-clock limits, a Landlock fence
where the kernel has one, every process it started killed at the end), and grades every part in a fresh process
that imports the graders itself and receives only the notebook's definitions: a cell that replaces a grader
changes nothing, and a crash or a hang costs only the part it reaches. ``--timeout`` is the budget of a whole
submission: each part may use ``--check-timeout`` of it, at most an even share of half of it, the cells the rest.

Each submission's rows are appended to the CSV (flushed and synced) as soon as it is graded, so an interrupted run
loses nothing; running the same command again skips the notebooks already graded (unchanged since, by SHA-256),
unless ``--regrade``. Columns: ``student, notebook, assignment, part, score, max_score, passed, status,
notebook_status, feedback, notebook_sha256``.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .assignments import ASSIGNMENTS, Assignment

COLUMNS = ["student", "notebook", "assignment", "part", "score", "max_score", "passed", "status",
           "notebook_status", "feedback", "notebook_sha256"]
GRADER_TAG = "setr-edu-grader"  # marks the cells the grading command appends
DIED = "the grading process of this notebook died"  # a notebook_status that a rerun grades again


def find_notebooks(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def student_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else path.stem


def identify(path: Path, nb=None, text: str = "") -> str | None:
    """The assignment id of a notebook: metadata, then file name, then the check functions it calls."""
    if nb is not None:
        meta = nb.metadata.get("setr_edu", {}).get("assignment")
        if meta in ASSIGNMENTS:
            return meta
    m = re.search(r"(?:^|[^a-z0-9])a(\d+)(?:[^0-9]|$)", path.stem.lower())
    if m and f"A{m.group(1)}" in ASSIGNMENTS:
        return f"A{m.group(1)}"
    for a in ASSIGNMENTS.values():
        if any(p.call.split("(")[0] in text for p in a.parts):
            return a.id
    return None


def official_source(a: Assignment) -> list[str]:
    """The cells appended to an executed notebook, one per part: the call the grading command made (in a fresh
    process; the cell's output is that part's report)."""
    return [f"# graded by python -m setr_edu grade, in a fresh process\nimport setr_edu.checks as _setr_checks\n"
            f"_setr_checks.{p.call}" for p in a.parts]


FEEDBACK_CHARS = 600


def feedback(entry: dict) -> str:
    """One readable sentence group for the CSV: the first failed test, its hint, and how many others failed.

    ``"2 of 5 tests passed. First failure: values differ from ... Hint: the scores are not scaled: ..."``;
    empty when every test passed."""
    failed, current = [], None
    for m in entry.get("messages", []):
        text = " ".join(m.split())
        if m.lstrip().startswith("[FAIL]"):
            current = [text.removeprefix("[FAIL]").strip(), []]
            failed.append(current)
        elif m.lstrip().startswith(("[ok]", "[skip]", "[info]")):  # not part of the failure's hint
            current = None
        elif current is not None and text:
            current[1].append(text)
    if not failed:
        return ""
    first, hints = failed[0]
    tests = entry.get("tests") or 0
    head = f"{entry.get('tests_passed', 0)} of {tests} tests passed. First failure: " if tests > 1 else ""
    text = head + first.rstrip(".") + "." + (f" Hint: {' '.join(hints)}" if hints else "")
    if len(text) > FEEDBACK_CHARS:
        text = text[:FEEDBACK_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " ... (see the executed notebook)"
    return text


# ------------------------------------------------------------------------------------------------------ rows
def rows(base: dict, aid: str | None, result: dict, status: str) -> list[dict]:
    """One CSV row per part of ``aid`` from the runner's ``result`` (``{}``: nothing was graded)."""
    if aid is None:
        return [dict(base, assignment="", part="", score=0, max_score=0, passed=False, status="not graded",
                     notebook_status=status, feedback="")]
    out = []
    for p in ASSIGNMENTS[aid].parts:
        e = result.get("parts", {}).get(p.name) or {"status": "not graded"}
        r = e.get("result")
        row = dict(base, assignment=aid, part=p.name, max_score=p.points, score=0, passed=False,
                   status=e["status"], notebook_status=status, feedback=e.get("feedback", ""))
        if r:
            row.update(score=r["score"], passed=bool(r["passed"]), feedback=feedback(r))
        elif e.get("problems"):
            row["feedback"] = "; ".join(problem(p.call, name, why, status) for name, why in e["problems"].items())
        elif not row["feedback"]:
            row["feedback"] = ("the check for this part did not run" if e["status"] == "not graded" else
                               f"the check {e['status']}: it was stopped, the other parts are graded on their own")
        out.append(row)
    return out


def problem(call: str, name: str, why: str, status: str) -> str:
    """Why a name the grading call needs did not reach the grader, in the student's terms."""
    if why != "missing":
        return f"`{name}` {why}"
    if status == "ok":
        return (f"`{name}` is not defined: the grader calls `{call}`, so the notebook must define that name (did "
                "you rename it, or not run its cell?)")
    return f"`{name}` was not defined yet when the notebook stopped ({status})"


def executed_notebook(nb, aid: str, result: dict):
    """``nb`` with the text each code cell printed and, appended, one cell per part with the grader's report."""
    logged = {e["cell"]: e for e in result.get("cells", []) if "output" in e}
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        cell.outputs = []
        e = logged.get(i)
        if e and e.get("output"):
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=str(e["output"])))
    for src, p in zip(official_source(ASSIGNMENTS[aid]), ASSIGNMENTS[aid].parts, strict=True):
        e = result.get("parts", {}).get(p.name, {})
        text = e.get("report") or f"{p.name}: {e.get('status', 'not graded')}"
        cell = nbformat.v4.new_code_cell(src, metadata={"tags": [GRADER_TAG]})
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
        nb.cells.append(cell)
    return nb


# ---------------------------------------------------------------------------------------------------- output
def previous(out: Path, regrade: bool) -> dict[str, list[dict]]:
    """Rows of notebooks already graded in ``out`` (complete, same columns); the file is rewritten to hold
    exactly those. A CSV in another format is kept as ``<out>.old``."""
    if not out.exists() or out.stat().st_size == 0:
        return {}
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS or regrade:
            out.replace(out.with_name(out.name + ".old"))
            return {}
        done: dict[str, list[dict]] = {}
        for r in reader:
            done.setdefault(r["notebook"], []).append(r)
    keep = {nb: rs for nb, rs in done.items()  # complete, and not cut short by the grading process itself
            if len(rs) == len(ASSIGNMENTS[rs[0]["assignment"]].parts if rs[0]["assignment"] in ASSIGNMENTS else 1)
            and not rs[0]["notebook_status"].startswith(DIED)}
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for rs in keep.values():
            w.writerows(rs)
    os.replace(tmp, out)
    return keep


class Appender:
    """Appends rows to the CSV, flushed and fsynced after every notebook."""

    def __init__(self, out: Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        new = not out.exists() or out.stat().st_size == 0
        self.f = out.open("a", newline="", encoding="utf-8")
        self.w = csv.DictWriter(self.f, fieldnames=COLUMNS)
        if new:
            self.w.writeheader()

    def add(self, rs: list[dict]) -> None:
        self.w.writerows(rs)
        self.f.flush()
        os.fsync(self.f.fileno())


def status_line(r: list[dict], seconds: float) -> str:
    total, best = sum(float(x["score"]) for x in r), sum(float(x["max_score"]) for x in r)
    stopped = [f"{x['part']}: {x['status']}" for x in r if x["status"] != "graded" and x["part"]]
    note = "; ".join([r[0]["notebook_status"], *stopped])
    return (f"{r[0]['student']:<20} {r[0]['notebook']:<40} {r[0]['assignment'] or '?':<3} "
            f"{total:g}/{best:g}  ({seconds:.0f} s; {note})")


# ------------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m setr_edu grade",
                                 description="Run every submitted notebook, confined, and grade each part in a "
                                 "fresh process; append the scores to a CSV as each notebook is done.")
    ap.add_argument("submissions", type=Path, help="folder of notebooks: <student>/<file>.ipynb or <student>.ipynb")
    ap.add_argument("--out", type=Path, default=Path("scores.csv"), help="CSV to append to (default scores.csv)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds for a whole submission, cells and checks (default 600)")
    ap.add_argument("--check-timeout", type=float, default=120,
                    help="at most this many seconds for each part's check (default 120)")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    ap.add_argument("--memory-mb", type=int, default=4096,
                    help="memory a submission may allocate, MiB (default 4096; 0: no limit)")
    ap.add_argument("--processes", type=int, default=64,
                    help="processes and threads a submission may start (default 64; 0: no limit)")
    ap.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"], help="run profile (default cpu)")
    ap.add_argument("--sandbox", action="store_true",
                    help="refuse to grade unless the kernel can fence submissions in (Landlock)")
    ap.add_argument("--regrade", action="store_true",
                    help="grade every notebook again (the old CSV is kept as <out>.old)")
    ap.add_argument("--executed", type=Path, default=None,
                    help="also save each executed notebook here, with the graders' reports (students' feedback)")
    args = ap.parse_args(argv)
    if not args.submissions.is_dir():
        ap.error(f"{args.submissions} is not a folder of notebooks")
    if not sys.platform.startswith("linux"):
        ap.error("grading runs student code in confined processes, which needs Linux (use a Linux machine, WSL "
                 "or a container)")
    from .sandbox import landlock_abi

    if args.sandbox and not landlock_abi():
        ap.error("--sandbox: this kernel has no Landlock (Linux >= 5.13 with it enabled): submissions could write "
                 "wherever you can; grade in a container or VM, or drop --sandbox knowingly")
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        ap.error("grading needs cloudpickle: pip install cloudpickle")
    paths = find_notebooks(args.submissions)
    if not paths:
        ap.error(f"no .ipynb files under {args.submissions}")
    done = previous(args.out, args.regrade)
    out = Appender(args.out)
    tasks, notebooks, skipped = [], {}, 0
    for k, path in enumerate(paths):
        raw = path.read_bytes()
        base = dict(student=student_name(args.submissions, path), notebook=path.relative_to(args.submissions)
                    .as_posix(), notebook_sha256=hashlib.sha256(raw).hexdigest())
        if base["notebook"] in done and done[base["notebook"]][0]["notebook_sha256"] == base["notebook_sha256"]:
            skipped += 1
            continue
        text = raw.decode("utf-8", errors="replace")
        try:
            nb = nbformat.reads(text, as_version=4)
        except Exception as exc:  # not JSON, not a notebook: grade the parts as zero, keep going
            r = rows(base, identify(path, None, text), {}, f"invalid notebook: {type(exc).__name__}: "
                     f"{str(exc)[:120]}")
            out.add(r)
            print(status_line(r, 0), flush=True)
            continue
        aid = identify(path, nb, text)
        if aid is None:
            r = rows(base, None, {}, "unknown assignment (no setr_edu metadata, no a1..a6 in the file name)")
            out.add(r)
            print(status_line(r, 0), flush=True)
            continue
        notebooks[k] = (base, aid, nb)
        tasks.append(dict(id=k, path=str(path.resolve()), assignment=aid))
    if skipped:
        print(f"{skipped} notebook(s) already graded in {args.out} (unchanged): skipped; --regrade grades them "
              "again", flush=True)
    graded = run(tasks, notebooks, args, out) if tasks else 0
    if graded < 0:  # interrupted: what was graded is in the CSV
        return 130
    print(f"{graded + skipped + len(paths) - skipped - len(tasks)} of {len(paths)} notebooks graded; scores in "
          f"{args.out}")
    return 0 if graded == len(tasks) else 1


def run(tasks: list[dict], notebooks: dict, args, out: Appender) -> int:
    """Start the grading process, append each result as it arrives; the number of notebooks graded."""
    cpus = len(os.sched_getaffinity(0))
    config = dict(timeout=args.timeout, check_timeout=args.check_timeout, profile=args.profile, jobs=args.jobs,
                  threads=max(1, cpus // max(1, args.jobs)), memory_mb=args.memory_mb,
                  processes=args.processes, fence=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    errlog = tempfile.NamedTemporaryFile("w+", prefix="setr-grade-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "setr_edu.checks.runner"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errlog, env=env, start_new_session=True, text=True)
    graded, stop = 0, signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        proc.stdin.write(json.dumps(dict(config=config, tasks=tasks)))
        proc.stdin.close()
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("ready"):
                fence = (f"Landlock ABI {msg['landlock']}: writes only in its scratch folder, no reads of other "
                         "submissions" if msg["landlock"] else "no Landlock on this kernel: a submission can read "
                         "and write whatever this user can (see the guide)")
                print(f"grading {len(tasks)} notebook(s), {args.jobs} at a time; each in a scratch folder, "
                      f"limited, {fence}", flush=True)
                continue
            base, aid, nb = notebooks[msg["id"]]
            status = msg.get("notebook") or msg.get("error", "not run")
            r = rows(base, aid, msg, status)
            out.add(r)
            graded += 1
            print(status_line(r, float(msg.get("seconds", 0))), flush=True)
            if args.executed is not None and "cells" in msg:
                path = args.executed / base["notebook"]
                path.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(executed_notebook(nb, aid, msg), path)
        proc.wait()
        if graded < len(tasks):
            errlog.seek(0)
            last = [x for x in errlog.read().splitlines() if x.strip()][-1:] or ["no message"]
            print(f"error: the grading process stopped after {graded} of {len(tasks)} notebooks ({last[0][:200]}); "
                  f"its log: {errlog.name}. Run the same command again to grade the rest.", file=sys.stderr)
        else:
            os.unlink(errlog.name)
        return graded
    except KeyboardInterrupt:
        print(f"\ninterrupted: {graded} of {len(tasks)} notebooks graded and saved in {args.out}; run the same "
              "command again to grade the rest", file=sys.stderr)
        return -1
    finally:
        signal.signal(signal.SIGTERM, stop)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the grading process kills every process it started
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _raise_interrupt(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
