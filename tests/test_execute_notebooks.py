"""book/_scripts/execute_notebooks.py --report: headless nbclient run with a per-notebook report (issue 19)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, *cells: str) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    return path


def test_report_records_passed_failed_and_skipped(tmp_path):
    ok = write(tmp_path / "ch01_ok.ipynb", "import os\nprint(os.environ['SETR_EDU_PROFILE'])", "x = 1 + 1")
    bad = write(tmp_path / "ch02_bad.ipynb", "y = 2", "raise ValueError('planted failure')", "z = 3")
    before = ok.read_text()
    out = tmp_path / "report"
    cmd = [sys.executable, "book/_scripts/execute_notebooks.py", str(ok), str(bad), "--profile", "gpu",
           "--timeout-per-notebook", "120", "--report", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one notebook failed
    report = json.loads((out / "report.json").read_text())
    rows = {r["notebook"]: r for r in report["notebooks"]}
    assert rows["ch01_ok.ipynb"]["status"] == "passed" and rows["ch01_ok.ipynb"]["seconds"] > 0
    failed = rows["ch02_bad.ipynb"]
    assert failed["status"] == "failed" and failed["cell"] == 2
    assert failed["error"] == "ValueError: planted failure"
    assert (report["passed"], report["failed"], report["skipped"]) == (1, 1, 0)
    md = (out / "report.md").read_text()
    assert "| ch02_bad.ipynb | failed |" in md and "planted failure" in md
    executed = nbformat.read(out / "ch01_ok.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "gpu"  # ran under the profile asked for
    assert ok.read_text() == before  # the book's notebook is not touched
    assert "ch02_bad.ipynb: failed" in proc.stdout


def test_out_of_time_notebooks_are_skipped_or_stopped_with_a_reason(tmp_path):
    sys.path.insert(0, str(ROOT / "book" / "_scripts"))
    from execute_notebooks import book_notebooks, run_report

    slow = write(tmp_path / "ch03_slow.ipynb", "import time\ntime.sleep(60)")
    later = write(tmp_path / "ch04_later.ipynb", "pass")
    report = run_report([slow, later], "ci", tmp_path / "out", timeout_per_notebook=60, total_seconds=15,
                        log=lambda *a, **k: None)
    slow_row, later_row = report["notebooks"]
    assert slow_row["status"] == "failed" and "budget" in slow_row["error"] and slow_row["seconds"] < 40
    assert later_row["status"] == "skipped" and "budget ran out" in later_row["reason"]
    names = [p.name for p in book_notebooks(ROOT / "book")]
    assert names[0].startswith("ch01") and names[-1].startswith("a6_") and len(names) == 17
