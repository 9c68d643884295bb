"""More than one GPU with PyTorch's own engine: ``torchrun`` + DistributedDataParallel (paper: 8 V100s, SyncBN).

::

    torchrun --nproc_per_node=8 -m setr_edu train --config cityscapes_pup_80k

``torchrun`` starts one process per device and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; ``init_distributed`` reads them and joins the process group (NCCL on CUDA, gloo on CPU).
Then:

* every rank builds the same model from the same seed; ``wrap_model`` converts BatchNorm to
  **SyncBatchNorm** on CUDA (the paper's "sync BN": statistics over the global batch) and wraps the model in
  ``DistributedDataParallel``, which broadcasts rank 0's weights and averages gradients in backward;
* the data stream is sharded by ``setr_edu.engine.trainer.InfiniteBatchSampler`` (rank ``r`` takes the
  ``r``-th slice of every global batch), so N processes see exactly the samples of one process with the same
  global batch;
* validation metrics are summed across ranks (``SegmentationMetric.all_reduce`` on the confusion matrix);
* only rank 0 (``env.is_main``) writes checkpoints, logs and progress bars.

Without ``torchrun`` (``WORLD_SIZE`` unset) everything here is a no-op and training runs in one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size`` processes, and its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def check_device(device: str) -> None:
    """Refuse a device this machine does not have before any work starts (one message that says what to use)."""
    if device == "cuda" and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ValueError(f"device=cuda but PyTorch sees no CUDA GPU (torch {torch.__version__}, {build}); use "
                         f"device=cpu or device=auto (on Colab: Runtime > Change runtime type > GPU)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device=mps but this PyTorch has no MPS (Apple GPU) backend; use device=cpu or device=auto")


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` if CUDA is available, else ``cpu``; refuses (``check_device``) a device
    this machine does not have."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device)
    return torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)


def init_distributed(device: str = "auto", timeout_s: float = 1800) -> DistEnv:
    """Join the process group that ``torchrun`` set up (env vars); a single-process ``DistEnv`` otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return DistEnv(device=resolve_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s),
                                **(dict(device_id=dev) if dev.type == "cuda" else {}))
    return DistEnv(rank, world_size, local_rank, dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """Wrap in DistributedDataParallel (identity for one process). Convert BatchNorm first with
    ``convert_sync_bn``; DDP broadcasts rank 0's weights and buffers, so only rank 0 needs pretrained weights."""
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)


def convert_sync_bn(model: nn.Module, env: DistEnv) -> nn.Module:
    """BatchNorm -> SyncBatchNorm when training on several GPUs (the paper's decoders use SyncBN)."""
    if env.distributed and env.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP (its ``state_dict`` has no ``module.`` prefix)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks in place (no-op without a process group); returns ``t``."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
