"""Data: the synthetic context task, real dataset loaders, joint transforms and download helpers."""
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
    test_pipeline,
    to_tensor,
    train_pipeline,
)
