"""Real-layout dataset loaders on tiny fixture folders (JPEG/PNG written with PIL), and the download helpers."""
import functools
import hashlib
import http.server
import threading
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from setr_edu.data import ADE20K, Cityscapes, DatasetNotFoundError, FolderDataset, PascalContext, train_pipeline
from setr_edu.data import download as dl


def _write(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def _image(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3)).astype(np.uint8)


def _ade(tmp_path, labels=None):
    base = tmp_path / "ade" / "ADEChallengeData2016"
    labels = labels or {"training": [0, 1, 150], "validation": [5]}
    for sub, values in labels.items():
        for i, v in enumerate(values):
            lab = np.full((12, 16), v, np.uint8)
            lab[0, 0] = 0  # "other"
            _write(base / "images" / sub / f"ADE_{sub}_{i:08d}.jpg", _image(seed=i))
            _write(base / "annotations" / sub / f"ADE_{sub}_{i:08d}.png", lab)
    return tmp_path / "ade"


def test_ade20k_reduce_zero_label_and_layout(tmp_path):
    root = _ade(tmp_path)
    ds = ADE20K(root, split="train")
    assert len(ds) == 3 and ds.num_classes == 150 and ds.palette.shape == (150, 3) and ds.class_names[0] == "wall"
    image, label = ds[2]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32 and label.dtype == torch.int64
    assert label[0, 0] == 255 and (label.flatten()[1:] == 149).all()  # 0 -> 255, 150 -> 149
    raw, raw_label = ds.get_raw(1)
    assert raw.shape == (12, 16, 3) and raw.dtype == np.uint8 and raw_label[5, 5] == 0  # 1 -> 0
    assert len(ADE20K(root / "ADEChallengeData2016", split="val")) == 1  # the inner folder works too


def test_ade20k_value_above_150_names_the_file(tmp_path):
    root = _ade(tmp_path, {"training": [151]})
    with pytest.raises(ValueError, match=r"ADE_training_00000000\.png holds values \[151\].*reduce_zero_label"):
        ADE20K(root)[0]


def test_missing_folders_say_what_layout_is_expected_and_how_to_download(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)ADEChallengeData2016.*download_ade20k.*images/training"):
        ADE20K(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"(?s)cityscapes-dataset\.com.*labelTrainIds"):
        Cityscapes(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"(?s)VOC2010.*SegmentationContext"):
        PascalContext(tmp_path)
    root = _ade(tmp_path)
    (root / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_validation_00000000.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="has no annotation"):
        ADE20K(root, split="val")
    with pytest.raises(ValueError, match="split"):
        ADE20K(root, split="validation")


def _cityscapes(tmp_path, train_ids=True):
    root = tmp_path / "cityscapes"
    for city, n in (("aachen", 2), ("bochum", 1)):
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            _write(root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png", _image(seed=i))
            lab = np.full((12, 16), 18, np.uint8)
            lab[:2] = 255
            kind = "labelTrainIds" if train_ids else "labelIds"
            _write(root / "gtFine" / "train" / city / f"{stem}_gtFine_{kind}.png", lab)
    return root


def test_cityscapes_train_ids(tmp_path):
    ds = Cityscapes(_cityscapes(tmp_path), split="train")
    assert len(ds) == 3 and ds.num_classes == 19 and tuple(ds.palette[0]) == (128, 64, 128)
    image, label = ds[0]
    assert set(label.unique().tolist()) == {18, 255} and image.shape == (3, 12, 16)
    assert "aachen_000000_000019" in str(ds.pairs[0][0])


def test_cityscapes_without_train_ids_explains_the_conversion(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)createTrainIdLabelImgs.*csCreateTrainIdLabelImgs"):
        Cityscapes(_cityscapes(tmp_path, train_ids=False))


def test_pascal_context_60_classes_from_split_file(tmp_path):
    base = tmp_path / "pc" / "VOCdevkit" / "VOC2010"
    ids = ["2008_000002", "2008_000003", "2008_000007"]
    for i, name in enumerate(ids):
        _write(base / "JPEGImages" / f"{name}.jpg", _image(seed=i))
        lab = np.zeros((12, 16), np.uint8)
        lab[4:] = 59  # wood
        _write(base / "SegmentationClassContext" / f"{name}.png", lab)
    (base / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (base / "ImageSets" / "SegmentationContext" / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (base / "ImageSets" / "SegmentationContext" / "val.txt").write_text(ids[2] + "\n")
    ds = PascalContext(tmp_path / "pc", split="train")
    assert len(ds) == 2 and ds.num_classes == 60 and ds.class_names[0] == "background"
    assert set(ds[1][1].unique().tolist()) == {0, 59}
    assert len(PascalContext(tmp_path / "pc", split="val")) == 1
    (base / "ImageSets" / "SegmentationContext" / "val.txt").write_text("2010_999999\n")
    with pytest.raises(DatasetNotFoundError, match="2010_999999"):
        PascalContext(tmp_path / "pc", split="val")


def test_folder_dataset_both_layouts_inferred_classes_and_bad_masks(tmp_path):
    root = tmp_path / "mine"
    for i in range(3):
        _write(root / "images" / "train" / f"img{i}.png", _image(seed=i))
        lab = np.full((12, 16), i, np.uint8)
        lab[0] = 255
        _write(root / "annotations" / "train" / f"img{i}.png", lab)
    ds = FolderDataset(root, split="train")
    assert len(ds) == 3 and ds.num_classes == 3  # largest value 2 (255 ignored) + 1
    same = FolderDataset(root / "images" / "train", root / "annotations" / "train", num_classes=5)
    assert same.num_classes == 5 and torch.equal(same[1][1], ds[1][1])
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    assert FolderDataset(root, split="train").class_names == ("sky", "road", "car")
    # a colour-coded (RGB) mask and an out-of-range value both name the file
    _write(root / "annotations" / "train" / "img1.png", _image())
    with pytest.raises(ValueError, match=r"img1\.png.*mode 'RGB'"):
        ds[1]
    _write(root / "annotations" / "train" / "img1.png", np.full((12, 16), 7, np.uint8))
    with pytest.raises(ValueError, match=r"img1\.png.*\[7\]"):
        ds.validate()
    _write(root / "images" / "train" / "orphan.jpg", _image())
    with pytest.raises(DatasetNotFoundError, match="orphan.jpg"):
        FolderDataset(root, split="train")


def test_loader_with_the_paper_augmentation_pads_with_ignore(tmp_path):
    ds = ADE20K(_ade(tmp_path), transforms=train_pipeline(crop=32, img_scale=(32, 16)))
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and label.shape == (32, 32)
    assert (label[24:] == 255).all()  # 16 rows tall after a resize of at most 2x: the rest is padding
    assert torch.equal(ds[0][0], image)  # seeded by (seed, epoch, index)


# ---------------------------------------------------------------- downloads (local server only)
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
