"""Assignment A5: mean IoU from a confusion matrix, the way SETR's benchmarks count it (mmsegmentation semantics).

Interfaces the assignment asks for:

* ``confusion_matrix(pred, target, num_classes, ignore_index=255) -> (K, K)`` integer counts, row = true class,
  column = predicted class; pixels whose target is ``ignore_index`` are left out.
* ``iou_from_confusion(conf) -> (K,)``: ``IoU_c = TP / (TP + FP + FN)``; NaN for a class that appears neither in
  the targets nor in the predictions (its union is empty).
* ``mean_iou(pairs, num_classes, ignore_index=255) -> float``: mIoU of a whole dataset, ``pairs`` an iterable of
  ``(pred, target)`` label maps ``(H, W)``: one confusion matrix summed over every image, then the mean of the
  per-class IoUs that are not NaN. Reference: :class:`setr_edu.engine.metrics.SegmentationMetric`.
"""
from __future__ import annotations

import math

import torch

from .compare import close, dependency_note, diagnose, with_reference
from .result import CheckResult, Grader

IGNORE = 255


def labels(shape, num_classes: int, seed: int, ignore_frac: float = 0.0, present=None) -> torch.Tensor:
    """A reproducible label map; ``present`` restricts the classes used; a fraction of pixels set to 255."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.tensor(present if present is not None else range(num_classes))
    t = classes[torch.randint(len(classes), shape, generator=g)]
    if ignore_frac:
        t[torch.rand(shape, generator=g) < ignore_frac] = IGNORE
    return t


def reference_metric(pairs, num_classes: int, ignore_index: int = IGNORE) -> dict:
    """The library's dataset-level metric over ``(pred, target)`` pairs: ``compute()`` of ``SegmentationMetric``."""
    from ..engine.metrics import SegmentationMetric

    metric = SegmentationMetric(num_classes, ignore_index=ignore_index)
    for pred, target in pairs:
        metric.update(pred[None], target[None])
    return metric.compute()


def as_float(value) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.double().reshape(()))
    return float(value)


def reference_miou(pairs, num_classes: int, ignore_index: int = IGNORE) -> float:
    """The library's mIoU as a fraction in [0, 1] (a metric that reports percent is scaled back)."""
    value = as_float(reference_metric(pairs, num_classes, ignore_index)["mIoU"])
    return value / 100 if value > 1 else value


def reference_iou(conf: torch.Tensor) -> torch.Tensor:
    """Per-class IoU of a confusion matrix, computed by the library: each count becomes that many pixels."""
    K = conf.shape[0]
    t = torch.arange(K).repeat_interleave(conf.sum(1))  # row = true class
    p = torch.cat([torch.arange(K).repeat_interleave(row) for row in conf])  # column = prediction, row by row
    iou = torch.as_tensor(reference_metric([(p[None], t[None])], K)["IoU"], dtype=torch.float64)
    return iou / 100 if torch.nan_to_num(iou).max() > 1 else iou


