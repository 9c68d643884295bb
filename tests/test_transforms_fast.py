"""The fast training pipeline (setr_edu/data/fast_transforms.py) against the readable one and against mmseg's
pipeline written with OpenCV (setr_edu/perf/data_bench.py).

"Agree" (see the fast module's docstring): the same random draws (the generators end in the same state), the same
geometry (identical labels, since labels are resized by the same nearest indices), and images within the rounding
differences of OpenCV: <= 1 grey level after resizing; bit-identical brightness/contrast; within 1 step of H/S in
HSV; and, after the whole pipeline with its HSV round trips, a small mean difference.
"""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from setr_edu.data import transforms as T
from setr_edu.data import fast_transforms as FT
from setr_edu.data.pipelines import test_pipeline, train_pipeline
from setr_edu.perf.data_bench import reference_pipeline, synthetic_scene

STD = torch.tensor(T.IMAGENET_STD)[:, None, None]
SCENES = [synthetic_scene(120, 170, seed=i) for i in range(4)] + [synthetic_scene(90, 64, seed=9)]


def _levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|difference| of two normalised images in grey levels (0-255 units)."""
    return ((a - b) * STD).abs()


def test_nearest_indices_match_opencv_and_the_torch_rule_where_it_is_exact():
    for n_in, n_out in [(10, 25), (36, 40), (375, 683), (683, 1366), (512, 256), (100, 100), (7, 3)]:
        ours = T.nearest_indices(n_in, n_out)
        row = np.arange(n_in, dtype=np.uint16)[None].repeat(2, 0)
        assert np.array_equal(ours, cv2.resize(row, (n_out, 2), interpolation=cv2.INTER_NEAREST)[0])
        assert ours.min() == 0 and ours.max() <= n_in - 1 and np.all(np.diff(ours) >= 0)
    # torch's float32 rule picks source 27 for output 30 of 36 -> 40; OpenCV (and mmseg, and we) pick 26
    x = torch.arange(36.0)[None, None, None]
    assert F.interpolate(x, size=(1, 40), mode="nearest")[0, 0, 0, 30] == 27 and T.nearest_indices(36, 40)[30] == 26


@pytest.mark.parametrize("size", [(240, 340), (60, 85), (121, 171), (120, 170), (333, 90)])
def test_resize_fast_same_geometry_within_one_level(size):
    image, label = SCENES[0]
    a, la = T.resize(image, label, size)
    b, lb = FT.resize_fast(image, label, size)
    assert b.shape == a.shape and b.dtype == np.uint8
    assert np.array_equal(np.asarray(lb), la)  # labels: identical
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # OpenCV's fixed-point weights vs float
    window = (slice(7, 50), slice(3, 40))
    assert np.array_equal(lb[window], la[window])  # a crop of the lazy label = the crop of the full one


def test_brightness_and_contrast_tables_are_exact_and_hsv_within_one_step():
    image = SCENES[1][0]
    pmd = T.PhotoMetricDistortion()
    steps = [("brightness", 23.7), ("contrast", 1.37), ("brightness", -31.2), ("contrast", 0.61)]
    out, lut = FT.photometric_fast(image, steps)
    assert np.array_equal(cv2.LUT(out, lut), pmd.apply(image, steps))
    rgb = np.random.default_rng(0).integers(0, 256, (300, 301, 3)).astype(np.uint8)
    ours, cv = T.rgb_to_hsv(rgb).astype(int), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(int)
    assert np.array_equal(ours[..., 2], cv[..., 2])
    assert np.abs(ours[..., 1] - cv[..., 1]).max() <= 1
    assert np.abs((ours[..., 0] - cv[..., 0] + 90) % 180 - 90).max() <= 1  # hue is circular
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    assert np.abs(T.hsv_to_rgb(hsv).astype(int) - cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)).max() <= 1


def _run_both(pipe, image, label, seed):
    r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
    a, b = pipe.readable()(image, label, r1), pipe(image, label, r2)
    assert r1.bit_generator.state == r2.bit_generator.state  # the same random draws, in the same order
    return a, b


def test_fast_pipeline_agrees_with_the_readable_one():
    plain = train_pipeline(96, (200, 100), photometric=False)
    full = train_pipeline(96, (200, 100))
    assert isinstance(full, FT.FastCompose) and type(full.readable()) is T.Compose
    means = []
    for seed in range(40):
        image, label = SCENES[seed % len(SCENES)]
        (xa, ya), (xb, yb) = _run_both(plain, image, label, seed)
        assert xb.shape == xa.shape == (3, 96, 96) and xb.dtype == torch.float32 and yb.dtype == torch.int64
        assert torch.equal(ya, yb)
        assert _levels(xa, xb).max() <= 1.0001  # resize rounding only (normalise, flip, pad are exact)
        (xa, ya), (xb, yb) = _run_both(full, image, label, seed)
        assert torch.equal(ya, yb)
        d = _levels(xa, xb)
        means.append(float(d.mean()))
        assert (d > 4.001).float().mean() < 0.05  # HSV round trips: rare larger steps
    assert np.mean(means) < 1.0  # measured ~0.45 with OpenCV 5.0, whose HSV -> RGB truncates


def test_fast_pipeline_is_mmsegs_opencv_pipeline():
    ours, ref = train_pipeline(96, (200, 100)), reference_pipeline(96, (200, 100))
    for seed in range(30):
        image, label = SCENES[seed % len(SCENES)]
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        (xa, ya), (xb, yb) = ours(image, label, r1), ref(image, label, r2)
        assert r1.bit_generator.state == r2.bit_generator.state
        assert torch.equal(ya, yb) and xa.shape == xb.shape
        assert torch.allclose(xa, xb, atol=1e-5, rtol=0)


def test_test_pipeline_fast_keeps_the_label_and_other_inputs():
    image, label = SCENES[4]
    fast, readable = test_pipeline((256, 48)), test_pipeline((256, 48), fast=False)
    (xa, ya), (xb, yb) = readable(image, label), fast(image, label)
    assert xa.shape == xb.shape == (3, 68, 48) and torch.equal(ya, yb) and ya.shape == (90, 64)
    assert _levels(xa, xb).max() <= 1.0001
    x, y = fast(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(label))  # tensors in
    assert torch.equal(x, xb) and torch.equal(y, yb)
    as_float = fast(image.astype(np.float32), label)[0]  # not uint8: the readable path
    assert _levels(as_float, xa).max() <= 0.5001  # the same resize, without rounding to uint8
    with pytest.raises(ValueError, match="Compose"):
        FT.FastCompose([T.Normalize(), T.RandomFlip(), T.ToTensor()])


def test_a_flip_before_a_resize_is_applied_before_it():
    image, label = SCENES[2]
    pipe = FT.FastCompose([T.RandomFlip(1.0), T.RandomResize((100, 50), (0.7, 0.7)), T.Normalize(), T.ToTensor()])
    (xa, ya), (xb, yb) = _run_both(pipe, image, label, 0)
    assert torch.equal(ya, yb) and _levels(xa, xb).max() <= 1.0001


def test_bench_data_command_writes_results_with_machine_and_versions(tmp_path, capsys):
    import json

    from setr_edu.cli import main
    from setr_edu.perf.data_bench import measure_loader

    out = tmp_path / "r.json"
    assert main(["bench", "data", "--samples", "2", "--repeats", "1", "--size", "64", "96", "--crop", "48",
                 "--img-scale", "128", "48", "--workers", "0", "--seconds", "0.3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert {"opencv", "torch", "numpy", "device_name", "usable_cores"} <= set(r["machine"])
    assert r["per_core"]["ratio"] > 0 and set(r["per_core"]["ms_per_sample"]) == {"ours", "opencv", "readable"}
    assert {row["pipeline"] for row in r["loader"]} == {"ours", "opencv"}
    assert all(row["samples_per_s"] > 0 and row["num_workers"] == 0 for row in r["loader"])
    assert "ratio (reference/ours" in capsys.readouterr().out
    m = measure_loader(seconds=0.3, num_workers=1, batch_size=2, crop=48, img_scale=(128, 48), size=(64, 96))
    assert m["num_workers"] == 1 and m["samples"] > 0 and m["pin_memory"] is False
