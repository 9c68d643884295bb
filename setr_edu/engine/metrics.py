"""Segmentation metrics with mmsegmentation semantics (the numbers in SETR's tables; reference §5).

Everything derives from one **dataset-level confusion matrix** ``C (K, K)``: ``C[t, p]`` counts pixels of
ground-truth class ``t`` predicted as ``p``, summed over the whole validation set (not averaged per image).

* pixels whose **label** is the ignore index (255) are removed; the prediction is never masked;
* ``IoU_k = C[k,k] / (sum_p C[k,p] + sum_t C[t,k] - C[k,k])``: intersection over union of class k;
  a class absent from both prediction and ground truth gives 0/0 = NaN and is left out of the mean
  (``mIoU = nanmean(IoU)``); a class only predicted (never in the ground truth) gives IoU 0;
* ``Acc_k = C[k,k] / sum_p C[k,p]`` (recall of class k, NaN if absent from the ground truth), ``mAcc = nanmean``;
* ``aAcc = trace(C) / sum(C)``: the fraction of labelled pixels that are right.

All values are fractions in [0, 1] (mmseg prints them x100).

    >>> import torch
    >>> m = SegmentationMetric(num_classes=3)
    >>> m.update(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 255, 1]]))
    >>> r = m.compute()
    >>> [round(v, 3) for v in r["IoU"].tolist()], round(r["mIoU"], 3), round(r["aAcc"], 3)
    ([1.0, 0.5, 0.0], 0.5, 0.667)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .losses import check_labels

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``(K, K)`` int64 confusion matrix (rows: ground truth, columns: prediction) of label maps of equal shape.
    Pixels whose target is ``ignore_index`` are dropped. One ``bincount`` over ``target * K + pred``."""
    keep = target != ignore_index
    index = target[keep].long() * num_classes + pred[keep].long()  # (N,) in [0, K*K)
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def metrics_from_confusion(confusion: torch.Tensor | np.ndarray) -> dict:
    """``{"mIoU", "mAcc", "aAcc", "IoU" (K,), "Acc" (K,)}`` from a dataset-level confusion matrix."""
    c = torch.as_tensor(confusion).double().cpu()
    intersect = c.diag()  # (K,)
    area_label, area_pred = c.sum(1), c.sum(0)  # ground-truth pixels per class, predicted pixels per class
    union = area_label + area_pred - intersect
    iou = intersect / union  # 0/0 -> NaN for classes absent from both (torch follows IEEE here)
    acc = intersect / area_label
    total = c.sum()
    return {
        "mIoU": _nanmean(iou),
        "mAcc": _nanmean(acc),
        "aAcc": float(intersect.sum() / total) if total > 0 else float("nan"),
        "IoU": iou.numpy(),
        "Acc": acc.numpy(),
    }


def _nanmean(x: torch.Tensor) -> float:
    return float(x.nanmean()) if not torch.isnan(x).all() else float("nan")


class SegmentationMetric:
    """Dataset-level mIoU / mAcc / aAcc, accumulated over ``update`` calls.

    Args:
        num_classes: the number of classes K.
        ignore_index: the label value to skip (255).
        class_names: optional names for :meth:`report`.
        device: where the confusion matrix lives (the rank's GPU for :meth:`all_reduce` with NCCL).

    ``update(pred, target)``: ``pred`` logits ``(B, K, H, W)`` (arg-maxed; resized bilinearly to the target's
    size if they differ) or labels ``(B, H, W)``; ``target`` labels ``(B, H, W)``. ``compute()`` -> dict (see the
    module docstring). The state is the int64 tensor ``confusion (K, K)``: with DistributedDataParallel,
    ``all_reduce`` it (or call :meth:`all_reduce`) before ``compute`` so every rank reports the whole set;
    :meth:`merge` adds another metric's counts.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, class_names=None,
                 device: torch.device | str | None = None):
        self.num_classes, self.ignore_index = int(num_classes), ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names given for {num_classes} classes")
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        """Zero the counts (start a new evaluation)."""
        self.confusion.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` logits ``(B, K, H, W)`` or labels ``(B, H, W)``, ``target`` labels ``(B, H, W)``."""
        target = torch.as_tensor(target)
        pred = torch.as_tensor(pred)
        if target.ndim == 2:  # a single image: target (H, W), pred (H, W) labels or (K, H, W) logits
            target, pred = target[None], pred[None]
        if pred.ndim == 4:  # logits (B, K, h, w)
            if pred.shape[1] != self.num_classes:
                raise ValueError(f"logits have {pred.shape[1]} channels but the metric has {self.num_classes} classes")
            if pred.shape[-2:] != target.shape[-2:]:
                pred = F.interpolate(pred.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} must have the same "
                             f"shape (B, H, W); resize label predictions with mode='nearest' or pass logits")
        check_labels(target, self.num_classes, self.ignore_index)
        if bool(((pred < 0) | (pred >= self.num_classes)).any()):
            raise ValueError(f"predicted labels must lie in [0, {self.num_classes}), got values "
                             f"{torch.unique(pred[(pred < 0) | (pred >= self.num_classes)])[:10].tolist()}")
        c = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        if self.confusion.device != c.device:
            self.confusion = self.confusion.to(c.device)
        self.confusion += c

    def compute(self) -> dict:
        """``{"mIoU", "mAcc", "aAcc", "IoU" (K,), "Acc" (K,)}`` of everything added so far."""
        return metrics_from_confusion(self.confusion)

    def merge(self, other: "SegmentationMetric") -> "SegmentationMetric":
        """Add ``other``'s counts to this metric (e.g. metrics gathered from workers); returns ``self``."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError("cannot merge metrics with different num_classes or ignore_index")
        self.confusion += other.confusion.to(self.confusion.device)
        return self

    def all_reduce(self) -> None:
        """Sum the confusion matrix over all DDP ranks (no-op when torch.distributed is not initialised).
        With the NCCL backend the metric must live on the rank's GPU (``device=...``)."""
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.confusion, op=dist.ReduceOp.SUM)

    def report(self, digits: int = 2) -> str:
        """A per-class table (IoU and Acc in %) followed by the summary, like mmseg's evaluation log."""
        r = self.compute()
        names = self.class_names or [str(k) for k in range(self.num_classes)]
        width = max(8, max(len(n) for n in names))
        lines = [f"{'class':<{width}}  {'IoU':>7}  {'Acc':>7}"]
        for name, iou, acc in zip(names, r["IoU"], r["Acc"]):
            lines.append(f"{name:<{width}}  {100 * iou:7.{digits}f}  {100 * acc:7.{digits}f}")
        lines.append(f"mIoU {100 * r['mIoU']:.{digits}f}  mAcc {100 * r['mAcc']:.{digits}f}  "
                     f"aAcc {100 * r['aAcc']:.{digits}f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SegmentationMetric(num_classes={self.num_classes}, ignore_index={self.ignore_index}, pixels={int(self.confusion.sum())})"


def per_image_miou(preds, targets, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """The **wrong** way for a dataset score, kept to show the pitfall: the mean over images of each image's
    mIoU (nanmean over the classes present in that image's prediction or label). Small images and rare classes
    weigh as much as large ones, so this differs from the dataset-level :class:`SegmentationMetric`
    (and from the paper's numbers). ``preds``/``targets``: iterables of label maps ``(H, W)`` or batches."""
    scores = []
    for pred, target in zip(preds, targets):
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        pred, target = pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])
        for p, t in zip(pred, target):
            scores.append(metrics_from_confusion(confusion_matrix(p, t, num_classes, ignore_index))["mIoU"])
    return float(np.nanmean(scores))
