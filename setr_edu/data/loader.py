"""DataLoader settings that keep a GPU fed: worker processes sized to the machine, pinned memory on CUDA,
workers that live as long as the loader.

A 512x512 ADE20K training sample costs about 4 ms to decode (JPEG + PNG) and 4 ms to augment on one CPU core
(``python -m setr_edu bench data``: 80 samples/s in the main process, 130 with 2 workers on 2 cores); by its
FLOPs, SETR-L trains at a few images per second on a T4 and a few dozen on an A100, while the main process also
has to drive the GPU. Workers run the dataset's ``__getitem__`` in parallel, one process each:

    >>> from setr_edu.data.loader import loader_kwargs
    >>> import torch
    >>> kw = loader_kwargs(2, torch.device("cuda"))
    >>> kw["num_workers"], kw["pin_memory"], kw["persistent_workers"]
    (2, True, True)
"""
from __future__ import annotations

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


def resolve_num_workers(num_workers: int, dataset: str, local_world_size: int | None = None) -> int:
    """A recipe's ``num_workers``: ``-1`` ("auto") means :func:`default_num_workers` for real datasets and 0 for
    the synthetic task (generated in memory and cached: workers would only copy it); any other value is kept.
    ``local_world_size``: training processes on this machine (default: torchrun's ``LOCAL_WORLD_SIZE``, or 1)."""
    if num_workers >= 0:
        return num_workers
    if local_world_size is None:
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return 0 if dataset == "synthetic" else default_num_workers(local_world_size)


def single_threaded_opencv() -> None:
    """``cv2.setNumThreads(1)`` in this (the main) process, before workers are forked, as mmseg does (mmcv's
    ``setup_multi_processes``): the workers are the parallelism, and OpenCV threads inside each would only compete
    for the same cores. It must happen here: calling it inside a forked worker whose parent had already started
    OpenCV's thread pool deadlocks (tests/test_data_loaders.py checks both)."""
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(1)


def loader_kwargs(num_workers: int, device: torch.device | str = "cpu", prefetch_factor: int = 4,
                  worker_init_fn=None, persistent: bool = True) -> dict:
    """Keyword arguments for ``torch.utils.data.DataLoader``: ``num_workers`` processes that persist across
    epochs (``persistent=False`` for a loader read once), ``prefetch_factor`` batches queued per worker,
    page-locked (pinned) batches when training on CUDA so ``.to(device, non_blocking=True)`` copies
    asynchronously; ``worker_init_fn`` runs in each worker (a module-level function, so that it also works where
    workers are spawned). With workers, OpenCV is made single-threaded first (``single_threaded_opencv``)."""
    workers = num_workers > 0
    if workers:
        single_threaded_opencv()
    return dict(num_workers=num_workers, pin_memory=torch.device(device).type == "cuda",
                persistent_workers=workers and persistent, prefetch_factor=prefetch_factor if workers else None,
                worker_init_fn=worker_init_fn if workers else None)
