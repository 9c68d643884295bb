"""Data: the synthetic context task, joint transforms, real-layout loaders (tiny fixtures)."""
import numpy as np
import pytest
import torch

from setr_edu.data import IMAGENET_MEAN, IMAGENET_STD, SyntheticContextDataset


# ---------------------------------------------------------------- synthetic context task
def test_synthetic_item_types_shapes_and_normalisation():
    ds = SyntheticContextDataset(3, img_size=64, seed=1)
    image, label = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert label.shape == (64, 64) and label.dtype == torch.int64
    raw, raw_label = ds.get_raw(0)
    assert raw.shape == (64, 64, 3) and raw.dtype == np.uint8
    expected = (raw.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert np.array_equal(label.numpy(), raw_label)
    values = set(np.unique(raw_label).tolist())
    assert values <= set(range(ds.num_classes)) | {255} and 255 in values  # the key block is ignored
    assert ds.palette.shape == (ds.num_classes, 3) and ds.palette.dtype == np.uint8
    assert len(set(map(tuple, ds.palette))) == ds.num_classes  # every class drawable in a distinct colour


def test_synthetic_is_deterministic_per_seed_split_index():
    a, b = SyntheticContextDataset(4, 64, seed=3), SyntheticContextDataset(4, 64, seed=3)
    assert all(np.array_equal(a.get_raw(i)[0], b.get_raw(i)[0]) for i in range(4))
    assert np.array_equal(a.get_raw(2)[0], a.get_raw(2)[0])  # index access order does not matter
    other_seed, val = SyntheticContextDataset(4, 64, seed=4), SyntheticContextDataset(4, 64, seed=3, split="val")
    assert not np.array_equal(a.get_raw(0)[0], other_seed.get_raw(0)[0])
    assert not np.array_equal(a.get_raw(0)[0], val.get_raw(0)[0])
    assert not np.array_equal(a.get_raw(0)[0], a.get_raw(1)[0])


def test_synthetic_class_is_decided_by_the_far_away_key():
    ds = SyntheticContextDataset(40, img_size=96, seed=0)
    keys = set()
    for i in range(len(ds)):
        image, label, info = ds.render(i)
        keys.add(info["key"])
        ky, kx, k = info["key_box"]
        assert (label[ky:ky + k, kx:kx + k] == 255).all() and (label == 255).sum() == k * k
        # the key block really shows the key colour
        assert np.abs(image[ky:ky + k, kx:kx + k].reshape(-1, 3).mean(0) - ds_key_rgb(info["key"])).max() < 10
        allowed = {0} | {ds.class_index(s, info["key"]) for s in ("circle", "square", "triangle")}
        assert set(np.unique(label).tolist()) - {255} <= allowed  # every shape's class follows the key
        centre = np.array([ky + k / 2, kx + k / 2])
        for s in info["shapes"]:  # and no shape sits near the key
            assert np.linalg.norm(np.array(s["centre"]) - centre) >= ds.key_clearance * 96
    assert keys == {"red", "blue"}
    # labels from every class appear over a modest number of images (the task is balanced enough to learn)
    seen = set(np.unique(np.stack([ds.get_raw(i)[1] for i in range(len(ds))])).tolist())
    assert seen == set(range(ds.num_classes)) | {255}


def ds_key_rgb(name):
    from setr_edu.data.synthetic import KEY_COLOURS
    return np.array(KEY_COLOURS[name], dtype=np.float32)


def test_synthetic_context_free_control_and_bad_arguments():
    ds = SyntheticContextDataset(2, 64, num_keys=1)
    assert ds.num_classes == 2 and ds.class_names == ("background", "object|red")
    hard = SyntheticContextDataset(2, 64, class_per_shape=True)
    assert hard.num_classes == 7 and hard.class_names[1:4] == ("circle|red", "square|red", "triangle|red")
    assert hard.class_index("square", "blue") == 5 and ds.class_index("square", "red") == 1
    with pytest.raises(ValueError, match="shapes"):
        SyntheticContextDataset(2, 64, shapes=("hexagon",))
    with pytest.raises(ValueError, match="split"):
        SyntheticContextDataset(2, 64, split="training")
    with pytest.raises(IndexError):
        ds[5]


def test_synthetic_custom_transforms_are_applied():
    calls = []

    def tf(image, label):
        calls.append(image.shape)
        return image[:32], label[:32]

    ds = SyntheticContextDataset(1, 64, transforms=tf)
    image, label = ds[0]
    assert calls == [(64, 64, 3)] and image.shape == (32, 64, 3) and label.shape == (32, 64)


# ---------------------------------------------------------------- joint transforms (paper §4)
import colorsys  # noqa: E402

from setr_edu.data import transforms as T  # noqa: E402
from setr_edu.data.pipelines import test_pipeline, train_pipeline  # noqa: E402


def _coord_image(h, w):
    """An image whose pixels encode their own (y, x), so we can check image and label moved together."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy % 256, xx % 256, (yy + xx) % 256], -1).astype(np.uint8), (yy * w + xx)


def test_rescale_size_follows_mmcv_keep_ratio():
    assert T.rescale_size(375, 500, (2048, 512)) == (512, 683)  # ADE20K: short side hits 512
    assert T.rescale_size(1024, 2048, (2049, 1025)) == (1025, 2049)  # Cityscapes at ratio 1 (mmcv rounds up too)
    assert T.rescale_size(100, 1000, (2048, 512)) == (205, 2048)  # long side limits


def test_random_resize_ratio_range_and_nearest_label():
    img = np.zeros((10, 20, 3), np.uint8)
    lab = (np.arange(20)[None].repeat(10, 0) // 2).astype(np.uint8)  # values 0..9
    rr, rng, sizes = T.RandomResize((40, 20), (0.5, 2.0)), np.random.default_rng(0), []
    for _ in range(100):
        out, out_lab = rr(img, lab, rng)
        assert out.shape[:2] == out_lab.shape and out.dtype == np.uint8
        assert set(np.unique(out_lab)) <= set(range(10))  # nearest: no invented label values
        sizes.append(out.shape[0])
    assert 10 <= min(sizes) < 13 and 34 < max(sizes) <= 40  # short side 10 -> 20 x ratio, ratio in 0.5..2
    out, same = T.RandomResize((40, 20), None, resize_label=False)(img, lab, rng)
    assert out.shape[:2] == (20, 40) and same is lab


def test_random_crop_moves_image_and_label_together_and_respects_cat_max_ratio():
    img, ids = _coord_image(128, 128)
    yy, xx = np.mgrid[0:128, 0:128]
    lab = ((yy // 64 + xx // 64) % 2).astype(np.uint8)  # 64-px checkerboard: only 30% of 32-crops are mixed
    rng = np.random.default_rng(0)

    def ok(c):
        v, n = np.unique(c[c != 255], return_counts=True)
        return len(n) > 1 and n.max() / n.sum() < 0.75

    for cmr, expect in ((0.75, 0.9), (1.0, 0.5)):
        crop, good = T.RandomCrop(32, cat_max_ratio=cmr), 0
        for _ in range(60):
            ci, cl = crop(img, lab, rng)
            assert ci.shape == (32, 32, 3) and cl.shape == (32, 32)
            y, x = int(ci[0, 0, 0]), int(ci[0, 0, 1])
            assert np.array_equal(cl, lab[y:y + 32, x:x + 32])  # same window for image and label
            good += ok(cl)
        assert (good / 60 >= expect) if cmr < 1 else (good / 60 <= expect)
    # ignored pixels do not count; a crop that can never be accepted still returns (after 10 retries)
    only_one = np.full((64, 64), 255, np.uint8)
    only_one[:32] = 3
    ci, cl = T.RandomCrop(16)(img[:64, :64], only_one, rng)
    assert cl.shape == (16, 16)
    # images smaller than the crop are kept whole (Pad fills them later)
    ci, cl = T.RandomCrop(200)(img[:50, :60], lab[:50, :60], rng)
    assert ci.shape == (50, 60, 3)


def test_flip_is_joint():
    img, _ = _coord_image(8, 10)
    lab = np.arange(80).reshape(8, 10)
    fi, fl = T.RandomFlip(1.0)(img, lab, np.random.default_rng(0))
    assert np.array_equal(fi, img[:, ::-1]) and np.array_equal(fl, lab[:, ::-1])
    ni, nl = T.RandomFlip(0.0)(img, lab, np.random.default_rng(0))
    assert ni is img and nl is lab


def test_hsv_matches_colorsys_and_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, size=(20, 20, 3)).astype(np.uint8)
    hsv = T.rgb_to_hsv(rgb)
    for (r, g, b), (h, s, v) in zip(rgb.reshape(-1, 3)[:50], hsv.reshape(-1, 3)[:50]):
        H, S, V = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert min(abs(h - H * 180), 180 - abs(h - H * 180)) <= 1 and abs(s - S * 255) <= 1 and v == round(V * 255)
    assert np.abs(T.hsv_to_rgb(hsv).astype(int) - rgb).max() <= 6  # 8-bit HSV loses a little, like OpenCV


def test_photometric_distortion_changes_image_only_and_identity_settings_do_nothing():
    img = np.random.default_rng(1).integers(30, 220, size=(16, 16, 3)).astype(np.uint8)
    lab = np.ones((16, 16), np.uint8)
    rng = np.random.default_rng(0)
    changed = [not np.array_equal(T.PhotoMetricDistortion()(img, lab, rng)[0], img) for _ in range(10)]
    assert sum(changed) >= 7  # 1 - 0.5^4 of the calls change something
    ident = T.PhotoMetricDistortion(0, (1, 1), (1, 1), 0)
    for _ in range(5):
        out, out_lab = ident(img, lab, rng)
        assert out_lab is lab and np.abs(out.astype(int) - img).max() <= 6


def test_normalize_pad_totensor():
    img = np.full((5, 7, 3), 200, np.uint8)
    x, y = T.Normalize()(img, np.zeros((5, 7), np.uint8))
    np.testing.assert_allclose(x[0, 0], (200 - T.IMAGENET_MEAN) / T.IMAGENET_STD, rtol=1e-6)
    x, y = T.Pad(8)(x, y)
    assert x.shape == (8, 8, 3) and (x[5:] == 0).all() and (x[:, 7:] == 0).all()
    assert (y[5:] == 255).all() and (y[:, 7:] == 255).all() and (y[:5, :7] == 0).all()
    xt, yt = T.ToTensor()(x, y)
    assert xt.shape == (3, 8, 8) and xt.dtype == torch.float32 and yt.dtype == torch.int64


def test_train_pipeline_end_to_end_is_reproducible_with_a_seeded_rng():
    img, _ = _coord_image(60, 80)
    lab = (np.arange(80)[None].repeat(60, 0) // 20).astype(np.uint8)
    pipe = train_pipeline(crop=48, img_scale=(80, 60))
    a = pipe(img, lab, np.random.default_rng(5))
    b = pipe(img, lab, np.random.default_rng(5))
    assert a[0].shape == (3, 48, 48) and a[1].shape == (48, 48)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert set(a[1].unique().tolist()) <= {0, 1, 2, 3, 255}
    outs = [pipe(img, lab, np.random.default_rng(s))[1] for s in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    x, y = test_pipeline((40, 30))(img, lab)
    assert x.shape == (3, 30, 40) and y.shape == (60, 80)  # label stays at the original size


def test_dataset_augmentation_depends_on_seed_epoch_index_only():
    pipe = T.Compose([T.RandomFlip(0.5), T.PhotoMetricDistortion(), T.Normalize(), T.ToTensor()])
    ds = SyntheticContextDataset(4, 64, transforms=pipe)
    first = [ds[i][0] for i in range(4)]
    assert all(torch.equal(ds[i][0], first[i]) for i in (3, 1, 0, 2))  # order-independent
    ds.set_epoch(1)
    assert any(not torch.equal(ds[i][0], first[i]) for i in range(4))
