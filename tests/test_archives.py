"""Hostile and interrupted archives (issue 21, issue 20 item 4): every refusal is one line, nothing the user had is
deleted, nothing half-done is left in the target, and an interrupted unpack resumes per member (Cityscapes: per
archive, then per member)."""
import hashlib
import importlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from data_helpers import cityscapes_zips

from setr_edu.cli import main
from setr_edu.data import archives
from setr_edu.data import download as dl

prep = importlib.import_module("setr_edu.data.prepare")  # the module (setr_edu.data.prepare is also a function)

BOOK = Path(__file__).resolve().parents[1] / "book"


def _tar_with(path: Path, kind: str) -> Path:
    """A tar holding one ordinary file and one entry of ``kind`` (symlink, hardlink, device, fifo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as t:
        data = b"fine"
        info = tarfile.TarInfo("ADEChallengeData2016/ok.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        bad = tarfile.TarInfo("ADEChallengeData2016/bad")
        bad.type = dict(symlink=tarfile.SYMTYPE, hardlink=tarfile.LNKTYPE, device=tarfile.CHRTYPE,
                        fifo=tarfile.FIFOTYPE)[kind]
        bad.linkname = "/etc/passwd" if kind in ("symlink", "hardlink") else ""
        bad.devmajor, bad.devminor = 1, 3
        t.addfile(bad)
    return path


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "fifo"])
def test_tar_links_and_devices_are_refused_in_one_line_and_leave_nothing(tmp_path, kind, capsys):
    drive = _tar_with(tmp_path / "drive" / "ADEChallengeData2016.zip", kind)  # a tar under the zip's name
    root = tmp_path / "ade"
    said = dict(symlink="symbolic link", hardlink="hard link").get(kind, kind)
    with pytest.raises(archives.ArchiveError, match=said):
        archives.extract(drive, root)
    assert list(root.iterdir()) == []  # no .extracting-* folder, no partial top folder
    md5 = hashlib.md5(drive.read_bytes()).hexdigest()
    rc = main(["data", "ade20k", "--root", str(root), "--archive", str(drive), "--md5", md5, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) <= 2
    assert list(root.iterdir()) == []  # the copied zip is gone too
    assert drive.is_file()  # the user's own archive is left alone


def test_a_corrupt_archive_is_one_line_and_leaves_nothing(tmp_path, capsys):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ADEChallengeData2016/a.bin", np.random.default_rng(0).bytes(4000))
    data = bytearray(buf.getvalue())
    data[60:3000] = np.random.default_rng(1).bytes(2940)  # the central directory is intact, the data is not
    pk = tmp_path / "pk.zip"
    pk.write_bytes(b"PK" + np.random.default_rng(2).bytes(5000))  # "PK" + random bytes
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(data))
    for archive in (pk, broken):
        root = tmp_path / f"root_{archive.stem}"
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
        rc = main(["data", "ade20k", "--root", str(root), "--archive", str(archive), "--md5", md5, "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and "Traceback" not in err, err
        assert str(archive) in err or "ADEChallengeData2016.zip" in err
        assert list(root.iterdir()) == [] and archive.is_file()


def test_an_entry_named_like_an_existing_folder_never_deletes_it(tmp_path):
    root = tmp_path / "root"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "mine.txt").write_text("my work")
    (root / "report.txt").write_text("mine")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes/from_zip.txt", b"zip")
    archives.extract(archive, root)
    assert (root / "notes" / "mine.txt").read_text() == "my work"  # merged, not replaced
    assert (root / "notes" / "from_zip.txt").read_bytes() == b"zip"
    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as z:
        z.writestr("notes", b"a file where the user has a folder")
        z.writestr("report.txt/inner.txt", b"a folder where the user has a file")
    with pytest.raises(archives.ArchiveError, match="already"):
        archives.extract(clash, root)
    assert (root / "notes" / "mine.txt").read_text() == "my work" and (root / "report.txt").read_text() == "mine"
    assert sorted(p.name for p in root.iterdir()) == ["notes", "report.txt"]  # no .extracting-* left


def _bomb(path: Path, megabytes: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ADEChallengeData2016/zeros.bin", bytes(megabytes << 20))  # 8 MiB of zeros in ~8 KiB
    return path


def test_a_zip_bomb_is_refused_before_writing_and_can_be_allowed_on_purpose(tmp_path, capsys):
    bomb = _bomb(tmp_path / "drive" / "ADEChallengeData2016.zip")
    assert bomb.stat().st_size < 100_000
    root = tmp_path / "root"
    with pytest.raises(archives.ArchiveError, match="max-unpacked-gb"):
        archives.extract(bomb, root)
    assert list(root.iterdir()) == []
    with pytest.raises(archives.ArchiveError, match="limit"):  # an explicit limit below the declared size
        archives.extract(bomb, root, max_bytes=1 << 20)
    md5 = hashlib.md5(bomb.read_bytes()).hexdigest()
    rc = main(["data", "ade20k", "--root", str(root), "--archive", str(bomb), "--md5", md5, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--max-unpacked-gb" in err and "Traceback" not in err and list(root.iterdir()) == []
    archives.extract(bomb, root, max_bytes=16 << 20)  # the override
    assert (root / "ADEChallengeData2016" / "zeros.bin").stat().st_size == 8 << 20


def test_the_bytes_actually_written_are_counted_too(tmp_path):
    """A member that yields more bytes than its header declared is stopped by the copy itself."""
    budget = archives.UnpackBudget(1 << 20, "a.zip")
    budget.declare(100)  # what the (lying) header says
    with pytest.raises(archives.ArchiveError, match="limit"):
        archives.copy_counted(io.BytesIO(bytes(3 << 20)), tmp_path / "out.bin", budget)
    assert (tmp_path / "out.bin").stat().st_size <= (1 << 20) + archives.CHUNK


# ---------------------------------------------------------------- one Drive layout (issue 20 item 4)
def test_the_drive_archive_path_is_the_one_ch12_uses():
    nb = json.loads((BOOK / "ch12_gpu_training.ipynb").read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"])
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert dl.COLAB_ARCHIVE == f"{dl.COLAB_DRIVE_DIR}/{dl.ADE20K_ZIP.filename}"
    assert dl.COLAB_ARCHIVE in source  # the command ch12 prints in its text
    assert f'"{dl.COLAB_DRIVE_DIR}"' in code and f'"{dl.ADE20K_ZIP.filename}"' in code  # where ch12 looks
    assert f"--archive {dl.COLAB_ARCHIVE}" in dl.instructions("ade20k")  # what the library prints
    library = Path(dl.__file__).resolve().parents[1]
    literal = [p for p in library.rglob("*.py") if "MyDrive" in p.read_text()]
    assert literal == [Path(dl.__file__).resolve()]  # the constant is the only place the path is written
    assert Path(dl.__file__).read_text().count("MyDrive") == 1


# ---------------------------------------------------------------- Cityscapes resumes per archive
def test_an_interrupted_cityscapes_unpack_resumes_with_the_unfinished_archive(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cs"
    cityscapes_zips(root, labels="labelIds")
    real_extract, calls = archives.extract, []

    def cut_at_gtfine(archive, dest, *a, **k):
        calls.append(Path(archive).name)
        if "gtFine" in Path(archive).name:  # Colab disconnects while gtFine is being unpacked
            (Path(dest) / f".extracting-{Path(archive).name}" / "gtFine").mkdir(parents=True)
            raise KeyboardInterrupt
        return real_extract(archive, dest, *a, **k)

    monkeypatch.setattr(prep, "extract", cut_at_gtfine)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare("cityscapes", root, log=lambda *_: None)
    assert (root / "leftImg8bit").is_dir() and not (root / "gtFine").exists()
    monkeypatch.setattr(prep, "extract", lambda archive, dest, *a, **k: (calls.append(Path(archive).name),
                                                                          real_extract(archive, dest, *a, **k))[1])
    assert main(["data", "cityscapes", "--root", str(root)]) == 0  # the same command again resumes
    assert "1 training and 1 validation images" in capsys.readouterr().out
    assert calls == ["leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip", "gtFine_trainvaltest.zip"]
    assert not any(p.name.startswith(".extracting") for p in root.iterdir())
    assert main(["data", "cityscapes", "--root", str(root)]) == 0 and len(calls) == 3  # both done: none again
    os.utime(root / "gtFine_trainvaltest.zip", (1, 1))  # a different zip put there later is unpacked again
    assert main(["data", "cityscapes", "--root", str(root)]) == 0 and calls[3:] == ["gtFine_trainvaltest.zip"]


# ---------------------------------------------------------------- an interrupted unpack resumes per member
def _many(path: Path, n: int = 6, size: int = 50_000) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            for i in range(n):
                z.writestr(f"leftImg8bit/train/img{i}.png", bytes([i]) * size)
        return path
    with tarfile.open(path, "w:gz") as t:
        for i in range(n):
            info = tarfile.TarInfo(f"leftImg8bit/train/img{i}.png")
            info.size = size
            t.addfile(info, io.BytesIO(bytes([i]) * size))
    return path


def _count_writes(monkeypatch, stop_after: int | None = None) -> list[str]:
    """Record each member written; raise KeyboardInterrupt half-way through member ``stop_after``."""
    real, written = archives.copy_counted, []

    def copy(src, path, budget):
        written.append(Path(path).name)
        if stop_after is not None and len(written) == stop_after:
            Path(path).write_bytes(src.read(100))  # cut off in the middle of this member
            raise KeyboardInterrupt
        return real(src, path, budget)

    monkeypatch.setattr(archives, "copy_counted", copy)
    return written


@pytest.mark.parametrize("name", ["leftImg8bit_trainvaltest.zip", "leftImg8bit.tar.gz"])
def test_an_interrupted_unpack_resumes_after_the_members_already_written(tmp_path, monkeypatch, name):
    archive, root = _many(tmp_path / name), tmp_path / "cs"
    first = _count_writes(monkeypatch, stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        archives.extract(archive, root)
    assert first == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert not (root / "leftImg8bit").exists()  # nothing half-made in the target itself
    again = _count_writes(monkeypatch)
    archives.extract(archive, root)
    assert again == ["img3.png", "img4.png", "img5.png"]  # the cut member again, then the rest; 0-2 kept
    for i in range(6):
        assert (root / "leftImg8bit" / "train" / f"img{i}.png").read_bytes() == bytes([i]) * 50_000
    assert sorted(p.name for p in root.iterdir()) == ["leftImg8bit"]  # no .extracting-* folder or mark left


def test_a_different_archive_of_the_same_name_starts_afresh(tmp_path, monkeypatch):
    archive, root = _many(tmp_path / "a.zip"), tmp_path / "out"
    _count_writes(monkeypatch, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        archives.extract(archive, root)
    _many(archive, size=60_000)  # replaced by another download before the rerun
    os.utime(archive, (1, 1))
    again = _count_writes(monkeypatch)
    archives.extract(archive, root)
    assert len(again) == 6 and all((root / "leftImg8bit" / "train" / f"img{i}.png").stat().st_size == 60_000
                                   for i in range(6))
