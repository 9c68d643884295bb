"""Whole / sliding-window / multi-scale + flip inference, evaluation and colourisation (engine/inference.py)."""
import numpy as np
import pytest
import torch
from engine_helpers import PointwiseNet, one_thread
from torch import nn

import setr_edu
from setr_edu.engine.inference import (colorize, evaluate, predict, scaled_size, slide_inference, whole_inference,
                                       window_starts)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():  # bitwise-reproducible and fast on a busy 2-core machine
        yield


@pytest.fixture(scope="module")
def setr():
    torch.manual_seed(0)
    return setr_edu.build_setr("naive", "tiny", num_classes=4, img_size=32, depth=2, embed_dim=32, num_heads=2,
                               patch_size=8, decoder_channels=16).eval()


def test_slide_with_crop_equal_to_image_is_whole_inference(setr):
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(slide_inference(setr, x, crop=32, stride=21), whole_inference(setr, x))


def test_windows_cover_the_image_and_end_at_the_border():
    assert window_starts(512, 512, 341) == [0]
    assert window_starts(1024, 768, 512) == [0, 256]  # Cityscapes height: the last window ends at 1024
    starts = window_starts(100, 32, 21)
    assert starts[0] == 0 and starts[-1] == 100 - 32 and all(b - a <= 21 for a, b in zip(starts, starts[1:]))


def test_overlapping_windows_are_averaged():
    """A pointwise model gives each pixel the same logits in every window, so averaging must return them exactly."""
    net, x = PointwiseNet(num_classes=3).eval(), torch.randn(1, 3, 50, 70)
    torch.testing.assert_close(slide_inference(net, x, crop=32, stride=12), net(x))

    class Ones(nn.Module):  # logits = 1 everywhere: an un-normalised sum of windows would show the overlap count
        def forward(self, x):
            return x.new_ones(x.shape[0], 2, *x.shape[-2:])

    assert torch.equal(slide_inference(Ones(), x, crop=32, stride=12), torch.ones(1, 2, 50, 70))


def test_image_smaller_than_the_crop_is_padded(setr):
    x = torch.randn(1, 3, 20, 28)  # smaller than the 32 px crop and not a multiple of the patch size
    out = slide_inference(setr, x, crop=32, stride=21)
    assert out.shape == (1, 4, 20, 28)
    padded = torch.nn.functional.pad(x, (0, 4, 0, 12))
    torch.testing.assert_close(out, setr(padded)[..., :20, :28])
    assert whole_inference(setr, x).shape == (1, 4, 20, 28)


def test_flip_tta_on_a_flip_equivariant_model_changes_nothing():
    net, x = PointwiseNet(num_classes=3).eval(), torch.randn(2, 3, 24, 40)
    torch.testing.assert_close(predict(net, x, flip=True), predict(net, x))  # the mirrored output is mirrored back


def test_flip_tta_averages_probabilities_of_both_views(setr):
    x = torch.randn(1, 3, 32, 32)
    p = setr(x).softmax(1)
    q = setr(x.flip(-1)).flip(-1).softmax(1)
    torch.testing.assert_close(predict(setr, x, flip=True), (p + q) / 2)


def test_multi_scale_output_shapes(setr):
    x = torch.randn(1, 3, 40, 56)
    scales = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    for mode in ("whole", "slide"):
        probs = predict(setr, x, mode=mode, crop=32, scales=scales, flip=True, min_size=32)
        assert probs.shape == (1, 4, 40, 56)
        torch.testing.assert_close(probs.sum(1), torch.ones(1, 40, 56))
    assert scaled_size(40, 56, 0.5, min_size=32) == (32, 45)  # short side raised to the crop (setr_multi_scale)
    assert predict(setr, x, out_size=(20, 28)).shape == (1, 4, 20, 28)


