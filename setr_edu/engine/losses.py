"""The training loss of SETR (paper §3.3 and §4; fudan-zvg/SETR ``mmseg/models/losses/cross_entropy_loss.py``).

Pixel-wise cross-entropy with ignore index 255 on the main head, plus ``0.4 x`` the same loss on every
auxiliary head, summed. Logits are bilinearly resized (``align_corners=False``) to the label size first.

**Averaging.** The official code (mmsegmentation 0.6) computes the per-pixel loss with ``reduction='none'``
(ignored pixels contribute 0) and then takes the mean over **all** pixels, ignored ones included. That is our
default. ``avg_non_ignore=True`` divides by the number of labelled pixels instead (PyTorch's
``F.cross_entropy(..., ignore_index=255)``; mmseg 1.x option of the same name). The two differ by the factor
``labelled / all`` pixels, so with many ignored (e.g. padded) pixels the official loss is smaller and its
gradients are weaker.

    >>> import torch
    >>> logits, target = torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 1], [255, 255]]])
    >>> round(pixel_cross_entropy(logits, target).item(), 4), round(pixel_cross_entropy(logits, target, avg_non_ignore=True).item(), 4)
    (0.5493, 1.0986)
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


def check_labels(target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
    """Raise a clear ``ValueError`` if ``target`` holds a value that is neither a class nor ``ignore_index``
    (on CUDA such a value would otherwise end in an unreadable device-side assert)."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        values = torch.unique(target[bad])[:10].tolist()
        raise ValueError(f"label values {values} are neither a class in [0, {num_classes}) nor the ignore index "
                         f"{ignore_index}; check the dataset's label encoding (e.g. ADE20K needs reduce_zero_label, "
                         f"Cityscapes needs *_labelTrainIds.png) and the model's num_classes")


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                        avg_non_ignore: bool = False, weight: torch.Tensor | None = None,
                        check: bool = True) -> torch.Tensor:
    """Cross-entropy of ``logits (B, K, h, w)`` against ``target (B, H, W)`` (int64), a scalar.

    Logits are resized to ``(H, W)`` if needed (bilinear, align_corners=False). ``avg_non_ignore=False`` (the
    official code's choice) averages over all ``B*H*W`` pixels; ``True`` over the non-ignored ones only.
    ``weight``: optional per-class weights ``(K,)`` (not used by SETR). ``check``: validate label values.
    """
    if logits.ndim != 4 or target.ndim != 3 or logits.shape[0] != target.shape[0]:
        raise ValueError(f"expected logits (B, K, H, W) and target (B, H, W), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if check:
        check_labels(target, logits.shape[1], ignore_index)
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    loss = F.cross_entropy(logits.float(), target.long(), weight=weight, ignore_index=ignore_index,
                           reduction="none")  # (B, H, W), exactly 0 at ignored pixels
    if avg_non_ignore:
        denom = (target != ignore_index).sum().clamp_min(1)
    else:
        denom = target.numel()
    return loss.sum() / denom


def setr_loss(logits: torch.Tensor, target: torch.Tensor, aux_logits: Sequence[torch.Tensor] = (),
              aux_weight: float | Sequence[float] = 0.4, ignore_index: int = IGNORE_INDEX,
              avg_non_ignore: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``loss = CE(main) + sum_i aux_weight_i * CE(aux_i)``.

    Returns ``(loss, parts)``: ``loss`` to back-propagate and ``parts``, detached scalars for logging:
    ``{"loss": ..., "loss_main": ..., "loss_aux0": ..., "loss_aux1": ...}`` (aux parts unweighted).
    """
    aux_logits = list(aux_logits)
    weights = [aux_weight] * len(aux_logits) if isinstance(aux_weight, (int, float)) else list(aux_weight)
    if len(weights) != len(aux_logits):
        raise ValueError(f"got {len(aux_logits)} auxiliary outputs but {len(weights)} aux weights")
    main = pixel_cross_entropy(logits, target, ignore_index, avg_non_ignore)
    total, parts = main, {"loss_main": main.detach()}
    for i, (aux, w) in enumerate(zip(aux_logits, weights)):
        aux_loss = pixel_cross_entropy(aux, target, ignore_index, avg_non_ignore, check=False)
        total = total + w * aux_loss
        parts[f"loss_aux{i}"] = aux_loss.detach()
    parts["loss"] = total.detach()
    return total, parts


class SETRLoss(nn.Module):
    """Module form of :func:`setr_loss`; accepts the model output directly.

        >>> criterion = SETRLoss()                           # doctest: +SKIP
        >>> loss, parts = criterion(model(x, with_aux=True), y)  # doctest: +SKIP

    ``outputs`` is either main logits ``(B, K, H, W)`` or ``(logits, [aux_logits, ...])`` as returned by
    ``SETR.forward(x, with_aux=True)``.
    """

    def __init__(self, aux_weight: float | Sequence[float] = 0.4, ignore_index: int = IGNORE_INDEX,
                 avg_non_ignore: bool = False):
        super().__init__()
        self.aux_weight, self.ignore_index, self.avg_non_ignore = aux_weight, ignore_index, avg_non_ignore

    def forward(self, outputs, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, aux = (outputs, ()) if isinstance(outputs, torch.Tensor) else outputs
        return setr_loss(logits, target, aux, self.aux_weight, self.ignore_index, self.avg_non_ignore)

    def extra_repr(self) -> str:
        return f"aux_weight={self.aux_weight}, ignore_index={self.ignore_index}, avg_non_ignore={self.avg_non_ignore}"
