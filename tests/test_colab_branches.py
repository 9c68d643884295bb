"""Every notebook with a Colab branch runs it here, under the ci profile, with a stand-in ``google.colab``.

The stand-in is a namespace package put on the kernel's ``PYTHONPATH`` and imported by an IPython startup file, so
``"google.colab" in sys.modules`` holds from the first cell, as on Colab. ``drive.mount(mountpoint)`` makes the
mount point a symbolic link to a temporary folder (the reader's "Drive") and records the call;
``output.enable_custom_widget_manager()`` does nothing. Chapter 12 is run twice: without a dataset (it must say
what to run and skip) and with a small fake ADE20K zip on "Drive" (it must unpack it to local disk, train the
Colab recipe at toy scale into Drive and draw the curves).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
sys.path.insert(0, str(BOOK / "_scripts"))
from sync_notebooks import repository, setup_source  # noqa: E402

CONTENT = Path("/content")  # where Colab mounts Drive and keeps local data

STUB = {
    "google/colab/__init__.py": '"""Test stand-in for Colab\'s google.colab."""\nfrom . import drive, output\n',
    "google/colab/output.py": "def enable_custom_widget_manager():\n    pass\n",
    "google/colab/drive.py": textwrap.dedent('''\
        import json
        import os
        from pathlib import Path


        def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
            """'Mount' the folder $SETR_EDU_FAKE_DRIVE at mountpoint (a symbolic link) and record the call."""
            drive, mp = Path(os.environ["SETR_EDU_FAKE_DRIVE"]), Path(mountpoint)
            (drive / "MyDrive").mkdir(parents=True, exist_ok=True)
            mp.parent.mkdir(parents=True, exist_ok=True)
            if mp.is_symlink():
                mp.unlink()
            mp.symlink_to(drive, target_is_directory=True)
            with open(drive / "mounts.jsonl", "a") as f:
                f.write(json.dumps(str(mountpoint)) + "\\n")
            print(f"Mounted at {mountpoint}")
        '''),
}
# IPython startup: Colab has google.colab imported before the first cell. The fake zip is not the real ADE20K,
# so its md5 check is switched off here (the real check is tested in tests/test_data*.py).
STARTUP = textwrap.dedent('''\
    import google.colab
    import setr_edu.data.download as _download
    _download.verify = lambda *args, **kwargs: None
    ''')


