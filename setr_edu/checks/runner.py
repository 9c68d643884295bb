"""The grading process behind ``python -m setr_edu grade``: runs submissions, confined, and grades each part.

Started by :mod:`setr_edu.checks.grade` as ``python -m setr_edu.checks.runner`` with the job on stdin (JSON); it
writes one JSON line per finished submission to stdout. It imports torch, setr_edu and the graders *before*
any student code runs, then, for each submission (``jobs`` at a time), forks a supervisor that

1. copies the notebook into its own scratch folder and runs its code cells in a confined child
   (``setr_edu.checks.sandbox.run_forked``: limits, Landlock fence, clean-up of every process it started),
   with IPython (magics work) under the notebook's share of the time budget. After every cell the child saves the
   values the grading calls name (``MyAttention``, ``model``, ...) with cloudpickle, so a crash or a timeout
   keeps what was defined before it;
2. grades each part in a *fresh* confined child forked from the untouched grading process: it loads only the
   saved values and calls the grader, under its own time limit. Nothing a notebook cell did to
   ``setr_edu.checks`` (replacing ``run_official`` or a grader) exists there, and a crash or hang in one part
   costs that part only. A tripwire compares setr_edu's and torch's functions before and after, and refuses a
   result if they were replaced while loading or grading (code written to attack the grader when it is *called*
   runs inside the grader's process: the tripwire raises the bar, it is not a proof).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .sandbox import Limits, Outcome, become_subreaper, kill_descendants, landlock_abi, run_forked

OUTPUT_CHARS = 20_000  # per cell, in the executed notebook


def call_names(call: str) -> list[str]:
    """The notebook names a grading call uses: ``check_decoder(MyHead, kind=KIND)`` -> ``["MyHead", "KIND"]``."""
    node = ast.parse(call, mode="eval").body
    args = list(node.args) + [k.value for k in node.keywords]
    return sorted({n.id for a in args for n in ast.walk(a) if isinstance(n, ast.Name)})


# ----------------------------------------------------------------------------------------- the notebook child
def run_cells(cells: list[str], names: list[str], state: Path, threads: int, profile: str) -> None:
    """In the confined child: run the code cells one by one, save ``names`` after each, log progress."""
    import cloudpickle
    import torch
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    torch.set_num_threads(threads)
    cfg = Config()
    cfg.HistoryManager.enabled = False
    cfg.InteractiveShell.colors = "NoColor"
    shell = InteractiveShell.instance(config=cfg)
    shell.user_ns["__name__"] = "__main__"
    log = (state / "cells.jsonl").open("a", encoding="utf-8")
    for i, src in enumerate(cells):
        log.write(json.dumps({"cell": i, "started": True}) + "\n")
        log.flush()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            res = shell.run_cell(src, store_history=False)
        err = res.error_in_exec or res.error_before_exec
        text = buf.getvalue()
        if len(text) > OUTPUT_CHARS:
            text = text[:OUTPUT_CHARS] + "\n... (output cut)\n"
        log.write(json.dumps({"cell": i, "output": text, "error": type(err).__name__ if err else None}) + "\n")
        log.flush()
        for name in names:
            if name in shell.user_ns:
                tmp = state / f"{name}.tmp"
                try:
                    tmp.write_bytes(cloudpickle.dumps(shell.user_ns[name]))
                    os.replace(tmp, state / f"{name}.pkl")
                    (state / f"{name}.err").unlink(missing_ok=True)
                except Exception as exc:  # noqa: BLE001 - a value cloudpickle cannot save
                    (state / f"{name}.err").write_text(f"{type(exc).__name__}: {exc}"[:300])


def read_cells(state: Path) -> list[dict]:
    out = []
    path = state / "cells.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("cell"), int):
                    out.append(entry)
    return out


# --------------------------------------------------------------------------------------------- the part child
def _snapshot() -> dict:
    """Identity of every function and class attribute of setr_edu, torch and builtins (the tripwire)."""
    import builtins

    import torch

    mods = [m for n, m in list(sys.modules.items()) if m is not None and n.split(".")[0] == "setr_edu"]
    mods += [builtins, torch, torch.nn.functional, torch.testing]
    snap = {}
    for m in mods:
        for k, v in list(vars(m).items()):
            if k.startswith("__"):
                continue
            snap[(m.__name__, k)] = id(v)
            if isinstance(v, type) and m.__name__.startswith("setr_edu.checks"):
                for a, f in vars(v).items():
                    snap[(m.__name__, f"{k}.{a}")] = id(f)
            code = getattr(v, "__code__", None)
            if code is not None:
                snap[(m.__name__, f"{k}.__code__")] = id(code)
    for k, v in vars(torch.Tensor).items():
        snap[("torch.Tensor", k)] = id(v)
    return snap


def grade_part(assignment: str, part: str, state: Path, fd: int, threads: int) -> None:
    """In a fresh confined child: load the saved values the call names, call the grader, send the result."""
    import pickle

    import torch

    from .assignments import ASSIGNMENTS

    torch.set_num_threads(threads)
    call, snap, ns, problems = ASSIGNMENTS[assignment].part(part).call, _snapshot(), {}, {}
    reference = checks_namespace()
    for name in call_names(call):
        if name in reference:
            continue
        if (state / f"{name}.pkl").exists():
            try:
                with (state / f"{name}.pkl").open("rb") as f:
                    ns[name] = pickle.load(f)
            except Exception as exc:  # noqa: BLE001
                problems[name] = f"could not be loaded: {type(exc).__name__}: {exc}"[:300]
        elif (state / f"{name}.err").exists():
            problems[name] = "could not be handed to the grader: " + (state / f"{name}.err").read_text()[:300]
        else:
            problems[name] = "missing"
    msg: dict = {"problems": problems}
    if not problems:
        tampered = [k for k, v in _snapshot().items() if snap.get(k, v) != v]
        if not tampered:
            try:
                result = eval(call, {**ns, **reference})  # the graders from this process, never the notebook's
            finally:
                tampered = [k for k, v in _snapshot().items() if snap.get(k, v) != v]
                if tampered:
                    os.write(fd, json.dumps({"tampered": ".".join(tampered[0])}).encode())
            if tampered:
                return
            msg["result"] = result.to_json()
            msg["report"] = result.report()
        if tampered:
            msg = {"tampered": ".".join(tampered[0])}
    data = json.dumps(msg).encode()
    os.write(fd, data[:60_000])


# ------------------------------------------------------------------------------------------------- supervisor
def supervise(task: dict, cfg: dict, out_fd: int) -> None:
    """Grade one submission (runs in a forked, unconfined but student-free process); write JSON to out_fd."""
    import nbformat

    from .assignments import ASSIGNMENTS

    become_subreaper()
    a = ASSIGNMENTS[task["assignment"]]
    scratch = Path(tempfile.mkdtemp(prefix="setr-grade-"))
    try:
        work = scratch / "work"
        state = work / ".grader"
        state.mkdir(parents=True)
        (work / "tmp").mkdir()
        shutil.copyfile(task["path"], work / "submission.ipynb")
        nb = nbformat.read(work / "submission.ipynb", as_version=4)
        cells = [c.source for c in nb.cells if c.cell_type == "code"]
        names = sorted({n for p in a.parts for n in call_names(p.call)} - set(checks_namespace()))
        budget, n = float(cfg["timeout"]), len(a.parts)
        share = min(float(cfg["check_timeout"]), budget / (2 * n))
        start = time.monotonic()
        lim = dict(threads=cfg["threads"], memory_mb=cfg["memory_mb"], processes=cfg["processes"])
        os.environ.update(HOME=str(work), TMPDIR=str(work / "tmp"), MPLCONFIGDIR=str(work / "tmp"),
                          IPYTHONDIR=str(work / "tmp" / "ipython"), MPLBACKEND="agg",
                          SETR_EDU_PROFILE=cfg["profile"])
        os.environ.pop("SETR_EDU_GRADE_LOG", None)
        abi = cfg["landlock"]
        nb_out = run_forked(lambda: run_cells(cells, names, state, cfg["threads"], cfg["profile"]), work,
                            Limits(seconds=budget - n * share, **lim), abi, scratch / "notebook.log")
        logged = read_cells(state)
        result = {"cells": logged, "notebook": notebook_status(nb_out, logged, budget - n * share), "parts": {}}
        for i, p in enumerate(a.parts):
            missing = [m for m in call_names(p.call) if m in names and not (state / f"{m}.pkl").exists()
                       and not (state / f"{m}.err").exists()]
            if missing:  # nothing to run: no time needed
                result["parts"][p.name] = {"status": "graded", "problems": {m: "missing" for m in missing}}
                continue
            left = budget - (time.monotonic() - start) - share * (n - i - 1)
            limit = min(float(cfg["check_timeout"]), left)
            if limit < 1:
                result["parts"][p.name] = {"status": "not graded: the time budget was used up"}
                continue
            r, w = os.pipe()
            o = run_forked(lambda p=p, w=w: grade_part(a.id, p.name, state, w, cfg["threads"]), work,
                           Limits(seconds=limit, **lim), abi, scratch / f"{p.name}.log", keep_fds=(w,))
            os.close(w)
            data = b""
            while select.select([r], [], [], 0)[0]:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
            os.close(r)
            result["parts"][p.name] = part_entry(o, data, limit)
        result["seconds"] = round(time.monotonic() - start, 1)
        os.write(out_fd, (json.dumps(result) + "\n").encode())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def checks_namespace() -> dict:
    """The graders, from this process's own import of setr_edu.checks."""
    import setr_edu.checks as checks

    return {n: getattr(checks, n) for n in checks.__all__}


