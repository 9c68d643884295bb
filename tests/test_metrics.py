"""SegmentationMetric: dataset-level confusion matrix with mmsegmentation semantics (reference §5)."""
import math

import numpy as np
import pytest
import torch

from setr_edu.engine.metrics import SegmentationMetric, confusion_matrix, per_image_miou


def _numpy_mmseg(preds, labels, K, ignore=255):
    """Independent reference: mmseg's intersect_and_union with histograms, summed over images."""
    I, P, L = np.zeros(K), np.zeros(K), np.zeros(K)
    for p, l in zip(preds, labels):
        p, l = np.asarray(p).ravel(), np.asarray(l).ravel()
        keep = l != ignore
        p, l = p[keep], l[keep]
        I += np.histogram(p[p == l], bins=K, range=(0, K))[0]
        P += np.histogram(p, bins=K, range=(0, K))[0]
        L += np.histogram(l, bins=K, range=(0, K))[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = I / (P + L - I), I / L
    return dict(IoU=iou, Acc=acc, mIoU=np.nanmean(iou), mAcc=np.nanmean(acc), aAcc=I.sum() / L.sum())


def test_hand_computed_case_with_ignore_absent_and_false_positive_only_classes():
    # 4 classes: class 3 absent from both (NaN); class 2 only predicted (IoU 0); one ignored pixel.
    target = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 255]])
    pred = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 2, 3]])  # the 3 is on the ignored pixel: it must not count
    m = SegmentationMetric(4)
    m.update(pred, target)
    r = m.compute()
    # class 0: I=2, U=3; class 1: I=4, U=6 (5 GT + 5 pred - 4); class 2: I=0, U=1; class 3: 0/0
    np.testing.assert_allclose(r["IoU"][:3], [2 / 3, 4 / 6, 0.0])
    assert math.isnan(r["IoU"][3])
    assert math.isclose(r["mIoU"], (2 / 3 + 4 / 6 + 0) / 3)
    np.testing.assert_allclose(r["Acc"][:2], [2 / 3, 4 / 5])
    assert math.isnan(r["Acc"][2]) and math.isnan(r["Acc"][3])
    assert math.isclose(r["mAcc"], (2 / 3 + 4 / 5) / 2) and math.isclose(r["aAcc"], 6 / 8)


def test_reference_anchor_0_430556():
    """The reference's anchor numbers: per-class [0.667, 0.625, 0.0, NaN], nanmean 0.430556 (mmseg = torchmetrics
    macro; torchmetrics' average='none' would say 0.0 instead of NaN for class 3)."""
    target = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 2, 1, 3]])  # class 3 only on the ignored pixel
    m = SegmentationMetric(4)
    m.update(pred, target)
    r = m.compute()
    np.testing.assert_allclose(r["IoU"][:3], [2 / 3, 5 / 8, 0.0])
    assert math.isnan(r["IoU"][3]) and round(r["mIoU"], 6) == 0.430556


def test_random_batches_match_independent_numpy_and_accumulate_dataset_level():
    g = torch.Generator().manual_seed(0)
    K, preds, labels = 6, [], []
    m = SegmentationMetric(K)
    for _ in range(5):
        label = torch.randint(0, K - 1, (2, 9, 11), generator=g)  # class 5 never in the ground truth
        label[torch.rand(label.shape, generator=g) < 0.2] = 255
        logits = torch.randn(2, K, 9, 11, generator=g)
        logits[:, 4] -= 100  # class 4 never predicted
        m.update(logits, label)  # logits are arg-maxed
        preds += list(logits.argmax(1).numpy())
        labels += list(label.numpy())
    ref = _numpy_mmseg(preds, labels, K)
    r = m.compute()
    np.testing.assert_allclose(r["IoU"], ref["IoU"], equal_nan=True)
    np.testing.assert_allclose(r["Acc"], ref["Acc"], equal_nan=True)
    for key in ("mIoU", "mAcc", "aAcc"):
        assert math.isclose(r[key], ref[key], rel_tol=1e-12)
    assert m.confusion.dtype == torch.int64 and int(m.confusion.sum()) == sum((l != 255).sum() for l in labels)
    # dataset-level != mean of per-image scores (the pitfall the helper illustrates)
    assert not math.isclose(per_image_miou(preds, labels, K), r["mIoU"], rel_tol=1e-3)


def test_per_image_vs_dataset_level_by_hand():
    # image A: big, all right (class 0 + 1). image B: tiny, class 1 entirely wrong.
    a_t = np.array([[0] * 8 + [1] * 8])
    b_t, b_p = np.array([[1, 1]]), np.array([[0, 0]])
    # per-image: A mIoU 1; B: class0 I=0 U=2, class1 I=0 U=2 -> 0. mean 0.5
    assert math.isclose(per_image_miou([a_t, b_p], [a_t, b_t], 2), 0.5)
    m = SegmentationMetric(2)
    m.update(torch.as_tensor(a_t), torch.as_tensor(a_t))
    m.update(torch.as_tensor(b_p), torch.as_tensor(b_t))
    # dataset: class0 I=8 U=10, class1 I=8 U=10 -> 0.8
    assert math.isclose(m.compute()["mIoU"], 0.8)


def test_logits_are_resized_to_the_target_and_single_images_work():
    m = SegmentationMetric(2)
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0, :, 0], logits[0, 1, :, 1] = 5, 5  # left column says class 0, right column class 1
    m.update(logits, torch.tensor([[[0, 0, 1, 1]] * 4]))  # 4x4 target
    assert m.compute()["aAcc"] == 1.0
    m.reset()
    assert int(m.confusion.sum()) == 0
    m.update(torch.tensor([[1, 0]]), torch.tensor([[1, 1]]))  # (H, W) pair
    assert m.confusion.tolist() == [[0, 0], [1, 1]]


def test_merge_equals_one_metric_over_everything():
    g = torch.Generator().manual_seed(3)
    p, t = torch.randint(0, 3, (4, 5, 5), generator=g), torch.randint(0, 3, (4, 5, 5), generator=g)
    whole, a, b = SegmentationMetric(3), SegmentationMetric(3), SegmentationMetric(3)
    whole.update(p, t)
    a.update(p[:1], t[:1])
    b.update(p[1:], t[1:])
    assert torch.equal(a.merge(b).confusion, whole.confusion)
    a.all_reduce()  # no process group: a no-op
    assert torch.equal(a.confusion, whole.confusion)
    assert "mIoU" in whole.report() and len(whole.report().splitlines()) == 5


def test_bad_inputs_raise_clear_errors():
    m = SegmentationMetric(3)
    with pytest.raises(ValueError, match="neither a class"):
        m.update(torch.tensor([[0, 1]]), torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match="predicted labels"):
        m.update(torch.tensor([[0, 3]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="same"):
        m.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="channels"):
        m.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    assert int(m.confusion.sum()) == 0  # nothing was half-counted


def test_confusion_matrix_layout_rows_are_ground_truth():
    c = confusion_matrix(torch.tensor([2, 2, 0]), torch.tensor([1, 2, 255]), 3)
    assert c.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]
