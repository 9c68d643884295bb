"""benchmarks/gpu_check.py: refuses full sizes without a GPU, runs its own code on a CPU at toy sizes
(``--device cpu --tiny``), leaves every finished section on disk, survives failing and slow sections."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def tiny(out, *extra):
    return [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny", "--out", str(out), *extra]


def test_tiny_check_on_cpu_writes_both_reports(tmp_path):
    proc = subprocess.run(tiny(tmp_path), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for key in ("train:", "max_batch:", "resume:", "slide:", "data:", "chapters:"):  # one line per section
        assert sum(line.startswith(key) for line in proc.stdout.splitlines()) == 1, proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] and report["scale"] == "tiny" and report["provenance"]["amp_auto"] is None
    assert report["provenance"]["torch"] == torch.__version__ and report["provenance"]["commit"]
    rows = {r["config"]: r for r in report["train"]["result"]["rows"]}
    colab = rows["Colab recipe, amp=auto"]  # the Colab recipe's own settings, through the Trainer
    assert colab["micro_batch"] == 4 and colab["accum"] == 2 and colab["checkpointing"] and colab["finite"]
    assert colab["images_per_s"] > 0 and colab["estimate_gib"] > 0
    assert rows["paper recipe per GPU, amp=auto"]["micro_batch"] == 2
    assert "needs a CUDA GPU" in rows["Colab recipe, fp16 + GradScaler"]["note"]
    resume = report["resume"]["result"]
    assert resume["bitwise_equal"] and resume["max_abs_weight_diff"] == 0.0  # exact on a CPU
    assert set(report["slide"]["result"]) == {"64", "96"}
    assert report["data"]["result"]["samples"] > 0
    assert all(c["ok"] for c in report["chapters"]["result"].values()), report["chapters"]
    md = (tmp_path / "gpu_check.md").read_text()
    assert md.index("## Provenance") < md.index("## Training")
    for title in gpu_check.TITLES.values():
        if "Notebooks" not in title:
            assert f"## {title}" in md
    assert "{" not in md  # every section a table, no raw JSON


@no_gpu
def test_full_sizes_without_a_gpu_are_refused_at_once(tmp_path):
    for args in ([], ["--device", "cuda"], ["--device", "cuda", "--tiny"]):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path), *args], cwd=ROOT,
                              env=ENV, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.strip() == (f"no GPU visible to torch (torch {torch.__version__}, CUDA build "
                                       f"{torch.version.cuda}); use --device cpu --tiny for a dry run")
        assert time.perf_counter() - t0 < 60 and not (tmp_path / "gpu_check.json").exists()


def test_a_kill_mid_run_leaves_the_finished_sections_on_disk(tmp_path):
    proc = subprocess.Popen(tiny(tmp_path, "--sections", "resume", "chapters"), cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    report, deadline = {}, time.time() + 600
    while "resume" not in report and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            report = json.loads((tmp_path / "gpu_check.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["resume"]["ok"] and report["status"] == "running", report.get("status")
    md = (tmp_path / "gpu_check.md").read_text()
    assert "## Interrupt and resume" in md and "bitwise_equal" in md and "## Provenance" in md


def test_a_failing_chapters_section_still_writes_both_files(tmp_path, monkeypatch, capsys):
    def broken(dev, work):
        raise RuntimeError("could not set up the chapters")

    monkeypatch.setattr(gpu_check, "check_chapters", broken)
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--sections", "chapters"]) == 1
    md = (tmp_path / "gpu_check.md").read_text()
    assert "FAILED: RuntimeError: could not set up the chapters" in md
    assert not json.loads((tmp_path / "gpu_check.json").read_text())["ok"]
    assert "chapters: FAILED" in capsys.readouterr().out


def test_a_failing_or_slow_section_is_recorded_not_fatal():
    def boom():
        raise RuntimeError("CUDA error: out of memory")

    sec = gpu_check.run_section(boom)
    assert not sec["ok"] and "out of memory" in sec["error"] and "boom" in sec["traceback"]
    slow = gpu_check.run_section(lambda: time.sleep(30), budget=0.5)
    assert not slow["ok"] and "time budget" in slow["error"] and slow["seconds"] < 5
    ok = gpu_check.run_section(lambda: 3, budget=10)
    assert ok["ok"] and ok["result"] == 3 and ok["seconds"] >= 0
    assert gpu_check.best_train_speed(dict(ok=True, result=dict(rows=[
        dict(images_per_s=2.0), dict(note="OOM"), dict(images_per_s=5.0)]))) == 5.0
    assert gpu_check.best_train_speed(sec) is None


@pytest.mark.parametrize("limit, start", [(5, 3), (5, 9), (5, 5), (0, 4), (7, 1)])
def test_largest_batch_is_found_by_trying_from_the_estimate(limit, start):
    tried = []

    def step_fits(b):
        tried.append(b)
        return b <= limit

    found, log = gpu_check.largest_batch(step_fits, start)
    assert found == limit and [b for b, _ in log] == tried and tried[0] == start
    expected = limit - start + 2 if start <= limit else start - max(limit, 1) + 1  # one past the edge, each once
    assert len(tried) == len(set(tried)) == expected
