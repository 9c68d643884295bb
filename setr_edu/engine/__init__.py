"""Training and evaluation engine: loss, metrics, optimiser + schedule, checkpoints, trainer, inference, DDP."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .distributed import DistEnv, init_distributed
from .inference import colorize, evaluate, predict, slide_inference, whole_inference
from .losses import SETRLoss, pixel_cross_entropy, setr_loss
from .metrics import SegmentationMetric
from .optim import PolySchedule, build_optimizer, param_groups, poly_lr
from .trainer import InfiniteBatchSampler, Trainer, train
