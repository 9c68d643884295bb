"""The declared timm floor is true: at exactly that release (installed from PyPI into a throwaway venv that shares
this machine's torch) the code paths that need a recent timm run, and the release just below fails.

What needs the floor (found by installing every timm 1.0.x from 1.0.3 up): building timm's ViT on the ``meta``
device (chapter 3 counts parameters that way) raises ``Tensor.item() cannot be called on meta tensors`` up to
1.0.20 and works from 1.0.21. The probe also runs the mixed-precision paths against timm's model
(``perf.bench_encoder`` with bf16 autocast, meta-device FLOP counts, ``forward_intermediates``) and the
``torch.amp.GradScaler(device)`` the Trainer builds. Skipped where PyPI cannot be reached.

The torch floor (2.6) was measured the same way, but a torch wheel is ~900 MB (plus ~2.5 GB of CUDA libraries
for PyPI's build), so that probe runs only on interpreters named in ``SETR_EDU_TORCH_FLOOR_PYTHONS``
(comma-separated). What needs 2.6: ``setr_edu.io`` names the checkpoint globals it allows as ``(object, name)``
pairs, which ``torch.serialization.safe_globals`` accepts from 2.6 (2.5.1: ``AttributeError: 'tuple' object has
no attribute '__module__'``, so an mmcv checkpoint with numpy values in its meta is reported unreadable), and
names a refused global with ``torch.serialization.get_unsafe_globals_in_checkpoint`` (new in 2.6; with 2.5.1 a
planted ``os.system`` is still refused, but as "not a pickle of tensors ... download it again"). Measured
2026-12-07: torch 2.5.1 fails 18 of tests/test_hostile_files.py's 25 tests and this probe; 2.6.0 passes both. To
repeat (Linux, PyPI)::

    python -m venv --system-site-packages /tmp/venv-torch25
    /tmp/venv-torch25/bin/pip install --no-deps torch==2.5.1 torchvision==0.20.1
    # PyPI's torch 2.5/2.6 also needs its nvidia-*-cu12 wheels (the Requires-Dist of the torch wheel)
    SETR_EDU_TORCH_FLOOR_PYTHONS=/tmp/venv-torch25/bin/python,/tmp/venv-torch26/bin/python \
        pytest tests/test_dependency_floors.py -k torch
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BELOW_FLOOR = "1.0.20"  # the last release whose meta-device ViT fails (1.0.19 too)
NO_NETWORK = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
              "ProxyError", "Max retries exceeded", "Could not fetch URL", "ConnectTimeout", "ReadTimeout")

PROBE = textwrap.dedent('''\
    import sys
    import timm
    import torch

    print("timm", timm.__version__)
    try:  # chapter 3, cell "parameters of timm's ViT": shapes only, on the meta device
        with torch.device("meta"):
            timm.create_model("vit_base_patch16_384", pretrained=False)
        print("meta ok")
    except RuntimeError as e:
        print("meta failed:", e)
    if sys.argv[1:] == ["meta-only"]:
        sys.exit(0)
    from setr_edu.perf.bench import bench_encoder

    r = bench_encoder("tiny", img_size=32, batch_size=1, repeats=1, warmup=0, device="cpu", amp="bf16", depth=2)
    assert r["max_abs_diff"] < 1e-3 and r["flops_per_image"]["forward"] > 0, r
    scaler = torch.amp.GradScaler("cuda", enabled=False)  # what the Trainer builds (fp16 only on CUDA)
    assert not scaler.is_enabled()
    print("amp ok")
    ''')


def declared_floor(package: str) -> str:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if Requirement(d).name == package)
    floors = [s.version for s in req.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{req}: declare one lower bound (>=)"
    return floors[0]


def timm_floor() -> str:
    return declared_floor("timm")


def venv_with_timm(tmp: Path, version: str) -> Path:
    """A venv sharing this interpreter's packages (torch is not downloaded) with timm==version from PyPI."""
    venv = tmp / f"venv-{version}"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_DEFAULT_TIMEOUT="20")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--ignore-installed", f"timm=={version}"], env=env, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        if any(s in r.stderr for s in NO_NETWORK):
            pytest.skip(f"PyPI unreachable: cannot install timm=={version}")
        raise AssertionError(f"pip could not install timm=={version}:\n{r.stderr[-2000:]}")
    return py


def probe(py: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONNOUSERSITE="1")
    r = subprocess.run([str(py), "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    return r.stdout


def test_the_timm_floor_runs_the_meta_device_and_amp_paths(tmp_path):
    floor = timm_floor()
    out = probe(venv_with_timm(tmp_path, floor))
    assert f"timm {floor}\n" in out  # the venv's own timm, not this machine's
    assert "meta ok" in out and "amp ok" in out, out


def test_the_release_below_the_floor_fails_there(tmp_path):
    """The floor is the lowest: one release down, the meta-device ViT breaks (so the probe can fail)."""
    assert Version(BELOW_FLOOR) < Version(timm_floor())
    out = probe(venv_with_timm(tmp_path, BELOW_FLOOR), "meta-only")
    assert f"timm {BELOW_FLOOR}\n" in out
    assert "meta failed: Tensor.item() cannot be called on meta tensors" in out, out


TORCH_PROBE = textwrap.dedent('''\
    import os, sys, tempfile
    import numpy as np
    import torch
    from setr_edu.convert import read_checkpoint
    from setr_edu.io import UnsafeCheckpointError, load_checkpoint_file

    print("torch", torch.__version__.split("+")[0])
    d = tempfile.mkdtemp()
    mmcv = os.path.join(d, "mmcv.pth")  # an mmcv-style checkpoint: numpy values in its meta
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"iter": np.int64(5), "lr": np.float64(0.01)}}, mmcv)
    try:
        state, meta = read_checkpoint(mmcv)
        print("mmcv ok" if meta["iter"] == 5 else "mmcv wrong")
    except Exception as e:
        print("mmcv failed:", str(e)[:200])

    class Gadget:
        def __reduce__(self):
            return os.system, ("touch " + os.path.join(d, "ran"),)

    evil = os.path.join(d, "evil.pth")
    torch.save({"w": torch.ones(1), "x": Gadget()}, evil)
    try:
        load_checkpoint_file(evil)
        print("evil loaded")
    except UnsafeCheckpointError as e:
        print("evil refused:", str(e)[:200])
    except Exception as e:
        print("evil unnamed:", type(e).__name__, str(e)[:200])
    print("ran" if os.path.exists(os.path.join(d, "ran")) else "nothing ran")
    ''')


def torch_pythons() -> list[str]:
    pythons = [p for p in os.environ.get("SETR_EDU_TORCH_FLOOR_PYTHONS", "").split(",") if p.strip()]
    if not pythons:
        pytest.skip("set SETR_EDU_TORCH_FLOOR_PYTHONS to interpreters with other torch releases (see the docstring)")
    return pythons


def test_torch_at_or_above_the_floor_reads_and_refuses_checkpoints_and_below_it_does_not():
    floor = Version(declared_floor("torch"))
    for py in torch_pythons():
        r = subprocess.run([py, "-c", TORCH_PROBE], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        out = r.stdout
        version = Version(out.split("\n")[0].split()[1])
        assert "nothing ran" in out, f"torch {version}: a planted os.system ran\n{out}"  # never, at any release
        works = "mmcv ok" in out and "evil refused: " in out and "asks to call posix.system" in out
        assert works == (version >= floor), f"torch {version}, declared floor {floor}:\n{out}"
