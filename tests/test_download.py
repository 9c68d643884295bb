"""Downloads and `python -m setr_edu data`, against a local HTTP server on 127.0.0.1 (nothing leaves the machine)."""
import functools
import hashlib
import http.server
import threading
import zipfile

import numpy as np
import pytest
from data_helpers import cityscapes_zips

from setr_edu.cli import main
from setr_edu.data import ADE20K
from setr_edu.data import download as dl
from setr_edu.perf.data_bench import write_fake_ade20k

class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files with Range support; ``cut`` makes the next full response stop after that many bytes."""

    state = {"ranges": [], "cut": None, "ignore_range": False}

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = (self.directory_path / self.path.lstrip("/")).read_bytes()
        rng = self.headers.get("Range")
        self.state["ranges"].append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng and not self.state["ignore_range"] else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.state["cut"] is not None:
            body, self.state["cut"] = body[: self.state["cut"]], None
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_Handler, directory=str(served))
    _Handler.directory_path = served
    _Handler.state.update(ranges=[], cut=None, ignore_range=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_with_range_verifies_and_renames_atomically(server, tmp_path):
    served, url = server
    payload = np.random.default_rng(0).integers(0, 256, 300_000).astype(np.uint8).tobytes()
    (served / "blob.bin").write_bytes(payload)
    sha, md5 = hashlib.sha256(payload).hexdigest(), hashlib.md5(payload).hexdigest()
    dest = tmp_path / "out" / "blob.bin"
    _Handler.state["cut"] = 100_000  # the first response dies after 100 kB
    with pytest.raises(ConnectionError, match="resume"):
        dl.download_url(f"{url}/blob.bin", dest, sha256=sha, retries=0, progress=False, chunk_size=4096)
    part = dest.with_name("blob.bin.part")
    assert not dest.exists() and part.stat().st_size == 100_000  # nothing under the final name yet
    assert dl.download_url(f"{url}/blob.bin", dest, sha256=sha, md5=md5, progress=False) == dest
    assert _Handler.state["ranges"][-1] == "bytes=100000-"  # resumed, not restarted
    assert dest.read_bytes() == payload and not part.exists()
    # automatic retry inside one call: cut again, the retry resumes
    dest.unlink()
    _Handler.state["cut"] = 50_000
    dl.download_url(f"{url}/blob.bin", dest, sha256=sha, retries=2, progress=False)
    assert dest.read_bytes() == payload and _Handler.state["ranges"][-1] == "bytes=50000-"


def test_download_restarts_when_range_is_ignored_and_rejects_bad_checksums(server, tmp_path):
    served, url = server
    payload = b"0123456789" * 1000
    (served / "f.bin").write_bytes(payload)
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"garbage")
    _Handler.state["ignore_range"] = True
    dl.download_url(f"{url}/f.bin", dest, md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload
    other = tmp_path / "g.bin"
    with pytest.raises(dl.ChecksumError, match="deleted"):
        dl.download_url(f"{url}/f.bin", other, sha256="0" * 64, progress=False)
    assert not other.exists() and not other.with_name("g.bin.part").exists()


def test_extract_zip_and_refuse_path_traversal(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ADEChallengeData2016/images/training/x.jpg", b"jpg")
    dl.extract(archive, tmp_path / "data")
    assert (tmp_path / "data" / "ADEChallengeData2016" / "images" / "training" / "x.jpg").read_bytes() == b"jpg"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escaped.txt", b"x")
    with pytest.raises(ValueError, match="outside"):
        dl.extract(evil, tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists()


# ---------------------------------------------------------------- python -m setr_edu data
def _ade_zip(tmp_path, served):
    """A small ADE20K in the real on-disk format (JPEG images, PNG labels, the official zip's top folder)."""
    src = write_fake_ade20k(tmp_path / "src", n_train=3, n_val=2, size=(24, 32))
    archive = served / "ADEChallengeData2016.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((src / "ADEChallengeData2016").rglob("*")):
            z.write(f, f.relative_to(src))
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_data_ade20k_downloads_resumes_after_a_cut_and_prepares_the_layout(server, tmp_path, capsys):
    served, url = server
    archive, md5 = _ade_zip(tmp_path, served)
    _Handler.state["cut"] = archive.stat().st_size // 3  # the connection dies a third of the way in
    root = tmp_path / "ade20k"
    args = ["data", "ade20k", "--root", str(root), "--url", f"{url}/{archive.name}", "--md5", md5, "--no-progress"]
    assert main(args) == 0
    assert _Handler.state["ranges"] == [None, f"bytes={archive.stat().st_size // 3}-"]  # resumed, not restarted
    out = capsys.readouterr().out
    assert "ade20k is ready" in out and "3 training and 2 validation images" in out and "partial copy" in out
    assert not (root / archive.name).exists() and not (root / (archive.name + ".part")).exists()
    ds = ADE20K(root, split="val")
    assert len(ds) == 2 and ds[0][0].shape == (3, 24, 32)
    assert main(args) == 0 and len(_Handler.state["ranges"]) == 2  # already there: nothing downloaded again


def test_data_ade20k_reuses_an_archive_on_drive_or_downloads_it_there(server, tmp_path, capsys):
    served, url = server
    archive, md5 = _ade_zip(tmp_path, served)
    drive = tmp_path / "drive" / "MyDrive" / archive.name
    common = ["--url", f"{url}/{archive.name}", "--md5", md5, "--no-progress", "--archive", str(drive)]
    assert main(["data", "ade20k", "--root", str(tmp_path / "a")] + common) == 0
    assert drive.read_bytes() == archive.read_bytes() and len(_Handler.state["ranges"]) == 1  # kept on "Drive"
    assert main(["data", "ade20k", "--root", str(tmp_path / "b")] + common) == 0  # the next session
    assert len(_Handler.state["ranges"]) == 1 and "reusing" in capsys.readouterr().out  # no new request
    assert len(ADE20K(tmp_path / "b")) == 3 and drive.exists() and not (tmp_path / "b" / archive.name).exists()


def test_data_ade20k_checksum_mismatch_is_one_clear_error(server, tmp_path, capsys):
    served, url = server
    archive, md5 = _ade_zip(tmp_path, served)
    root = tmp_path / "ade20k"
    rc = main(["data", "ade20k", "--root", str(root), "--url", f"{url}/{archive.name}", "--md5", "0" * 32,
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "md5" in err and "run again" in err and "Traceback" not in err
    assert not any(root.rglob("*.zip*")) and not (root / "ADEChallengeData2016").exists()
    drive = tmp_path / "drive.zip"
    drive.write_bytes(archive.read_bytes()[:-10])  # a truncated copy on Drive is refused, not unpacked
    assert main(["data", "ade20k", "--root", str(root), "--archive", str(drive), "--md5", md5]) == 2
    assert "md5" in capsys.readouterr().err and drive.exists()  # the user's file is left alone


def test_data_for_login_datasets_prints_the_steps_with_the_root(tmp_path, capsys):
    root = tmp_path / "cs"
    assert main(["data", "cityscapes", "--root", str(root)]) == 2
    out = capsys.readouterr().out
    assert "cityscapes-dataset.com" in out and f"CITYSCAPES_DATASET={root} csCreateTrainIdLabelImgs" in out
    assert main(["data", "pascal_context", "--root", str(tmp_path / "pc")]) == 2
    out = capsys.readouterr().out
    assert "VOCtrainval_03-May-2010.tar" in out and str(tmp_path / "pc") in out


def test_data_cityscapes_unpacks_the_official_zips_found_in_root(tmp_path, capsys):
    root = tmp_path / "cs"
    cityscapes_zips(root)
    assert main(["data", "cityscapes", "--root", str(root)]) == 0
    assert "1 training and 1 validation images" in capsys.readouterr().out


def test_data_cityscapes_writes_train_ids_from_label_ids(tmp_path, capsys):
    from PIL import Image

    from setr_edu.data import Cityscapes

    root = tmp_path / "cs"
    ids = np.array([[7, 8, 26, 33], [0, 6, 9, 24]], np.uint8)  # road, sidewalk, car, bicycle; 4 ignored; person
    for split in ("train", "val"):
        stem = root / "gtFine" / split / "bochum" / "bochum_000000_000313_gtFine"
        stem.parent.mkdir(parents=True)
        Image.fromarray(ids).save(f"{stem}_labelIds.png")
        img = root / "leftImg8bit" / split / "bochum" / "bochum_000000_000313_leftImg8bit.png"
        img.parent.mkdir(parents=True)
        Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(img)
    assert main(["data", "cityscapes", "--root", str(root)]) == 0
    assert "writing 2 labelTrainIds files" in capsys.readouterr().out
    assert Cityscapes(root, split="val")[0][1].tolist() == [[0, 1, 13, 18], [255, 255, 255, 11]]
    assert main(["data", "cityscapes", "--root", str(root)]) == 0 and "writing" not in capsys.readouterr().out
