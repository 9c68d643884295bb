"""Data: the synthetic context task, real dataset loaders, joint transforms (readable and fast), DataLoader settings,
download helpers and two shipped photographs."""
from .datasets import ADE20K, Cityscapes, DatasetNotFoundError, FolderDataset, PascalContext, SegmentationDataset
from .archives import ArchiveError, extract
from .download import ChecksumError, download_ade20k, download_url, instructions
from .prepare import prepare
from .photographs import PHOTOS, Photo, photo
from .fast_transforms import FastCompose
from .loader import default_num_workers, loader_kwargs, resolve_num_workers
from .synthetic import SyntheticContextDataset
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    Pad,
    PhotoMetricDistortion,
    RandomCrop,
    RandomFlip,
    RandomResize,
    SeededTransforms,
    ToTensor,
    to_tensor,
)
from .pipelines import test_pipeline, train_pipeline