def colab_notebooks() -> list[Path]:
    """Notebooks with a Colab branch besides the generated setup cell."""
    found = []
    for path in sorted(BOOK.glob("ch*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"][1:]  # [0] is the generated setup cell
        if any("google.colab" in s or "IN_COLAB" in s for s in code):
            found.append(path)
    return found


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """Environment for a kernel that believes it runs on Colab; yields the fake Drive folder."""
    if CONTENT.exists():
        pytest.skip(f"{CONTENT} exists on this machine (a real Colab?); the fake Drive would clash with it")
    stub = tmp_path / "stub"
    for rel, text in STUB.items():
        (stub / rel).parent.mkdir(parents=True, exist_ok=True)
        (stub / rel).write_text(text)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(STARTUP)
    drive = tmp_path / "drive"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(stub), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("SETR_EDU_FAKE_DRIVE", str(drive))
    monkeypatch.setenv("SETR_EDU_PROFILE", "ci")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        yield drive
    finally:
        shutil.rmtree(CONTENT, ignore_errors=True)


def run(path: Path, workdir: Path) -> str:
    """Execute a copy of the notebook in ``workdir``; return all its text output."""
    nb = nbformat.read(path, as_version=4)
    workdir.mkdir(parents=True, exist_ok=True)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or "".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def fake_ade20k_zip(dest: Path, size=(64, 80)) -> None:
    """A 4 + 2 image ADEChallengeData2016.zip with the real layout (values 0-150, 0 = other)."""
    rng = np.random.default_rng(0)
    h, w = size
    with zipfile.ZipFile(dest, "w") as z:
        for split, n in (("training", 4), ("validation", 2)):
            for i in range(n):
                stem = f"ADE_{'train' if split == 'training' else 'val'}_{i + 1:08d}"
                for kind, array, ext in (("images", rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "jpg"),
                                         ("annotations", rng.integers(0, 151, (h, w), dtype=np.uint8), "png")):
                    tmp = dest.parent / f"tmp.{ext}"
                    Image.fromarray(array).save(tmp)
                    z.write(tmp, f"ADEChallengeData2016/{kind}/{split}/{stem}.{ext}")
                    tmp.unlink()


def test_the_notebooks_with_a_colab_branch_are_found():
    assert BOOK / "ch12_gpu_training.ipynb" in colab_notebooks()


@pytest.mark.parametrize("path", colab_notebooks(), ids=lambda p: p.stem)
def test_colab_branch_without_a_dataset(colab, tmp_path, path):
    text = run(path, tmp_path / "work")
    mounts = (colab / "mounts.jsonl").read_text().split() if (colab / "mounts.jsonl").exists() else []
    if path.stem.startswith("ch12"):
        assert mounts == [json.dumps("/content/drive")]
        assert "No ADE20K in /content/data/ade20k: skipped" in text
        assert "python -m setr_edu data ade20k --root /content/data/ade20k --archive " \
               "/content/drive/MyDrive/setr-edu/ADEChallengeData2016.zip" in text


def test_ch12_on_colab_with_the_zip_on_drive_trains_into_drive(colab, tmp_path):
    store = colab / "MyDrive" / "setr-edu"
    store.mkdir(parents=True)
    fake_ade20k_zip(store / "ADEChallengeData2016.zip")
    text = run(BOOK / "ch12_gpu_training.ipynb", tmp_path / "work")
    assert "reusing /content/drive/MyDrive/setr-edu/ADEChallengeData2016.zip" in text
    assert (CONTENT / "data" / "ade20k" / "ADEChallengeData2016" / "images" / "validation").is_dir()
    run_dir = store / "ade20k_pup_colab"  # checkpoints and log on Drive
    assert (run_dir / "last.pt").is_file() and (run_dir / "log.jsonl").is_file()
    lines = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("val_mIoU" in ln for ln in lines) and max(ln["iter"] for ln in lines) == 4


# --- the generated setup cell on Colab (sync_notebooks.setup_source) ----------------------------------------------
# Runs the setup cell (argv[1]) with the site folder argv[3] first on sys.path. The site holds an already imported
# package "fakepkg" and, unless the scenario says "fresh", setr-edu's metadata installed from git at commit OLD
# (or from a wheel: "wheel"), and a light stand-in for the setr_edu package. A fake `git ls-remote` answers NEW (or fails: "offline"); a fake pip installs
# setr-edu at the commit it is given (and, for "bumps", a new fakepkg; for "pipfails", nothing).
SETUP_HARNESS = """
import json, pathlib, subprocess, sys, types
cell, scenario, site = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
sys.path.insert(0, str(site))
import importlib.metadata as md
_discover = md.Distribution.discover  # only the site folder's distributions (not this machine's setr-edu)

def distribution(name):
    for d in _discover(name=name, path=[str(site)]):
        return d
    raise md.PackageNotFoundError(name)

md.distribution, md.distributions = distribution, lambda **kw: _discover(path=[str(site)], **kw)
import fakepkg
output = types.SimpleNamespace(enable_custom_widget_manager=lambda: print("widget manager on"))
sys.modules["google"] = types.ModuleType("google")
sys.modules["google.colab"] = types.SimpleNamespace(output=output)

def fake_run(cmd, **kw):
    if cmd[0] == "git":
        print("GIT", *cmd[1:])
        if "offline" in scenario:
            return subprocess.CompletedProcess(cmd, 128, "", "fatal: unable to access")
        return subprocess.CompletedProcess(cmd, 0, "NEW\\trefs/heads/" + cmd[-1] + "\\n", "")
    print("PIP", *cmd[1:])
    if "pipfails" in scenario:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: could not build wheels")
    info = site / "setr_edu-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\\nName: setr-edu\\nVersion: 0.1.0\\n")
    (info / "top_level.txt").write_text("setr_edu\\n")
    commit = cmd[-1].rsplit("@", 1)[1]
    (info / "direct_url.json").write_text(json.dumps({"url": "x", "vcs_info": {"vcs": "git", "commit_id": commit}}))
    if "bumps" in scenario:
        meta = site / "fakepkg-1.0.dist-info" / "METADATA"
        meta.write_text(meta.read_text().replace("1.0", "2.0"))
    return subprocess.CompletedProcess(cmd, 0, "", "")

subprocess.run = fake_run
exec(compile(open(cell).read(), "<setup cell>", "exec"), {})
"""


def run_setup(tmp_path, scenario: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    dists = [("fakepkg", "fakepkg", None)]
    if "fresh" not in scenario:
        dists.append(("setr-edu", "setr_edu", None if "wheel" in scenario else "OLD"))
    for name, top, commit in dists:
        info = site / f"{name.replace('-', '_')}-{'1.0' if top == 'fakepkg' else '0.1.0'}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {info.stem.split('-')[1]}\n")
        (info / "top_level.txt").write_text(top + "\n")
        if commit:
            (info / "direct_url.json").write_text(json.dumps({"url": "x", "vcs_info": {"commit_id": commit}}))
    (site / "fakepkg").mkdir()
    (site / "fakepkg" / "__init__.py").write_text("")
    (site / "setr_edu").mkdir()  # a light stand-in for the package (importing the real one takes seconds)
    (site / "setr_edu" / "__init__.py").write_text("import types\nseed_everything = lambda seed: None\n"
                                                   "get_profile = lambda: types.SimpleNamespace(name='ci')\n")
    if "imported" in scenario:  # setr_edu itself already imported in this session (the cell was run before)
        (site / "fakepkg" / "__init__.py").write_text("import setr_edu\n")
    (tmp_path / "cell.py").write_text(setup_source())
    return subprocess.run([sys.executable, "-c", SETUP_HARNESS, str(tmp_path / "cell.py"), scenario, str(site)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "SETR_EDU_PROFILE": "ci", "PYTHONPATH": str(ROOT)})


REPO, BRANCH = repository()
SETR_EDU_SPEC = f"setr-edu @ git+{REPO}@{BRANCH}"
RESTART = "Runtime > Restart session, then run this cell again"


@pytest.mark.parametrize("scenario, git, pip, stops", [
    ("fresh", True, True, None),  # a new runtime: install the branch's newest commit
    ("installed-old", True, True, None),  # an older commit (same version 0.1.0): reinstall, nothing imported changed
    ("installed-old-imported", True, True, "pip updated setr-edu, already imported: " + RESTART),
    ("installed-old-bumps", True, True, "pip updated fakepkg, already imported: " + RESTART),
    ("wheel", False, False, None),  # installed from a wheel or a clone: kept, no network
    ("fresh-offline", True, False, f"Cannot reach {REPO} to install setr-edu. Upload a setr-edu wheel"),
    ("installed-old-offline", True, False, None),  # unreachable, but an install is there: keep it, say so
    ("fresh-pipfails", True, True, f"pip could not install setr-edu @ git+{REPO}@NEW. Upload a setr-edu wheel"),
])
def test_setup_cell_on_colab(tmp_path, scenario, git, pip, stops):
    r = run_setup(tmp_path, scenario)
    assert ("GIT ls-remote " + f"{REPO} {BRANCH}" in r.stdout) == git, r.stdout + r.stderr
    assert (f"PIP -m pip install -q setr-edu @ git+{REPO}@NEW" in r.stdout) == pip, r.stdout
    assert "CalledProcessError" not in r.stderr
    if stops:  # SystemExit: Jupyter/Colab stop "Run all" at this cell and show the message, no traceback
        assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(stops), r.stderr
        assert "profile:" not in r.stdout and "widget manager on" not in r.stdout
        if "Upload" in stops:
            assert "pip wheel --no-deps" in r.stderr and "%pip install -e ./setr-edu" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "widget manager on" in r.stdout and r.stdout.strip().endswith("profile: ci")
    if scenario == "installed-old-offline":
        assert f"Cannot reach {REPO}: keeping setr-edu OLD" in r.stdout


def test_setup_cell_skips_pip_when_the_newest_commit_is_installed(tmp_path):
    (tmp_path / "x").mkdir()
    r = run_setup(tmp_path / "x", "installed-old")  # installs NEW ...
    assert r.returncode == 0 and "PIP" in r.stdout
    site = tmp_path / "x" / "site"
    cell = tmp_path / "x" / "cell.py"
    again = subprocess.run([sys.executable, "-c", SETUP_HARNESS, str(cell), "again", str(site)], capture_output=True,
                           text=True, cwd=ROOT, env={**os.environ, "SETR_EDU_PROFILE": "ci", "PYTHONPATH": str(ROOT)})
    assert again.returncode == 0 and "GIT" in again.stdout and "PIP" not in again.stdout, again.stdout  # ... once


def test_setup_cell_outside_colab_never_installs(tmp_path):
    env = {**os.environ, "SETR_EDU_PROFILE": "ci", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", setup_source()], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "profile: ci", r.stdout + r.stderr
    hidden = subprocess.run([sys.executable, "-c", "import sys; sys.modules['setr_edu'] = None\n" + setup_source()],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    last = hidden.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: setr_edu is missing: ") and f'pip install "{SETR_EDU_SPEC}"' in last
    assert "requirements.txt" in last


def test_setup_cell_lines_fit_88_columns():
    assert max(len(ln) for ln in setup_source().splitlines()) <= 88
