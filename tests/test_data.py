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
    assert ds.num_classes == 4 and ds.class_names == ("background", "circle|red", "square|red", "triangle|red")
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