def notebook_status(o: Outcome, logged: list[dict], limit: float) -> str:
    started = [e["cell"] for e in logged if e.get("started")]
    last = started[-1] if started else None
    finished = last is not None and any(e["cell"] == last and "output" in e for e in logged)
    if o.timed_out:
        return f"timeout: cell {last} ran past the {limit:.0f} s limit" if last is not None else "timeout"
    if o.code == 0:
        return "ok"
    where = f" in cell {last}" if last is not None and not finished else " after the last cell"
    return f"stopped{where}: {o.describe().removeprefix('stopped: ')}"


def part_entry(o: Outcome, data: bytes, limit: float) -> dict:
    try:
        msg = json.loads(data.decode()) if data else None
    except ValueError:
        msg = None
    if isinstance(msg, dict) and "tampered" in msg:
        return {"status": "refused: the grader was modified while it ran", "feedback": f"{msg['tampered']} was "
                "replaced: the graders must not be changed by the code they grade"}
    if isinstance(msg, dict) and isinstance(msg.get("result"), dict):
        return {"status": "graded", "result": msg["result"], "report": str(msg.get("report", ""))}
    if isinstance(msg, dict) and msg.get("problems"):
        return {"status": "graded", "problems": msg["problems"]}
    if o.timed_out:
        return {"status": f"timed out after {limit:.0f} s"}
    return {"status": f"not graded: the check {o.describe()}"}


