"""benchmarks/gpu_check.py: the GPU acceptance check runs its own code on a CPU at toy sizes (``--device cpu --tiny``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_tiny_check_on_cpu_writes_both_reports(tmp_path):
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] and report["scale"] == "tiny" and report["environment"]["amp_auto"] is None
    variants = report["train"]["result"]["variants"]
    assert set(variants) == {"bf16", "bf16+ckpt", "fp16+GradScaler"}
    for row in variants.values():
        assert row["finite"] and row["images_per_s"] > 0 and row["estimated_memory_gib"] > 0
    assert variants["bf16+ckpt"]["estimated_memory_gib"] < variants["bf16"]["estimated_memory_gib"]
    resume = report["resume"]["result"]
    assert resume["bitwise_equal"] and resume["max_abs_weight_diff"] == 0.0  # exact on a CPU
    assert set(report["slide"]["result"]) == {"64", "96"}
    data = report["data"]["result"]
    assert data["samples"] > 0 and data["keeps_up"] in (True, False)
    assert all(c["ok"] for c in report["chapters"]["result"].values()), report["chapters"]
    assert report["seconds"] < 120  # about 30 s on an idle 2-core machine
    md = (tmp_path / "gpu_check.md").read_text()
    for title in ("## Training", "## Interrupt and resume", "## Sliding-window inference", "## Data pipeline",
                  "## Chapters"):
        assert title in md


def test_a_failing_section_is_recorded_not_fatal():
    def boom():
        raise RuntimeError("CUDA error: out of memory")

    sec = gpu_check.run_section(boom)
    assert not sec["ok"] and "out of memory" in sec["error"] and "boom" in sec["traceback"]
    ok = gpu_check.run_section(lambda: 3)
    assert ok["ok"] and ok["result"] == 3 and ok["seconds"] >= 0
    assert gpu_check.best_train_speed(dict(ok=True, result=dict(variants={
        "a": dict(images_per_s=2.0), "b": dict(error="OOM"), "c": dict(images_per_s=5.0)}))) == 5.0
    assert gpu_check.best_train_speed(sec) is None


def test_cuda_without_a_gpu_is_refused_with_advice(capsys):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cuda", "--out", "/tmp/unused"])
    assert "--device cpu --tiny" in capsys.readouterr().err
