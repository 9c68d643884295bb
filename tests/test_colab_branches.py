"""Every notebook runs as on Colab, from an empty folder, under the ci profile, with a stand-in ``google.colab``;
and the generated setup cell does the right thing there.

Colab opens a notebook alone (from GitHub): no repository around it, only what the setup cell installs. So each of
the 28 notebooks (16 chapters, 6 instructor and 6 student assignments) is executed in its own kernel whose working
folder is a new empty temporary folder and whose ``setr_edu`` is the project's *wheel* (built from pyproject.toml,
unpacked into a site folder first on the kernel's path): a notebook that reads a repository file, or package data
the wheel lacks, fails here. The stand-in ``google.colab`` is a namespace package on the kernel's ``PYTHONPATH``
imported by an IPython startup file, so ``"google.colab" in sys.modules`` holds from the first cell, as on Colab
(the setup cell takes its Colab branch: a setr-edu installed from a wheel is kept, no network). ``drive.mount``
makes the mount point a symbolic link to a temporary folder (the reader's "Drive") and records the call;
``output.enable_custom_widget_manager()`` does nothing. Chapter 12 also runs with a small fake ADE20K zip on
"Drive" (it must unpack it to local disk, train the Colab recipe at toy scale into Drive and draw the curves).

Cost. Running all 28 this way executes every notebook a second time (nbval already runs them under ci): the whole
file took 200 s on an idle 2-core machine, but 540 s (28 notebooks) to 2,900 s on loaded ones, too much for CI's
budget. So CI gets the same guarantee in pieces:
nbval itself runs every notebook from a new empty folder (book/conftest.py), the wheel must carry every data file
of the package, nothing but the setup cell and chapter 12 may branch on Colab (checked below), the setup cell's
Colab branch is tested with a fake pip and git, and chapters 12 and 16 run here in full. ``SETR_EDU_COLAB_ALL=1``
runs all 28 notebooks here (before a release).
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
STARTUP = "import google.colab  # on Colab it is imported before the first cell\n"
# The fake zip is not the real ADE20K, so its md5 check is switched off there (tested in tests/test_data*.py).
NO_MD5 = "import setr_edu.data.download as _download\n_download.verify = lambda *args, **kwargs: None\n"

CHAPTERS = sorted(BOOK.glob("ch*.ipynb"))
INSTRUCTOR = sorted((BOOK / "assignments").glob("a*.ipynb"))
STUDENT = sorted((BOOK / "assignments" / "student").glob("a*.ipynb"))
NOTEBOOKS = CHAPTERS + INSTRUCTOR + STUDENT
ALWAYS = ("ch12_gpu_training", "ch16_released_weights")  # run here in every test run (the others: see above)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A site folder holding exactly what ``pip install setr-edu`` installs: the project's wheel, unpacked."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy, so that building writes nothing into the repository
    shutil.copytree(ROOT / "setr_edu", src / "setr_edu", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True,
                   env={**env, "PIP_CONFIG_FILE": os.devnull})
    site = tmp / "site"
    with zipfile.ZipFile(next((tmp / "dist").glob("setr_edu-*.whl"))) as z:
        z.extractall(site)
    return site


def test_the_wheel_carries_every_file_of_the_package(installed):
    """Package data included (pyproject's [tool.setuptools.package-data]): chapter 16's stand-in checkpoints..."""
    names = {p.name for p in (installed / "setr_edu" / "convert" / "official_setr").iterdir()}
    assert {f"{v}{s}" for v in ("naive", "pup", "mla", "pup_deit") for s in (".pth", "_io.pt")} <= names
    tracked = subprocess.run(["git", "ls-files", "setr_edu"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    missing = [f for f in tracked if not (installed / f).is_file()]
    assert not missing, f"pip install setr-edu would not install {missing}: add them to package-data"


def test_only_the_setup_cell_and_chapter_12_branch_on_colab():
    """So the nbval pass (no google.colab) and the Colab runs below cover what a Colab user runs."""
    found = [f for f in (ROOT / "setr_edu").rglob("*.py") if "google.colab" in f.read_text()]
    for path in NOTEBOOKS:
        code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"][1:]
        found += [path] if any("google.colab" in s or "IN_COLAB" in s for s in code) else []
    assert found == [BOOK / "ch12_gpu_training.ipynb"], f"{found}: run them in the Colab tests here too"


@pytest.fixture
def colab(tmp_path, installed):
    """Environment for a kernel that believes it runs on Colab, with only the installed package; yields it (the
    fake Drive folder is ``env["SETR_EDU_FAKE_DRIVE"]``)."""
    if CONTENT.exists():
        pytest.skip(f"{CONTENT} exists on this machine (a real Colab?); the fake Drive would clash with it")
    stub = tmp_path / "stub"
    for rel, text in STUB.items():
        (stub / rel).parent.mkdir(parents=True, exist_ok=True)
        (stub / rel).write_text(text)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(STARTUP)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SETR_EDU_PROFILE")}
    env.update(PYTHONPATH=os.pathsep.join([str(stub), str(installed)]), IPYTHONDIR=str(tmp_path / "ipython"),
               SETR_EDU_FAKE_DRIVE=str(tmp_path / "drive"), SETR_EDU_PROFILE="ci", MPLBACKEND="Agg")
    try:
        yield env
    finally:
        shutil.rmtree(CONTENT, ignore_errors=True)


WHERE = "import setr_edu, os; print('SETR_EDU_FROM', setr_edu.__file__, 'CWD', os.getcwd())"


def run(path: Path, workdir: Path, env: dict, allow_errors: bool = False) -> tuple[str, list[str]]:
    """Execute a copy of the notebook in ``workdir`` (created empty); return its text output and error names.

    A last cell prints where ``setr_edu`` came from and the working folder (the caller checks both)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(WHERE))
    workdir.mkdir(parents=True)
    NotebookClient(nb, timeout=1800, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(workdir)}}).execute(env=env)
    texts, errors = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or "".join(out.get("data", {}).get("text/plain", "")))
            if out.get("output_type") == "error":
                errors.append(out["ename"])
    return "\n".join(texts), errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(BOOK).with_suffix("").as_posix())
