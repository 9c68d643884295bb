"""Training and evaluation engine: loss, metrics, optimiser, trainer, checkpoints, inference."""
from .losses import SETRLoss, pixel_cross_entropy, setr_loss
from .metrics import SegmentationMetric, per_image_miou