def confusion_reference(pred, target, K, transposed=False, ignore_index=IGNORE, wrap=False):
    """The reference counts; ``wrap``: what uint8 arithmetic gives (``K * target + pred`` modulo 256)."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if transposed:
        t, p = p, t
    index = (K * t + p) % 256 if wrap else K * t + p
    return torch.bincount(index, minlength=K * K)[: K * K].reshape(K, K)


def reference_confusion(pred, target, num_classes, ignore_index=IGNORE):
    """The library's ``confusion_matrix``: what ``mean_iou`` runs on instead of the student's part 1."""
    from ..engine.metrics import confusion_matrix

    return confusion_matrix(pred, target, num_classes, ignore_index)


def _counts(fn, g, pred, target, K, ignore_index):
    out = g.call(fn, pred, target, K, ignore_index=ignore_index, what="confusion_matrix changes pred or target")
    return (torch.as_tensor(out) if not isinstance(out, torch.Tensor) else out).double()


def ignore_probe(fn, K: int) -> str:
    """What the student's ``confusion_matrix`` does with ignore labels, named from two probes (or ``""``):
    a prediction that holds 255 where the target is valid (masked on the prediction?), and a target with ignore
    pixels whose counts add up to every pixel (ignore pixels counted)."""
    pred, target = labels((2, 6, 7), K, seed=40), labels((2, 6, 7), K, seed=41)
    pred_255 = pred.clone()
    pred_255[:, 0, :3] = IGNORE
    try:
        out = torch.as_tensor(fn(pred_255, target.clone(), K, ignore_index=IGNORE)).double()
        if float(out.sum()) == target.numel() - 6:
            return ("the ignore mask is taken on the prediction (pred != ignore_index); ignore pixels are marked "
                    "in the TARGET: keep = target != ignore_index, then count pred[keep], target[keep].")
    except Exception:
        pass
    target_ig = labels((2, 6, 7), K, seed=42, ignore_frac=0.25)
    try:
        out = torch.as_tensor(fn(pred.clone(), target_ig.clone(), K, ignore_index=IGNORE)).double()
        if float(out.sum()) == target_ig.numel():
            return (f"pixels whose target is {IGNORE} (ignore) are counted: the counts add up to all "
                    f"{target_ig.numel()} pixels (clamped into a class?). Leave them out first: keep = target != "
                    "ignore_index.")
    except Exception:
        pass
    return ""


def check_confusion_matrix(fn, verbose: bool = True) -> CheckResult:
    """Grade ``fn(pred, target, num_classes, ignore_index=255) -> (K, K)``."""
    g = Grader("A5", "confusion_matrix", "confusion matrix", tests=5, verbose=verbose)
    with g.run():
        from ..engine import metrics

        if fn is metrics.confusion_matrix:
            g.fail("this is setr_edu's own confusion_matrix: write your own function", stop=True)
        K = 4
        pred, target = labels((2, 6, 7), K, seed=0), labels((2, 6, 7), K, seed=1)
        want = confusion_reference(pred, target, K)
        out = _counts(fn, g, pred, target, K, IGNORE)
        if close(out, want.double()):
            g.ok(f"counts right on 2 images of 6x7 pixels, {K} classes")
        else:
            transposed = close(out, confusion_reference(pred, target, K, transposed=True).double())
            shape = "" if out.shape == want.shape else f"; expected shape ({K}, {K}), got {tuple(out.shape)}"
            g.fail(f"counts differ (2 images of 6x7 pixels, {K} classes{shape})",
                   "rows and columns are swapped: row = the TRUE class, column = the predicted class"
                   if transposed else "entry [i, j] counts the pixels of true class i predicted as j; "
                   "torch.bincount(num_classes * target + pred, minlength=num_classes**2) does it in one call",
                   stop=True)
        target_ig = labels((2, 6, 7), K, seed=2, ignore_frac=0.25)
        want = confusion_reference(pred, target_ig, K)
        try:
            out = _counts(fn, g, pred, target_ig, K, IGNORE)
        except (IndexError, RuntimeError) as exc:
            g.fail(f"crashed on targets that contain ignore pixels (255): {type(exc).__name__}: {exc}",
                   [ignore_probe(fn, K) or "drop them first: keep = target != ignore_index; pred, target = "
                    "pred[keep], target[keep]"], stop=True)
        g.test(close(out, want.double()), "pixels whose target is 255 (ignore) are left out",
               "wrong counts when the targets contain ignore pixels (255)",
               [ignore_probe(fn, K) or f"the counts must sum to the {int((target_ig != IGNORE).sum())} "
                f"non-ignored pixels, got {int(out.sum())}: select pixels with target != ignore_index (the "
                "prediction is never 255)"])
        K2, p2, t2 = 6, labels((3, 5), 6, seed=3, present=[0, 2, 5]), labels((3, 5), 6, seed=4, present=[0, 1, 2])
        g.test(close(_counts(fn, g, p2, t2, K2, IGNORE), confusion_reference(p2, t2, K2).double()),
               "also right for 6 classes on a single 3x5 map (nothing hard-coded)",
               "right for the first example but not for 6 classes on a single 3x5 map",
               "take K from num_classes and do not assume a batch dimension: flatten everything")
        # uint8 labels, as real datasets return them, with 40 classes: K * target + pred does not fit in uint8
        K3 = 40
        p3 = labels((2, 9, 11), K3, seed=5).to(torch.uint8)
        t3 = labels((2, 9, 11), K3, seed=6, ignore_frac=0.1).to(torch.uint8)
        try:
            out3, err = _counts(fn, g, p3, t3, K3, IGNORE), ""
        except (IndexError, RuntimeError) as exc:
            out3, err = None, f" ({type(exc).__name__}: {exc})"
        wrapped = out3 is not None and close(out3, confusion_reference(p3, t3, K3, wrap=True).double())
        g.test(out3 is not None and close(out3, confusion_reference(p3, t3, K3).double()),
               f"also right for uint8 labels with {K3} classes (as datasets return them)",
               f"wrong for uint8 label maps with {K3} classes{err}",
               "uint8 arithmetic overflows: num_classes * target + pred is computed modulo 256. Convert the "
               "labels to int64 first (target.long(), pred.long())." if wrapped else
               "convert the labels to int64 (.long()) before computing indices; uint8 holds only 0..255")
        # another ignore label: the argument must be used, not a hard-coded 255
        t4 = target_ig.clone()
        t4[t4 == IGNORE] = -1
        try:
            out4, err = _counts(fn, g, pred, t4, K, -1), ""
        except (IndexError, RuntimeError) as exc:
            out4, err = None, f" ({type(exc).__name__}: {exc})"
        g.test(out4 is not None and close(out4, confusion_reference(pred, t4, K, ignore_index=-1).double()),
               "uses its ignore_index argument (also right with ignore_index=-1)",
               f"wrong with ignore_index=-1{err}",
               "leave out the pixels whose target equals the ignore_index argument: keep = target != ignore_index "
               "(is 255 hard-coded, or do you keep target < num_classes? -1 passes that test)")
    return g.finish()


def iou_variant(conf, formula="iou", absent="nan"):
    conf = conf.double()
    tp, gt, pr = conf.diag(), conf.sum(1), conf.sum(0)
    num, den = {"iou": (tp, gt + pr - tp), "acc": (tp, gt), "prec": (tp, pr), "double": (tp, gt + pr),
                "dice": (2 * tp, gt + pr)}[formula]
    out = num / den
    return torch.nan_to_num(out, nan=0.0) if absent == "zero" else out


IOU_AXES = {
    "formula": {"iou": None,
                "acc": "that is TP / (pixels of the class), the per-class accuracy (recall); IoU divides by the "
                       "union TP + FP + FN = row sum + column sum - TP.",
                "prec": "that is TP / (predicted pixels of the class), the precision; IoU divides by the union "
                        "TP + FP + FN = row sum + column sum - TP.",
                "double": "the union counts the intersection twice: union = row sum + column sum - TP.",
                "dice": "that is the Dice / F1 score 2TP / (row sum + column sum); IoU is TP / (row sum + column "
                        "sum - TP)."},
    "absent": {"nan": None,
               "zero": "a class that appears neither in the targets nor in the predictions gets IoU 0; it must be "
                       "NaN so that the mean can leave it out (0/0 gives NaN in floating point)."},
}


def check_iou(fn, verbose: bool = True) -> CheckResult:
    """Grade ``fn(conf) -> (K,)`` per-class IoU with NaN for empty classes, against the library's metric."""
    g = Grader("A5", "iou", "IoU per class", tests=3, verbose=verbose)
    with g.run():
        # class 3 appears nowhere (IoU NaN); class 4 is only predicted (IoU 0); the rest overlap partially
        conf = torch.tensor([[5, 1, 0, 0, 2], [2, 7, 1, 0, 0], [0, 3, 4, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
        want = reference_iou(conf)
        try:
            out = g.call(fn, conf, what="iou_from_confusion changes conf")
        except RuntimeError as exc:
            if "ZeroDivision" not in str(exc):
                raise
            g.fail(f"integer division by zero for the class that appears nowhere ({exc})",
                   "integer division: the counts are integers, so tp // union (or tp / union on integer tensors "
                   "in older code) divides integers and 0 // 0 fails. Convert to float first (conf = "
                   "conf.double()): then 0 / 0 gives the NaN that marks an absent class.", stop=True)
        out = torch.as_tensor(out, dtype=torch.float64) if not isinstance(out, torch.Tensor) else out.double()
        g.test(out.shape == want.shape, f"returns one IoU per class, shape {tuple(want.shape)}",
               f"expected shape (K,) = {tuple(want.shape)}, got {tuple(out.shape)}", stop=True)
        if close(out, want):
            g.ok("IoU = TP / (TP + FP + FN), NaN for a class absent from targets and predictions, 0 for a class "
                 "that is only predicted")
        else:
            bugs = diagnose(out, IOU_AXES, lambda **o: iou_variant(conf, **o))
            g.fail("IoU values differ", bugs or f"expected {[round(v, 3) for v in want.tolist()]}, got "
                                                f"{[round(v, 3) for v in out.tolist()]}", stop=True)
        conf2 = torch.tensor([[3, 0, 1], [4, 2, 0], [0, 0, 6]])
        out2 = torch.as_tensor(g.call(fn, conf2, what="iou_from_confusion changes conf")).double()
        g.test(close(out2, reference_iou(conf2)), "also right for a 3-class matrix (nothing hard-coded)",
               "right for the first matrix but not for a 3-class one")
    return g.finish()


def dataset_variant(pairs, K, per_image="no", absent="nan", ignore="dropped", images="all"):
    """mIoU with the mistakes of :data:`MIOU_AXES` switched on."""
    pairs = {"all": pairs, "last": pairs[-1:], "first": pairs[:1]}[images]
    def per_class(group):
        tp, gt, pr = torch.zeros(K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64)
        for p, t in group:
            keep = t != IGNORE
            for c in range(K):
                tp[c] += ((p == c) & (t == c) & keep).sum()
                gt[c] += ((t == c) & keep).sum()
                pr[c] += ((p == c) & (keep if ignore == "dropped" else torch.ones_like(keep))).sum()
        iou = tp / (gt + pr - tp)
        return torch.nan_to_num(iou, nan=0.0) if absent == "zero" else iou

    def mean(iou):
        return float(iou[~torch.isnan(iou)].mean()) if (~torch.isnan(iou)).any() else math.nan

    if per_image == "yes":
        return sum(mean(per_class([pt])) for pt in pairs) / len(pairs)
    return mean(per_class(pairs))


MIOU_AXES = {
    "per_image": {"no": None,
                  "yes": "the IoU is averaged per image, then over images. SETR's benchmarks (mmsegmentation) sum "
                         "ONE confusion matrix over the whole dataset and compute each class's IoU once from it, "
                         "so that every pixel weighs the same."},
    "absent": {"nan": None,
               "zero": "classes that never appear (in targets or predictions) are averaged in as 0; leave their "
                       "NaN out of the mean (torch.nanmean or iou[~iou.isnan()].mean())."},
    "ignore": {"dropped": None,
               "counted": "pixels labelled 255 (ignore) are counted: their predictions add false positives. Drop "
                          "every pixel whose target is ignore_index before counting."},
    "images": {"all": None,
               "last": "only the last image is counted: the confusion matrix is replaced in the loop (conf = ...) "
                       "instead of summed (conf += ...) over all images.",
               "first": "only the first image is counted: sum the confusion matrices of ALL images (did the loop "
                        "return early?)."},
}


def reference_iou_from_confusion(conf) -> torch.Tensor:
    """The reference ``iou_from_confusion``: what ``mean_iou`` runs on instead of the student's part 2."""
    return iou_variant(torch.as_tensor(conf))


def check_miou(fn, verbose: bool = True) -> CheckResult:
    """Grade ``fn(pairs, num_classes, ignore_index=255) -> float`` against ``SegmentationMetric``.

    Parts 1 and 2 (``confusion_matrix``, ``iou_from_confusion``) are replaced by the reference while this runs,
    so a bug there costs points once."""
    g = Grader("A5", "miou", "dataset mIoU", tests=5, verbose=verbose)
    deps = {"confusion_matrix": reference_confusion, "iou_from_confusion": reference_iou_from_confusion}
    with g.run(), with_reference(fn, deps) as swapped:
        K = 4  # class 3 never appears; images of different sizes; some pixels ignored
        sizes = [(6, 7), (3, 4), (8, 5)]
        pairs = [(labels(s, K, seed=20 + i, present=[0, 1, 2]), labels(s, K, seed=30 + i, ignore_frac=0.2, present=[0, 1, 2]))
                 for i, s in enumerate(sizes)]
        pairs[1] = (pairs[1][0], torch.where(pairs[1][1] == 2, 0, pairs[1][1]))  # class 2 absent from image 2's targets
        want = reference_miou(pairs, K)
        miou = lambda ps, k, ignore=IGNORE: g.call(fn, ps, k, ignore_index=ignore,  # noqa: E731
                                                   what="mean_iou changes the label maps")
        out = miou(pairs, K)
        try:
            value = as_float(out)
        except (TypeError, ValueError, RuntimeError):
            g.fail(f"expected a single number (the mIoU), got {type(out).__name__}", stop=True)
        g.test(0.0 <= value <= 1.0, f"returns a number in [0, 1] ({value:.4f})",
               f"returned {value:.4f}; the mIoU is a fraction in [0, 1]",
               "return a fraction, not a percentage" if 1 < value <= 100 else "", stop=True)
        if abs(value - want) < 1e-6:
            g.ok("matches setr_edu.engine.metrics.SegmentationMetric on 3 images of different sizes")
        else:
            bugs = diagnose(torch.tensor(value), MIOU_AXES, lambda **o: torch.tensor(dataset_variant(pairs, K, **o)))
            g.fail(f"mIoU {value:.4f} differs from SegmentationMetric's {want:.4f} on 3 images of different sizes",
                   bugs or "sum one confusion matrix over all images, then iou_from_confusion, then the mean of the "
                           "non-NaN entries", stop=True)
        pairs2 = [(labels((4, 4), 5, seed=40, present=[0, 1, 4]), labels((4, 4), 5, seed=41, present=[0, 1]))]
        g.test(abs(as_float(miou(pairs2, 5)) - reference_miou(pairs2, 5)) < 1e-6,
               "also right with 5 classes where one class is only predicted (nothing hard-coded)",
               "right for the first dataset but not for one with 5 classes where class 4 is only predicted",
               "a class that is predicted but never true has IoU 0 and DOES count in the mean")
        pairs3 = [(p, torch.where(t == IGNORE, -1, t)) for p, t in pairs]  # the same data, ignore label -1
        try:
            v3, err = as_float(miou(pairs3, K, -1)), ""
        except (IndexError, RuntimeError, ValueError) as exc:
            v3, err = None, f" ({type(exc).__name__}: {exc})"
        g.test(v3 is not None and abs(v3 - want) < 1e-6, "passes its ignore_index on (also right with ignore_index=-1)",
               f"wrong with ignore_index=-1{err}",
               "give ignore_index to confusion_matrix (confusion_matrix(pred, target, num_classes, ignore_index)); "
               "its default, 255, is not always the dataset's ignore label")
        K4 = 60  # uint8 label maps, as datasets return them, with many classes
        pairs4 = [(labels((7, 9), K4, seed=50 + i).to(torch.uint8),
                   labels((7, 9), K4, seed=60 + i, ignore_frac=0.1).to(torch.uint8)) for i in range(2)]
        try:
            v4, err = as_float(miou(pairs4, K4)), ""
        except (IndexError, RuntimeError, ValueError) as exc:
            v4, err = None, f" ({type(exc).__name__}: {exc})"
        g.test(v4 is not None and abs(v4 - reference_miou(pairs4, K4)) < 1e-6,
               f"also right for uint8 label maps with {K4} classes",
               f"wrong for uint8 label maps with {K4} classes{err}",
               "uint8 arithmetic wraps around at 256: convert the label maps to int64 (.long()) before counting")
        if swapped.active:
            g.note(dependency_note("confusion_matrix / iou_from_confusion", swapped,
                                   lambda: abs(as_float(fn(pairs, K, ignore_index=IGNORE)) - want) < 1e-6))
    return g.finish()