def test_every_notebook_runs_on_colab_from_an_empty_folder(colab, tmp_path, path):
    if path.stem not in ALWAYS and not os.environ.get("SETR_EDU_COLAB_ALL"):
        pytest.skip("nbval runs it from an empty folder; SETR_EDU_COLAB_ALL=1 runs it here too")
    student = path in STUDENT
    text, errors = run(path, tmp_path / "work", colab, allow_errors=student)
    if student:  # stops only where the student has to write code
        assert errors and set(errors) == {"NotImplementedError"}, errors
    where = text.split("SETR_EDU_FROM ")[-1].split()
    assert Path(where[0]).is_relative_to(colab["PYTHONPATH"].split(os.pathsep)[1]), where  # the installed wheel
    assert Path(where[2]) == tmp_path / "work"
    drive = Path(colab["SETR_EDU_FAKE_DRIVE"])
    mounts = (drive / "mounts.jsonl").read_text().split() if (drive / "mounts.jsonl").exists() else []
    if path.stem.startswith("ch12"):  # mounts Drive, finds no dataset, says what to run and skips
        assert mounts == [json.dumps("/content/drive")]
        assert "No ADE20K in /content/data/ade20k: skipped" in text
        assert "python -m setr_edu data ade20k --root /content/data/ade20k --archive " \
               "/content/drive/MyDrive/setr-edu/ADEChallengeData2016.zip" in text
    else:
        assert mounts == []


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


def test_ch12_on_colab_with_the_zip_on_drive_trains_into_drive(colab, tmp_path):
    (Path(colab["IPYTHONDIR"]) / "profile_default" / "startup" / "01-no-md5.py").write_text(NO_MD5)
    store = Path(colab["SETR_EDU_FAKE_DRIVE"]) / "MyDrive" / "setr-edu"
    store.mkdir(parents=True)
    fake_ade20k_zip(store / "ADEChallengeData2016.zip")
    text, _ = run(BOOK / "ch12_gpu_training.ipynb", tmp_path / "work", colab)
    assert "reusing /content/drive/MyDrive/setr-edu/ADEChallengeData2016.zip" in text
    assert (CONTENT / "data" / "ade20k" / "ADEChallengeData2016" / "images" / "validation").is_dir()
    run_dir = store / "ade20k_pup_colab"  # checkpoints and log on Drive
    assert (run_dir / "last.pt").is_file() and (run_dir / "log.jsonl").is_file()
    lines = [json.loads(s) for s in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("val_mIoU" in ln for ln in lines) and max(ln["iter"] for ln in lines) == 4


# --- the generated setup cell on Colab (sync_notebooks.setup_source) ----------------------------------------------
# Runs the setup cell (argv[1]) with the site folder argv[3] first on sys.path. The site holds an already imported
# package "fakepkg", a light stand-in for the setr_edu package and, unless the scenario says "fresh", setr-edu's
# metadata installed from git at commit OLD (or from a wheel: "wheel"). A fake `git ls-remote` answers NEW (or
# fails: "offline"); a fake pip installs setr-edu at the commit it is given (and, for "bumps", a new fakepkg; for
# "pipfails", nothing).
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
