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
