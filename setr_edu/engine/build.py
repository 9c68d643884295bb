"""Recipe -> objects: the model, the datasets and pretrained weights. Plain functions, no registry.

    >>> from setr_edu.recipes import get_recipe
    >>> r = get_recipe("synthetic_ci")
    >>> train_set, val_set = build_datasets(r)
    >>> model = build_model(r, train_set.num_classes)
    >>> type(model).__name__, len(train_set), len(val_set)
    ('SETR', 32, 8)
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from ..io import load_checkpoint_file
from ..recipes import Recipe

def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """SETR (``recipe.model == "setr"``) or the local CNN baseline (``"cnn"``), randomly initialised."""
    if recipe.model == "cnn":
        from ..model.baseline import build_local_cnn

        return build_local_cnn(num_classes, width=recipe.cnn_width, aux=recipe.aux)
    from ..model.setr import build_setr

    return build_setr(recipe.decoder, recipe.encoder, num_classes=num_classes, img_size=recipe.crop_size,
                      aux=recipe.aux, decoder_channels=recipe.decoder_channels, **recipe.encoder_overrides)


def load_pretrained(model: nn.Module, recipe: Recipe, log=print) -> None:
    """ImageNet ViT weights into ``model.encoder``: ``pretrained="paper"`` downloads the paper's file for the
    recipe's encoder, ``"deit"`` the DeiT-B file of the -DeiT rows (needs internet, cached, SHA-256 checked),
    ``"timm:<tag>"`` a named substitute, a path a timm-layout state dict. Nothing happens for ``pretrained=""``."""
    if not recipe.pretrained:
        return
    if not hasattr(model, "encoder"):
        raise ValueError(f"pretrained={recipe.pretrained!r} needs a SETR model; model={recipe.model!r} has no ViT encoder")
    from ..model.pretrained import PAPER_WEIGHTS, load_timm_weights, paper_weights

    source = recipe.pretrained
    if recipe.pretrained == "paper" or recipe.pretrained in PAPER_WEIGHTS or recipe.pretrained.startswith("timm:"):
        state, source = paper_weights(recipe.encoder if recipe.pretrained == "paper" else recipe.pretrained)
    else:
        path = Path(recipe.pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained={recipe.pretrained!r}: no such file. Use pretrained=paper to download "
                                    f"the paper's ImageNet-21k ViT, or pretrained='' to train from scratch.")
        state = load_checkpoint_file(path)  # tensors and numbers only: nothing in the file can run
    log(f"pretrained encoder: {load_timm_weights(model.encoder, state, source=source)}")


def check_data_root(recipe: Recipe) -> Path:
    """Refuse a missing dataset folder before any work starts, saying where to get the data."""
    from ..data.download import instructions

    root = Path(recipe.data_root or f"data/{recipe.dataset}")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} for dataset={recipe.dataset!r} does not exist; pass "
                                f"data_root=<folder> (or --data-root) once you have it.\n\n{instructions(recipe.dataset)}")
    return root


def build_datasets(recipe: Recipe, splits: tuple[str, ...] = ("train", "val")) -> tuple:
    """The recipe's datasets, one per split; items are ``(image float (3, H, W), label int64 (H, W))``.

    Training uses the paper's augmentation (random resize ``ratio_range`` of ``train_scale``, crop with
    ``cat_max_ratio``, flip, photometric distortion, normalise, pad), seeded per ``(seed, epoch, index)``;
    validation resizes to ``test_scale``. A missing folder is refused with download instructions.
    The synthetic task is generated at ``crop_size`` and needs no augmentation.
    """
    if recipe.dataset == "synthetic":
        from ..data.synthetic import SyntheticContextDataset

        sizes = dict(train=recipe.num_train, val=recipe.num_val, test=recipe.num_val)
        return tuple(CachedDataset(SyntheticContextDataset(sizes[s], img_size=recipe.crop_size, seed=recipe.seed,
                                                           split=s, **recipe.synthetic)) for s in splits)
    root = check_data_root(recipe)
    from ..data import datasets as D
    from ..data.pipelines import test_pipeline, train_pipeline

    cls = dict(ade20k="ADE20K", cityscapes="Cityscapes", pascal_context="PascalContext", folder="FolderDataset")
    dataset_cls = getattr(D, cls[recipe.dataset])
    out = []
    for split in splits:
        if split == "train":
            scale = recipe.train_scale if any(recipe.train_scale) else (recipe.crop_size, recipe.crop_size)
            tf = train_pipeline(recipe.crop_size, scale, recipe.ratio_range, recipe.cat_max_ratio)
        else:
            tf = test_pipeline(recipe.test_scale if any(recipe.test_scale) else None,
                               short_side=recipe.dataset == "pascal_context")  # paper-era official test resize
        out.append(dataset_cls(root, split=split, transforms=tf, transform_seed=recipe.seed))
    return tuple(out)


class CachedDataset(Dataset):
    """Keeps the items of a deterministic dataset (the synthetic task: no random augmentation) in memory after
    their first use, so later epochs cost nothing. Images stay float32, labels are stored as uint8.
    Attributes (``num_classes``, ``class_names``, ``palette``, ``get_raw`` ...) pass through to the dataset."""

    def __init__(self, dataset):
        self.dataset, self._items = dataset, {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if index not in self._items:
            image, label = self.dataset[index]
            self._items[index] = (image, label.to(torch.uint8))
        image, label = self._items[index]
        return image, label.long()

    def __getattr__(self, name):  # only called for attributes CachedDataset itself does not have
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def dataset_info(dataset) -> dict:
    """``num_classes``, ``class_names`` and ``palette`` of a dataset (with fallbacks for plain datasets)."""
    n = getattr(dataset, "num_classes", None)
    names = getattr(dataset, "class_names", None) or (tuple(str(i) for i in range(n)) if n else None)
    return dict(num_classes=n, class_names=tuple(names) if names else None, palette=getattr(dataset, "palette", None))