# --------------------------------------------------------------------------------------------------- the loop
def main() -> int:
    spec = json.loads(sys.stdin.read())
    import matplotlib

    matplotlib.use("agg")
    import cloudpickle  # noqa: F401 - imported before any student code, like everything below
    import matplotlib.pyplot  # noqa: F401
    import nbformat  # noqa: F401
    import torch  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401

    checks_namespace()  # every grader

    become_subreaper()
    tempfile.tempdir = tempfile.mkdtemp(prefix="setr-grade-")  # every scratch folder goes in here

    def stop(*_):  # the parent was interrupted: leave no process and no scratch folder behind
        kill_descendants()
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it sends SIGTERM
    cfg = dict(spec["config"], landlock=landlock_abi() if spec["config"]["fence"] else 0)
    print(json.dumps({"ready": True, "landlock": cfg["landlock"]}), flush=True)
    todo, running = list(spec["tasks"]), {}  # pid -> (task, read fd)
    while todo or running:
        while todo and len(running) < max(1, int(spec["config"]["jobs"])):
            task = todo.pop(0)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    os.close(r)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    supervise(task, cfg, w)
                except BaseException:  # noqa: BLE001
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            os.close(w)
            running[pid] = (task, r, bytearray())
        ready = select.select([v[1] for v in running.values()], [], [], 0.2)[0]
        for pid, (task, r, buf) in list(running.items()):
            if r in ready:
                chunk = os.read(r, 1 << 20)
                buf += chunk
                if chunk:
                    continue
                os.close(r)
                with contextlib.suppress(ChildProcessError):  # reaped already by a clean-up below
                    os.waitpid(pid, 0)
                del running[pid]
                live = {p for p in running}
                for child in _orphans(live):  # left by a supervisor that was killed
                    kill_descendants(child)
                    with contextlib.suppress(OSError):
                        os.kill(child, signal.SIGKILL)
                try:
                    result = json.loads(bytes(buf).decode())
                except ValueError:
                    result = {"error": "the grading process of this notebook died before it finished (run the "
                              "command again to grade it)"}
                print(json.dumps({"id": task["id"], **result}), flush=True)
    shutil.rmtree(tempfile.tempdir, ignore_errors=True)
    return 0


def _orphans(live: set[int]) -> list[int]:
    from .sandbox import _children

    return [p for p, _ in _children().get(os.getpid(), []) if p not in live]


if __name__ == "__main__":
    sys.exit(main())