def test_evaluate_uses_the_dataset_level_metric():
    class Constant(nn.Module):  # always predicts class 1
        def forward(self, x):
            out = x.new_zeros(x.shape[0], 3, *x.shape[-2:])
            out[:, 1] = 1
            return out

    labels = [torch.ones(8, 8, dtype=torch.long), torch.full((8, 8), 2, dtype=torch.long)]
    labels[0][:2] = 255  # ignored pixels never count
    data = [(torch.zeros(3, 8, 8), lb) for lb in labels]
    res = evaluate(Constant(), data, num_classes=3, batch_size=2, class_names=["a", "b", "c"])
    # class 1: 48 right, 64 false positives -> IoU 48/112; class 2: IoU 0; class 0 absent -> NaN, left out
    assert res["mIoU"] == pytest.approx((48 / 112 + 0) / 2)
    assert res["aAcc"] == pytest.approx(48 / 112)
    assert "b" in res["report"] and "mIoU" in res["report"]


def test_colorize_uses_the_palette_and_blacks_out_ignore():
    palette = np.array([[10, 20, 30], [200, 100, 0]], dtype=np.uint8)
    out = colorize(torch.tensor([[0, 1], [255, 1]]), palette)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [200, 100, 0] and out[1, 0].tolist() == [0, 0, 0]


# --- named test protocols and the Pascal Context test-time resize (issue: released weights) ------------------
def test_protocol_sizes_hand_computed():
    from setr_edu.engine.inference import protocol_sizes, protocol_views
    from setr_edu.recipes import get_recipe, official_ms_ratios

    assert protocol_views("single") == ((1.0,), False)
    assert protocol_views("paper") == ((0.5, 0.75, 1.0, 1.25, 1.5, 1.75), True)
    ade = official_ms_ratios(get_recipe("ade20k_mla"))
    assert ade == (0.5, 0.75, 1.0) and official_ms_ratios(get_recipe("ade20k_pup")) == protocol_views("paper")[0]
    # ADE20K image after the (2048, 512) test resize: 512x683, crop 512. 0.5 and 0.75 are raised to short side 512,
    # i.e. the 1.0 view: the official Naive/MLA ratios collapse to one scale (+ flip)
    assert protocol_sizes(512, 683, "official", 512, ade) == [(512, 683)]
    assert protocol_sizes(512, 683, "paper", 512) == [(512, 683), (640, 854), (768, 1024), (896, 1195)]
    # Pascal Context 520x693, crop 480: 0.5 and 0.75 -> short side 480 (480 x 693*480/520 = 639.7 -> 640)
    assert protocol_sizes(520, 693, "paper", 480) == [(480, 640), (520, 693), (650, 866), (780, 1040), (910, 1213)]
    assert scaled_size(512, 683, 0.5, min_size=512) == (512, 683)  # raised from the image, not from 256x342
    with pytest.raises(ValueError, match="unknown test protocol"):
        protocol_views("ms")


@pytest.mark.parametrize("hw, expected", [((375, 500), (520, 693)), ((500, 375), (693, 520)), ((333, 500), (520, 781))])
def test_pascal_context_test_resize_short_side_520(hw, expected):
    """fudan-zvg/SETR (first commit) Resize(dataset='pascal_context'): short side -> 520, long side unbounded."""
    from setr_edu.data.pipelines import test_pipeline

    image, label = np.zeros((*hw, 3), np.uint8), np.zeros(hw, np.uint8)
    for fast in (True, False):
        x, y = test_pipeline((520, 520), fast=fast, short_side=True)(image, label)
        assert tuple(x.shape[-2:]) == expected and tuple(y.shape) == hw  # the label keeps its size
    assert tuple(test_pipeline((520, 520))(image, label)[0].shape[-2:]) != expected  # the keep-ratio rule differs


def test_pascal_context_recipe_evaluates_at_short_side_520(tmp_path):
    from PIL import Image

    from setr_edu.engine.build import build_datasets
    from setr_edu.recipes import get_recipe

    base = tmp_path / "pc" / "VOCdevkit" / "VOC2010"
    for sub, arr in (("JPEGImages/a.jpg", np.zeros((375, 500, 3), np.uint8)),
                     ("SegmentationClassContext/a.png", np.zeros((375, 500), np.uint8))):
        (base / sub).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(base / sub)
    (base / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (base / "ImageSets" / "SegmentationContext" / "val.txt").write_text("a\n")
    (val,) = build_datasets(get_recipe("pascal_context_mla", [f"data_root={tmp_path / 'pc'}"]), splits=("val",))
    image, label = val[0]
    assert tuple(image.shape[-2:]) == (520, 693) and tuple(label.shape) == (375, 500)
