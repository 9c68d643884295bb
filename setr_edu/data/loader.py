"""DataLoader settings that keep a GPU fed: worker processes sized to the machine, pinned memory on CUDA,
workers that live as long as the loader.

A 512x512 ADE20K training sample costs about 5 ms to decode and 5-10 ms to augment on one CPU core
(``python -m setr_edu bench data``), so the main process alone delivers about 60 samples/s; a T4 training SETR-L
wants a few per second, an A100 tens. Workers run the dataset's ``__getitem__`` in parallel, one process each:

    >>> from setr_edu.data.loader import loader_kwargs
    >>> import torch
    >>> kw = loader_kwargs(2, torch.device("cuda"))
    >>> kw["num_workers"], kw["pin_memory"], kw["persistent_workers"]
    (2, True, True)
"""
from __future__ import annotations

import functools
import os

import torch

MAX_WORKERS = 8  # more rarely helps one GPU and costs memory (each worker holds a copy of the dataset object)


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask: what a container or ``taskset`` allows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_num_workers(local_world_size: int = 1) -> int:
    """Workers per training process for a real dataset: the usable cores shared by the processes of this machine
    (``torchrun --nproc_per_node``), at most ``MAX_WORKERS``, at least 1. A Colab T4 (2 cores) gets 2."""
    return max(1, min(MAX_WORKERS, usable_cores() // max(1, local_world_size)))


def resolve_num_workers(num_workers: int, dataset: str, local_world_size: int = 1) -> int:
    """A recipe's ``num_workers``: ``-1`` ("auto") means :func:`default_num_workers` for real datasets and 0 for
    the synthetic task (generated in memory and cached: workers would only copy it); any other value is kept."""
    if num_workers >= 0:
        return num_workers
    return 0 if dataset == "synthetic" else default_num_workers(local_world_size)


def worker_init(worker_id: int, then=None) -> None:
    """One thread per worker for OpenCV (PyTorch already sets ``torch.set_num_threads(1)`` in workers): the
    workers are the parallelism; threads inside each would only compete for the same cores. ``then``: another
    ``worker_init_fn`` to call after."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    if then is not None:
        then(worker_id)


def loader_kwargs(num_workers: int, device: torch.device | str = "cpu", prefetch_factor: int = 4,
                  worker_init_fn=None) -> dict:
    """Keyword arguments for ``torch.utils.data.DataLoader``: ``num_workers`` processes that persist across
    epochs, ``prefetch_factor`` batches queued per worker, page-locked (pinned) batches when training on CUDA so
    ``.to(device, non_blocking=True)`` copies asynchronously; ``worker_init_fn`` runs in each worker after
    :func:`worker_init` (a module-level function, so that it also works where workers are spawned)."""
    workers = num_workers > 0
    return dict(num_workers=num_workers, pin_memory=torch.device(device).type == "cuda",
                persistent_workers=workers, prefetch_factor=prefetch_factor if workers else None,
                worker_init_fn=functools.partial(worker_init, then=worker_init_fn) if workers else None)
