"""DistributedDataParallel on CPU (gloo, 2 processes on localhost) == one process with the same global batch.

Why compare with *gradient accumulation*: without CUDA there is no SyncBatchNorm, so each rank normalises its own
2 images. One process that accumulates 2 micro-batches of 2 normalises exactly the same pairs, so both runs compute
the same gradients and only floating-point summation order differs. Tolerance: parameters agree to
``atol=2e-5, rtol=1e-4`` after 4 SGD steps (float32); the logged losses to 1e-5.
"""
import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from engine_helpers import tiny_recipe

from setr_edu.engine.checkpoint import load_checkpoint
from setr_edu.engine.inference import evaluate
from setr_edu.engine.trainer import Trainer

RECIPE = dict(max_iters=4, batch_size=4, eval_every=4, checkpoint_every=4, log_every=1, num_val=6)
TIMEOUT_S = 240  # two fresh Python processes importing torch on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, work_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    from setr_edu.engine.distributed import cleanup

    try:
        trainer = Trainer(tiny_recipe(**RECIPE), work_dir, progress=False, log=None)  # env from the variables
        assert trainer.env.world_size == world_size and trainer.micro_batch == 2
        summary = trainer.fit()
        torch.save(summary, os.path.join(work_dir, f"summary{rank}.pt"))
    finally:
        cleanup()


def _spawn(world_size: int, work_dir) -> None:
    ctx = mp.spawn(_worker, args=(world_size, _free_port(), str(work_dir)), nprocs=world_size, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"DDP run did not finish within {TIMEOUT_S} s")


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    _spawn(2, tmp_path / "ddp")

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = Trainer(tiny_recipe(**RECIPE, grad_accum_steps=2), tmp_path / "single", progress=False, log=None)
        single.fit()
        ddp_state = load_checkpoint(tmp_path / "ddp" / "last.pt")  # written by rank 0 only
        for name, p in single.model.named_parameters():
            torch.testing.assert_close(ddp_state["model"][name], p.detach(), atol=2e-5, rtol=1e-4, msg=name)

        # the logged (rank-averaged) losses equal the single process's; each iteration is logged once (rank 0)
        logs = [[json.loads(s) for s in (tmp_path / d / "log.jsonl").read_text().splitlines()] for d in ("ddp", "single")]
        train = [[ln for ln in log if "loss" in ln] for log in logs]
        assert [ln["iter"] for ln in train[0]] == [1, 2, 3, 4]
        for a, b in zip(*train):
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)

        # validation was sharded (3 images per rank) and the confusion matrices summed: both ranks report the
        # mIoU of the whole validation set, the same as evaluating rank 0's model in one process
        summaries = [torch.load(tmp_path / "ddp" / f"summary{r}.pt") for r in range(2)]
        assert summaries[0]["mIoU"] == summaries[1]["mIoU"]
        single.model.load_state_dict(ddp_state["model"])
        full = evaluate(single.model, single.val_set, single.num_classes, batch_size=2)
        assert summaries[0]["mIoU"] == pytest.approx(full["mIoU"], abs=1e-12)
    finally:
        torch.set_num_threads(old)
