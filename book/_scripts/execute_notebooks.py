"""Execute book notebooks under a run profile (default ``cpu``): in place for the book, or headless with a report.

In place (commit notebooks executed this way: the book is built from these stored outputs)::

    python book/_scripts/execute_notebooks.py book/ch01_images_as_sequences.ipynb [...] [--profile cpu]

The notebook is first synced (badge + setup cell), then run top to bottom with nbclient from the notebook's own
folder, and written back with its outputs and widget state (the state in the form ipywidgets 7 and 8 front ends
both draw: ``notebook_transforms.widget_state_for_both``).

Headless with a report (a GPU machine without Jupyter or internet; ``benchmarks/gpu_check.py --notebooks``)::

    python book/_scripts/execute_notebooks.py --profile gpu --timeout-per-notebook 900 --report DIR [notebooks...]

runs the chapters and A6 (or the notebooks named) without touching them: each executed copy goes to
``DIR/<name>.ipynb``, and ``DIR/report.json`` / ``DIR/report.md`` record per notebook ``passed``, ``failed``
(the cell number and the error's last line) or ``skipped`` (with the reason), and the wall time. ``--total S``
bounds the whole run: notebooks left when it runs out are skipped, saying so.

Offline machine: the execution needs only nbclient, ipykernel and their dependencies (no Jupyter server, no
notebook front end). On a machine with internet, for the target's Python and platform::

    python book/_scripts/execute_notebooks.py --download-wheels wheels/ --python-version 3.11
    # -> pip download nbclient ipykernel nbformat --only-binary=:all: --python-version 3.11 ... -d wheels/

copy ``wheels/`` over, and there ``pip install --no-index --find-links wheels/ nbclient ipykernel``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))

EXECUTION_DEPS = ("nbclient", "ipykernel", "nbformat")  # and what pip resolves for them; no jupyter, no notebook
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def _client(nb, path: Path, profile: str, timeout: int, **kw):
    from nbclient import NotebookClient

    os.environ["SETR_EDU_PROFILE"] = profile
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return NotebookClient(nb, timeout=timeout, kernel_name="python3",
                          resources={"metadata": {"path": str(path.parent)}}, **kw)


def execute(path: Path, profile: str = "cpu", timeout: int = 1800) -> float:
    """Sync, execute and write back ``path`` in place (the book's stored outputs); returns seconds."""
    from notebook_transforms import widget_state_for_both
    from sync_notebooks import sync

    sync(path)
    nb = nbformat.read(path, as_version=4)
    client = _client(nb, path, profile, timeout, store_widget_state=True)
    t0 = time.time()
    client.execute()
    seconds = time.time() - t0
    widget_state_for_both(nb)  # the widget state nbclient saved, in the form ipywidgets 7 and 8 both draw
    nbformat.write(nb, path)
    return seconds


def run_one(path: Path, profile: str, seconds: float, out: Path | None = None) -> dict:
    """Execute a copy of ``path`` headless within ``seconds`` in all; never raises for a notebook's own error.

    Returns ``{"notebook", "status": "passed" | "failed", "seconds", "cell", "error"}`` (cell: the 1-based index
    of the cell that failed or ran out of time)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    deadline = time.time() + seconds
    current = {"index": None}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = _client(nb, path, profile, int(seconds), on_cell_start=on_cell_start,
                     timeout_func=lambda cell: max(1, int(deadline - time.time())))
    row = dict(notebook=path.name, status="passed", seconds=0.0, cell=None, error="")
    t0 = time.time()
    try:
        client.execute()
    except CellTimeoutError:
        row.update(status="failed", error=f"timed out: the notebook's budget of {seconds:.0f} s ran out")
    except CellExecutionError as e:
        ename, evalue = getattr(e, "ename", type(e).__name__), getattr(e, "evalue", str(e))
        row.update(status="failed", error=f"{ename}: {evalue}".strip().splitlines()[-1][:300])
    except DeadKernelError as e:
        row.update(status="failed", error=f"the kernel died (out of memory?): {str(e)[:200]}")
    except Exception as e:  # noqa: BLE001  a notebook that cannot start is a result too
        row.update(status="failed", error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    row["seconds"] = round(time.time() - t0, 1)
    if row["status"] == "failed" and current["index"] is not None:
        row["cell"] = current["index"] + 1
    if out is not None:
        nbformat.write(nb, out / path.name)
    return row


def book_notebooks(book: Path) -> list[Path]:
    """The chapters (``chNN_*.ipynb``) and the capstone A6, in reading order."""
    return sorted(book.glob("ch[0-9][0-9]_*.ipynb")) + sorted(book.glob("assignments/a6_*.ipynb"))


def to_markdown(report: dict) -> str:
    lines = [f"# Notebooks under the {report['profile']} profile", "",
             f"{report['passed']} passed, {report['failed']} failed, {report['skipped']} skipped in "
             f"{report['seconds']:.0f} s", "", "| notebook | status | seconds | cell | error or reason |",
             "|---|---|---|---|---|"]
    for r in report["notebooks"]:
        msg = (r.get("error") or r.get("reason") or "").replace("|", "/")
        lines.append(f"| {r['notebook']} | {r['status']} | {r['seconds']:.0f} | {r.get('cell') or ''} | {msg} |")
    return "\n".join(lines) + "\n"


def run_report(notebooks: list[Path], profile: str, out: Path, timeout_per_notebook: float,
               total_seconds: float | None = None, log=print) -> dict:
    """Run each notebook headless (:func:`run_one`), writing ``out/report.json`` and ``out/report.md`` after each."""
    out.mkdir(parents=True, exist_ok=True)
    t0, rows = time.time(), []
    report = dict(profile=profile, notebooks=rows)
    for path in notebooks:
        left = None if total_seconds is None else total_seconds - (time.time() - t0)
        if left is not None and left < 10:
            rows.append(dict(notebook=path.name, status="skipped", seconds=0.0,
                             reason="the total time budget ran out before this notebook"))
        else:
            rows.append(run_one(path, profile, min(timeout_per_notebook, left or timeout_per_notebook), out))
        r = rows[-1]
        log(f"{r['notebook']}: {r['status']} in {r['seconds']:.0f} s"
            + (f" (cell {r['cell']}: {r['error']})" if r["status"] == "failed" else "")
            + (f" ({r['reason']})" if r["status"] == "skipped" else ""), flush=True)
        report.update(seconds=time.time() - t0, **{s: sum(x["status"] == s for x in rows)
                                                   for s in ("passed", "failed", "skipped")})
        (out / "report.json").write_text(json.dumps(report, indent=1))
        (out / "report.md").write_text(to_markdown(report))
    return report


def download_wheels(folder: Path, python_version: str) -> int:
    """``pip download`` the execution dependencies as wheels for ``python_version`` on x86-64 Linux."""
    cmd = [sys.executable, "-m", "pip", "download", *EXECUTION_DEPS, "--only-binary=:all:", "--implementation",
           "cp", "--python-version", python_version, *(a for p in PLATFORMS for a in ("--platform", p)),
           "-d", str(folder)]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc == 0:
        size = sum(f.stat().st_size for f in folder.glob("*.whl"))
        print(f"{len(list(folder.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB in {folder}; on the offline "
              f"machine: pip install --no-index --find-links {folder} {' '.join(EXECUTION_DEPS)}")
    return rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default with --report: every chapter and A6")
    ap.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"])
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell (in-place mode)")
    ap.add_argument("--report", type=Path, default=None, help="run headless, executed copies and report here")
    ap.add_argument("--timeout-per-notebook", type=float, default=1800.0, help="seconds per notebook (--report)")
    ap.add_argument("--total", type=float, default=None, help="seconds for all notebooks (--report)")
    ap.add_argument("--download-wheels", type=Path, default=None, help="pip download the execution deps here")
    ap.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    args = ap.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels, args.python_version)
    if args.report:
        nbs = args.notebooks or book_notebooks(Path(__file__).resolve().parents[1])
        report = run_report(nbs, args.profile, args.report, args.timeout_per_notebook, args.total)
        print(f"{report['passed']} passed, {report['failed']} failed, {report['skipped']} skipped: "
              f"{args.report / 'report.md'}")
        return 1 if report["failed"] else 0
    if not args.notebooks:
        ap.error("name the notebooks to execute in place, or pass --report DIR")
    for p in args.notebooks:
        print(f"executing {p} (profile {args.profile}) ...", flush=True)
        print(f"  done in {execute(p, args.profile, args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
