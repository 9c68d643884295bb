"""Real-layout dataset loaders on tiny fixture folders (JPEG/PNG written with PIL), and DataLoader settings."""

import numpy as np
import pytest
import torch
from PIL import Image

from setr_edu.data import ADE20K, Cityscapes, DatasetNotFoundError, FolderDataset, PascalContext, train_pipeline


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


# ---------------------------------------------------------------- DataLoader settings (setr_edu/data/loader.py)
def test_worker_defaults_are_sized_to_the_machine(monkeypatch):
    from setr_edu.data import loader as L

    monkeypatch.setattr(L, "usable_cores", lambda: 16)
    assert L.default_num_workers() == 8 and L.default_num_workers(local_world_size=4) == 4
    monkeypatch.setattr(L, "usable_cores", lambda: 2)  # a Colab T4
    assert L.default_num_workers() == 2 and L.default_num_workers(local_world_size=8) == 1
    assert L.resolve_num_workers(-1, "ade20k") == 2 and L.resolve_num_workers(-1, "synthetic") == 0
    assert L.resolve_num_workers(0, "ade20k") == 0 and L.resolve_num_workers(3, "synthetic") == 3
    kw = L.loader_kwargs(2, "cuda")
    assert kw["pin_memory"] and kw["persistent_workers"] and kw["num_workers"] == 2 and kw["prefetch_factor"]
    kw = L.loader_kwargs(0, "cpu", worker_init_fn=print)
    assert not kw["pin_memory"] and not kw["persistent_workers"] and kw["worker_init_fn"] is None
    assert L.loader_kwargs(2, "cpu", worker_init_fn=print)["worker_init_fn"] is print
    assert not L.loader_kwargs(2, "cpu", persistent=False)["persistent_workers"]


def test_workers_start_after_the_main_process_used_opencv_threads(tmp_path):
    """OpenCV's thread pool, started in the main process (e.g. by evaluating without workers), must not hang the
    workers forked later: calling cv2.setNumThreads inside such a worker deadlocks, so the library sets it in the
    main process before the workers start. Run in a subprocess, so that a regression fails instead of hanging."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import cv2, numpy as np, torch
        from setr_edu.data import ADE20K, train_pipeline
        from setr_edu.data.loader import loader_kwargs
        from setr_edu.perf.data_bench import write_fake_ade20k
        cv2.setNumThreads(2)
        for _ in range(3):  # the main process starts OpenCV's thread pool
            cv2.resize(np.zeros((1500, 1500, 3), np.uint8), (2500, 2500))
        root = write_fake_ade20k({str(tmp_path)!r}, n_train=4, n_val=1, size=(48, 64))
        ds = ADE20K(root, transforms=train_pipeline(32, (96, 48)))
        loader = torch.utils.data.DataLoader(ds, batch_size=2, **loader_kwargs(2, "cpu", persistent=False))
        print(sum(int(y.numel()) for _, y in loader), cv2.getNumThreads())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(4 * 32 * 32), "1"]  # every sample arrived; OpenCV single-threaded


def test_training_on_a_real_layout_uses_workers_by_default(tmp_path, monkeypatch):
    from engine_helpers import tiny_recipe
    from setr_edu.data import loader as L
    from setr_edu.engine.trainer import Trainer

    monkeypatch.setattr(L, "usable_cores", lambda: 2)
    root = _ade(tmp_path)
    r = tiny_recipe(dataset="ade20k", data_root=str(root), train_scale=(32, 16), num_classes=150)
    assert r.num_workers == -1  # "auto" is the default
    loader = Trainer(r, tmp_path / "run", progress=False, log=None).loader()
    assert loader.num_workers == 2 and loader.persistent_workers and not loader.pin_memory  # CPU: nothing to pin
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4, 32, 32)
    synthetic = Trainer(tiny_recipe(), tmp_path / "run2", progress=False, log=None).loader()
    assert synthetic.num_workers == 0  # generated in memory: workers would only copy it


def test_evaluation_with_workers_gives_the_same_metric(tmp_path):
    from engine_helpers import PointwiseNet
    from setr_edu.data import test_pipeline
    from setr_edu.engine.inference import evaluate

    torch.manual_seed(0)
    model = PointwiseNet(num_classes=150)
    ds = ADE20K(_ade(tmp_path, {"training": [1], "validation": [3, 7, 9, 150]}), split="val",
                transforms=test_pipeline((40, 20)))
    plain, parallel = (evaluate(model, ds, 150, num_workers=w) for w in (0, 2))
    assert plain["mIoU"] == parallel["mIoU"] and np.array_equal(plain["IoU"], parallel["IoU"], equal_nan=True)
