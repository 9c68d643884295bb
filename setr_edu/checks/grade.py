"""Grade a folder of submitted assignment notebooks into a CSV of scores.

::

    python -m setr_edu grade SUBMISSIONS_DIR --out scores.csv [--timeout 600] [--profile cpu] [--executed DIR]

Layout: ``SUBMISSIONS_DIR/<student>/<any name>.ipynb`` (one folder per student, as most LMS exports give), or
flat ``SUBMISSIONS_DIR/<student>.ipynb``. Each notebook's assignment is read from its metadata
(``metadata.setr_edu.assignment``, written into every handed-out notebook), else from an ``a1`` to ``a6`` in its
file name, else from the check functions it calls.

For each notebook, in its own fresh kernel and a scratch working folder:

1. every cell runs, errors allowed, under one time limit for the whole notebook (``--timeout``; a cell that runs
   past it is interrupted and the rest skipped);
2. then the grading command's own check calls run (one per part, from :mod:`setr_edu.checks.assignments`), so
   edited or deleted check cells change nothing. The checks append their results to a JSON-lines log
   (``$SETR_EDU_GRADE_LOG``) that is read back here: scores never depend on parsing printed output.

A notebook that is not valid JSON, crashes its kernel or loops forever costs that student the parts that could
not be graded, never the run. The CSV has one row per student, notebook and part:
``student, notebook, assignment, part, score, max_score, passed, status, notebook_status, feedback``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .assignments import ASSIGNMENTS, Assignment
from .result import LOG_ENV

COLUMNS = ["student", "notebook", "assignment", "part", "score", "max_score", "passed", "status",
           "notebook_status", "feedback"]
GRADER_TAG = "setr-edu-grader"  # marks the cells the grading command appends


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
    """The cells the grading command appends: one ``run_official`` call per part."""
    cells = []
    for p in a.parts:
        cells.append("import setr_edu.checks as _setr_checks\n"
                     f"_setr_checks.run_official({a.id!r}, {p.name!r}, {p.call!r}, lambda: _setr_checks.{p.call})")
    return cells


def execute(nb, workdir: Path, log: Path, timeout: float, check_timeout: float, profile: str,
            kernel: str) -> str:
    """Run ``nb`` (in place) then the official check cells; return the notebook status."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    env = dict(os.environ, **{LOG_ENV: str(log), "SETR_EDU_PROFILE": profile, "MPLBACKEND": "agg"})
    client = NotebookClient(nb, timeout=int(timeout), allow_errors=True, kernel_name=kernel,
                            interrupt_on_timeout=False, resources={"metadata": {"path": str(workdir)}})
    status = "ok"
    client.reset_execution_trackers()
    with client.setup_kernel(env=env):  # the kernel starts in workdir (resources path)
        deadline = time.monotonic() + timeout
        for i, cell in enumerate(list(nb.cells)):
            if cell.cell_type != "code":
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status = f"timeout: stopped after {timeout:g} s"
                break
            client.timeout = max(1, int(remaining))
            try:
                client.execute_cell(cell, i)
            except CellTimeoutError:
                status = f"timeout: cell {i} ran past the {timeout:g} s limit"
                run_sync(client.km.interrupt_kernel)()
                break
            except DeadKernelError:
                return f"kernel died in cell {i}"
        client.timeout = int(check_timeout)
        for src in official_source(ASSIGNMENTS[nb.metadata["setr_edu"]["assignment"]]):
            cell = nbformat.v4.new_code_cell(src, metadata={"tags": [GRADER_TAG]})
            nb.cells.append(cell)
            try:
                client.execute_cell(cell, len(nb.cells) - 1)
            except CellTimeoutError:
                status += "; a check timed out (the kernel did not respond)"
                break
            except DeadKernelError:
                status += "; the kernel died during the checks"
                break
    return status


def read_log(log: Path) -> dict[str, dict]:
    """The last official result of each part in a JSON-lines log (malformed lines are skipped)."""
    results = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("official"):
                results[entry.get("part")] = entry
    return results


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
        elif m.lstrip().startswith("[ok]"):
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


def grade_one(root: Path, path: Path, timeout: float, check_timeout: float, profile: str, kernel: str,
              executed: Path | None) -> list[dict]:
    base = dict(student=student_name(root, path), notebook=path.relative_to(root).as_posix())
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # not JSON, not a notebook: grade the parts as zero, keep going
        aid = identify(path, None, text)
        return rows(base, aid, {}, f"invalid notebook: {type(exc).__name__}: {str(exc)[:120]}")
    aid = identify(path, nb, text)
    if aid is None:
        return rows(base, None, {}, "unknown assignment (no setr_edu metadata, no a1..a6 in the file name)")
    nb.metadata.setdefault("setr_edu", {})["assignment"] = aid
    with tempfile.TemporaryDirectory(prefix="setr-grade-") as tmp:
        log = Path(tmp) / "results.jsonl"
        try:
            status = execute(nb, Path(tmp), log, timeout, check_timeout, profile, kernel)
        except Exception as exc:  # kernel failed to start, ...: this notebook only
            status = f"not run: {type(exc).__name__}: {str(exc)[:120]}"
        results = read_log(log)
    if executed is not None:
        out = executed / base["notebook"]
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
    return rows(base, aid, results, status)


def rows(base: dict, aid: str | None, results: dict, status: str) -> list[dict]:
    if aid is None:
        return [dict(base, assignment="", part="", score=0, max_score=0, passed=False, status="not graded",
                     notebook_status=status, feedback="")]
    out = []
    for p in ASSIGNMENTS[aid].parts:
        r = results.get(p.name)
        out.append(dict(base, assignment=aid, part=p.name, max_score=p.points,
                        score=r["score"] if r else 0, passed=bool(r and r["passed"]),
                        status="graded" if r else "not graded", notebook_status=status,
                        feedback=feedback(r) if r else "the check for this part did not run"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m setr_edu grade",
                                 description="Run every submitted notebook with its checks; write a CSV of scores.")
    ap.add_argument("submissions", type=Path, help="folder of notebooks: <student>/<file>.ipynb or <student>.ipynb")
    ap.add_argument("--out", type=Path, default=Path("scores.csv"), help="CSV to write (default scores.csv)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for a whole notebook (default 600)")
    ap.add_argument("--check-timeout", type=float, default=120, help="seconds for each grading check (default 120)")
    ap.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"], help="run profile (default cpu)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    ap.add_argument("--executed", type=Path, default=None,
                    help="also save each executed notebook here (students' feedback is in its outputs)")
    args = ap.parse_args(argv)
    if not args.submissions.is_dir():
        ap.error(f"{args.submissions} is not a folder of notebooks")
    paths = find_notebooks(args.submissions)
    if not paths:
        ap.error(f"no .ipynb files under {args.submissions}")
    all_rows = []
    for path in paths:
        t0 = time.time()
        r = grade_one(args.submissions, path, args.timeout, args.check_timeout, args.profile, args.kernel,
                      args.executed)
        all_rows += r
        total, best = sum(float(x["score"]) for x in r), sum(float(x["max_score"]) for x in r)
        print(f"{r[0]['student']:<20} {r[0]['notebook']:<40} {r[0]['assignment'] or '?':<3} "
              f"{total:g}/{best:g}  ({time.time() - t0:.0f} s; {r[0]['notebook_status']})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(all_rows)
    print(f"wrote {len(all_rows)} rows for {len(paths)} notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
