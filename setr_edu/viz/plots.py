"""Pictures of training: loss / mIoU curves from ``log.jsonl`` and image | ground truth | prediction grids.

    >>> import setr_edu.viz.plots as plots
    >>> fig = plots.plot_training_curves({"SETR": "runs/synthetic_cpu", "CNN": "runs/synthetic_cpu_cnn"})  # doctest: +SKIP
    >>> fig = plots.plot_segmentation_grid(images, labels, preds, palette=ds.palette, class_names=ds.class_names)  # doctest: +SKIP

Tensors may live on any device (a GPU, in bfloat16): every helper copies what it draws to the CPU as numpy
arrays first, so results of a model on a GPU can be passed as they are.

``log.jsonl`` (written by ``setr_edu.engine.trainer.Trainer``) holds one JSON object per line: training lines
have ``iter``, ``loss``, ``loss_main``, ``loss_aux*``, ``lr`` ...; validation lines have ``iter`` and ``val_mIoU``,
``val_mAcc``, ``val_aAcc``, ``val_IoU``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.palettes import colorize
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD


def read_log(path: str | Path) -> tuple[list[dict], list[dict]]:
    """``(train_lines, val_lines)`` of a ``log.jsonl`` (or of the ``log.jsonl`` inside a work_dir)."""
    path = Path(path)
    path = path / "log.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}; train first (python -m setr_edu train ...)")
    lines = [json.loads(s) for s in path.read_text().splitlines() if s.strip()]
    return [ln for ln in lines if "loss" in ln], [ln for ln in lines if "val_mIoU" in ln]


def plot_training_curves(runs: str | Path | Mapping[str, str | Path], loss_keys: Sequence[str] = ("loss",),
                         val_key: str = "val_mIoU", figsize=(8, 2.9)):
    """Two panels: training loss(es) and validation ``val_key`` (x100) against iteration, one colour per run.

    ``runs``: a work_dir / log path, or ``{"label": path, ...}`` to compare runs (e.g. SETR vs the CNN baseline).
    ``loss_keys``: e.g. ``("loss_main", "loss_aux0")`` to see the heads separately. Returns the figure.
    """
    import matplotlib.pyplot as plt

    runs = {Path(runs).name: runs} if isinstance(runs, (str, Path)) else dict(runs)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=figsize)
    for i, (label, path) in enumerate(runs.items()):
        train, val = read_log(path)
        colour = f"C{i}"
        for j, key in enumerate(loss_keys):
            pts = [(ln["iter"], ln[key]) for ln in train if ln.get(key) is not None]
            if pts:
                ax_loss.plot(*zip(*pts), color=colour, ls=("-", "--", ":", "-.")[j % 4],
                             label=label if len(loss_keys) == 1 else f"{label}: {key}")
        pts = [(ln["iter"], 100 * ln[val_key]) for ln in val if ln.get(val_key) is not None]
        if pts:
            ax_val.plot(*zip(*pts), "o-", color=colour, label=label, ms=3)
    ax_loss.set(xlabel="iteration", ylabel="training loss", yscale="log", title="loss")
    ax_val.set(xlabel="iteration", ylabel=f"{val_key.removeprefix('val_')} (%)", title=f"validation {val_key[4:]}")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _numpy(x) -> np.ndarray:
    """A tensor on any device, of any dtype (bf16 included), or an array-like -> a numpy array on the CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def to_rgb(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An image for display: ``uint8 (H, W, 3)``. Accepts a normalised float tensor ``(3, H, W)`` (undoes the
    ImageNet normalisation) or an ``(H, W, 3)`` uint8 array."""
    if isinstance(image, torch.Tensor):
        image = _numpy(image).astype(np.float32)
        if image.ndim == 3 and image.shape[0] == 3:  # (3, H, W) normalised -> (H, W, 3) in 0..255
            image = image.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    image = np.asarray(image)
    return np.clip(image, 0, 255).astype(np.uint8) if image.dtype != np.uint8 else image


def colour_labels(label, palette: np.ndarray) -> np.ndarray:
    """``(H, W)`` labels -> ``uint8 (H, W, 3)`` with ``palette``; 255 (ignore) is drawn white."""
    return colorize(label, palette, ignore_colour=(255, 255, 255))  # colorize copies a tensor to the CPU


def plot_segmentation_grid(images, labels=None, preds=None, palette: np.ndarray | None = None,
                           class_names: Sequence[str] | None = None, titles: Sequence[str] = ("image", "ground truth",
                                                                                            "prediction"),
                           max_rows: int = 4, cell: float = 2.0):
    """A grid with one row per sample and columns image | ground truth | prediction (any of them may be None).

    ``images``: normalised tensors ``(B, 3, H, W)`` / a list of ``(3, H, W)``, or uint8 ``(H, W, 3)`` arrays.
    ``labels`` / ``preds``: ``(B, H, W)`` class indices (``preds`` may also be logits ``(B, K, H, W)``).
    ``palette``: ``(K, 3)`` uint8 (e.g. ``dataset.palette``); with ``class_names`` a legend is drawn. Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if preds is not None and isinstance(preds, torch.Tensor) and preds.ndim == 4:
        preds = preds.argmax(1)  # logits -> labels
    columns = [(t, c) for t, c in zip(titles, (images, labels, preds)) if c is not None]
    n = min(max_rows, len(columns[0][1]))
    if palette is None:
        from .palette import generic_palette

        k = int(max(int(_numpy(c[i]).max()) if c is not images else 0 for _, c in columns for i in range(n))) + 1
        palette = generic_palette(max(k, 2))
    fig, axes = plt.subplots(n, len(columns), figsize=(cell * len(columns), cell * n), squeeze=False)
    for row in range(n):
        for col, (title, data) in enumerate(columns):
            ax = axes[row, col]
            item = data[row]
            ax.imshow(to_rgb(item) if data is images else colour_labels(item, palette), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    if class_names is not None:
        handles = [Patch(color=np.asarray(palette[k]) / 255, label=name) for k, name in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(handles) - 1) // 4), 1, 1))
    else:
        fig.tight_layout()
    return fig
