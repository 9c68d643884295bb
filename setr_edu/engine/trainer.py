"""The training loop: iteration-based SGD with the paper's recipe, exact resume, DDP-ready (paper §4).

    >>> from setr_edu.recipes import get_recipe
    >>> trainer = Trainer(get_recipe("synthetic_ci"), work_dir="runs/demo", overwrite=True, progress=False, log=None)
    >>> summary = trainer.fit()  # doctest: +SKIP

One optimisation step (``Trainer.train_step``):

1. set every parameter group's learning rate from the iteration (poly schedule, heads x10: ``engine/optim.py``);
2. for each of ``grad_accum_steps`` micro-batches: forward under autocast with the auxiliary heads, the loss
   ``CE(main) + 0.4 * sum CE(aux)`` in float32, stop on NaN/inf, backward (DDP averages gradients on the last);
3. one SGD step (through the GradScaler when training in fp16).

Around it, ``Trainer.fit`` logs every ``log_every`` steps to ``work_dir/log.jsonl`` (one JSON object per line:
``iter, lr, loss, loss_main, loss_aux0.., time, iter_time, ...``; validation lines carry ``val_mIoU``...),
validates every ``eval_every`` steps and writes ``work_dir/last.pt`` every ``checkpoint_every`` steps, every
``checkpoint_minutes`` of wall time, just *before* each validation (one that fails loses nothing) and at the end.

**Never lose a run.** Before the first iteration the trainer locks the work dir (one run per folder), checks the
device, that the work dir is writable and has room for the old and the new checkpoint, and every image/label file
of both splits (one message naming every bad one); it removes temporary checkpoints that a killed save left behind
(``engine/preflight.py``). SIGINT (Ctrl-C, a notebook's stop button), SIGTERM (``kill``, ``timeout``, Slurm, a
preempted VM, also sent to the DataLoader workers) and SIGHUP finish the current step, save it and raise
``TrainingInterrupted``, whose message says how to resume; a save is never broken by a second signal, and a
validation that was stopped runs again on resume (``engine/interrupts.py``). fp16 runs log the GradScaler's loss
scale and the steps it skipped, and warn when more than 5% were skipped.

**Reproducibility.** Data order comes from ``InfiniteBatchSampler`` (``engine/sampler.py``): a seeded stream of
epoch permutations that any rank can index by *position*, so the whole data state is one number (samples consumed),
and augmentation is seeded per ``(seed, epoch, index)``. With the model, optimizer, scaler and RNG states in the
checkpoint, a run that is interrupted and resumed ends **bitwise equal** on CPU to one that never stopped
(``tests/test_resume.py``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.datasets import BadFileError
from ..data.loader import loader_kwargs, resolve_num_workers
from .amp import resolve_amp
from ..profile import seed_everything
from ..recipes import Recipe
from .build import build_datasets, build_model, dataset_info, load_pretrained
from .checkpoint import (CheckpointError, check_compatible, load_checkpoint, require, rng_state,
                         save_checkpoint, set_rng_state)
from .distributed import DistEnv, all_reduce_max, all_reduce_sum, convert_sync_bn, init_distributed, unwrap, wrap_model
from .inference import evaluate
from .interrupts import Interruptible, ignore_stop_signals, stopping_workers
from .losses import SETRLoss
from .optim import PolySchedule, build_optimizer
from .preflight import (TrainingError, TrainingInterrupted, WorkDirLock, check_device,  # noqa: F401
                        check_disk_space, check_files, check_work_dir, one_line,
                        read_log)  # (TrainingInterrupted: re-exported)
from .sampler import EpochIndexed, InfiniteBatchSampler

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Trainer(Interruptible):
    """Train ``recipe`` (a ``setr_edu.recipes.Recipe``) into ``work_dir``. Saving on time and stopping cleanly on
    SIGINT / SIGTERM come from ``Interruptible`` (``engine/interrupts.py``).

    Args:
        recipe: what to train (model, data, optimiser, schedule, evaluation).
        work_dir: where ``last.pt`` and ``log.jsonl`` go (default ``runs/<recipe.name>``).
        resume: continue from ``work_dir/last.pt`` (or from this path if a string) when it exists.
        overwrite: start from scratch even if ``work_dir`` holds a checkpoint (refused otherwise, to lose nothing).
        model: use this model instead of building one from the recipe.
        datasets: ``(train_set, val_set)`` to use instead of building them from the recipe.
        env: a ``DistEnv``; default: from ``torchrun``'s environment variables (one process without them).
        progress: show a tqdm bar (rank 0 only).
        log: a ``print``-like function for messages (``None``: silent).
    """

    def __init__(self, recipe: Recipe, work_dir: str | Path | None = None, resume: bool | str = False,
                 overwrite: bool = False, model: torch.nn.Module | None = None, datasets: tuple | None = None,
                 env: DistEnv | None = None, progress: bool = True, log=print):
        self.recipe = r = recipe.validate()
        self.env = env or init_distributed(r.device)
        self.device, self.progress = self.env.device, progress and self.env.is_main
        self._print = (log if self.env.is_main else None) or (lambda *a, **k: None)
        self.work_dir = Path(work_dir or Path("runs") / r.name)
        # how to resume, in the messages of a stopped run (the CLI sets its command line instead)
        self.resume_hint = f"Trainer(recipe, work_dir={str(self.work_dir)!r}, resume=True).fit()"
        self._lock = WorkDirLock(self.work_dir)  # one run per work dir, held from here to the end of fit
        try:
            self._setup(r, resume, overwrite, model, datasets)
        except BaseException:
            self._lock.release()
            raise

    def _setup(self, r: Recipe, resume, overwrite, model, datasets) -> None:
        if self.env.is_main:  # locked before anything is touched (a live run's temporary checkpoint, its log)
            check_work_dir(self.work_dir, self._print, lock=self._lock)
        # amp=auto: bf16 on GPUs of compute capability >= 8.0, fp16 + GradScaler on older ones (T4, V100), none on CPU
        self.amp = resolve_amp(r.amp, self.device)
        self.amp_dtype = AMP_DTYPES[self.amp or "none"]
        if self.amp == "fp16" and self.device.type != "cuda":
            raise ValueError(f"amp=fp16 needs a CUDA GPU (device is {self.device}); use amp=auto, amp=bf16 or amp=none")
        per_step = self.env.world_size * r.grad_accum_steps
        if r.batch_size % per_step:
            raise ValueError(f"batch_size={r.batch_size} (the global batch) must be divisible by world_size "
                             f"({self.env.world_size}) x grad_accum_steps ({r.grad_accum_steps})")
        self.micro_batch = r.batch_size // per_step

        self.train_set, self.val_set = datasets or build_datasets(r)
        check_files(dict(train=self.train_set, val=self.val_set), self.work_dir, self._print, self.env.is_main)
        self.info = dataset_info(self.train_set)
        self.num_classes = r.num_classes or self.info["num_classes"]
        if not self.num_classes:
            raise ValueError("the dataset has no num_classes attribute; set num_classes=<K> in the recipe")
        seed_everything(r.seed)  # identical initial weights on every rank
        self.model = model if model is not None else build_model(r, self.num_classes)

        ckpt_path = Path(resume) if isinstance(resume, (str, Path)) else self.work_dir / "last.pt"
        state = None
        if resume and (ckpt_path.exists() or isinstance(resume, (str, Path))):  # an explicit path must exist
            state = load_checkpoint(ckpt_path)
            require(state, ckpt_path, ("iter", "model", "recipe", "optimizer", "rng"), "resume training")
            check_compatible(state, self.model, r.to_dict(), str(ckpt_path))
        elif resume:
            self._refuse_resume_without_checkpoint(ckpt_path, overwrite)
            self._print(f"resume: no checkpoint in {self.work_dir} yet, starting from scratch")
        elif (self.work_dir / "last.pt").exists() and not overwrite:
            raise FileExistsError(f"{self.work_dir} already holds a checkpoint (last.pt); pass resume=True "
                                  f"(--resume) to continue it, overwrite=True (--overwrite) to start again, or "
                                  f"use another work_dir (--work-dir)")
        if self.env.is_main:
            check_disk_space(self.work_dir, self.model, r.optimizer)
        if state is None and self.env.is_main:
            try:
                load_pretrained(self.model, r, self._print)  # DDP broadcasts rank 0's weights to the others
            except (RuntimeError, OSError) as e:
                if not r.pretrained.startswith("timm:"):
                    raise
                raise ValueError(f"pretrained={r.pretrained!r}: timm could not load it ({one_line(e)}); "
                                 f"`timm.list_models(pretrained=True)` lists the tags (e.g. "
                                 f"timm:vit_large_patch16_384.augreg_in21k_ft_in1k), and downloading needs the "
                                 f"internet") from None
            (self.work_dir / "log.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log

        self.model.to(self.device)
        if r.grad_checkpointing and hasattr(self.model, "encoder"):
            self.model.encoder.grad_checkpointing = True
        self.model = convert_sync_bn(self.model, self.env)
        self.optimizer = build_optimizer(self.model, r.lr, r.momentum, r.weight_decay, r.head_lr_mult, name=r.optimizer)
        self.schedule = PolySchedule(self.optimizer, r.max_iters, r.power, r.min_lr, r.warmup_iters, r.warmup_ratio)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")  # fp16's small range needs it
        self.criterion = SETRLoss(aux_weight=r.aux_weight)  # CE (ignore 255, official averaging) + 0.4 x aux
        self.iter, self.elapsed, self.last_val = 0, 0.0, None
        self._val_iter = None  # the iteration that last_val was measured at
        self.skipped_steps, self._warned_skips = 0, False  # fp16: steps the GradScaler skipped (inf/NaN gradients)
        if state is not None:
            self._restore(state, ckpt_path)
        self.ddp_model = wrap_model(self.model, self.env)

    def _refuse_resume_without_checkpoint(self, ckpt: Path, overwrite: bool) -> None:
        """``resume`` with no ``last.pt`` starts from scratch only in a fresh work dir: a dangling link or the log
        of an earlier run mean the checkpoint went missing, and starting again would replace that log."""
        log = self.work_dir / "log.jsonl"
        if ckpt.is_symlink():
            raise CheckpointError(f"cannot resume: {ckpt} is a link to {os.readlink(ckpt)}, which does not exist; "
                                  f"restore that file, or pass --overwrite (overwrite=True) to start again")
        if not overwrite and log.is_file() and log.stat().st_size:
            raise CheckpointError(f"cannot resume: {ckpt} does not exist, but {log} holds the log of an earlier "
                                  f"run; restore its last.pt, or pass --overwrite (overwrite=True) to start again "
                                  f"(that log is then replaced)")

    # --- state ------------------------------------------------------------------------------------------------
    def _restore(self, state: dict, path: Path) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.iter, self.elapsed = int(state["iter"]), float(state.get("elapsed", 0.0))
        self._saved_iter = self.iter
        self.last_val = state.get("meta", {}).get("last_val")
        self._val_iter = state.get("meta", {}).get("val_iter")
        self.skipped_steps = int(state.get("meta", {}).get("skipped_steps") or 0)
        set_rng_state(state["rng"])
        changed = {k: (v, getattr(self.recipe, k)) for k, v in state["recipe"].items()
                   if k in self.recipe.to_dict() and _plain(v) != _plain(getattr(self.recipe, k))}
        self._print(f"resumed from {path} at iteration {self.iter}"
                    + (f"; recipe changes since: {changed}" if changed else ""))
        if self.env.is_main:  # drop log lines written after the checkpoint (they will be written again)
            log = self.work_dir / "log.jsonl"
            if log.exists():
                kept = [(ln, rec) for ln, rec in read_log(log, self._print) if rec.get("iter", 0) <= self.iter]
                log.write_text("".join(ln + "\n" for ln, _ in kept))
                for _, rec in kept:  # a validation of this iteration that finished after the save
                    if rec.get("iter") == self.iter and "val_mIoU" in rec:
                        self._val_iter = self.iter
                        self.last_val = {k[4:]: v for k, v in rec.items() if k.startswith("val_")}

    def state_dict(self) -> dict:
        """Everything ``fit`` needs to continue exactly (see ``engine/checkpoint.py``)."""
        return dict(iter=self.iter, model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                    scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None, rng=rng_state(),
                    sampler=dict(seed=self.recipe.seed, position=self.iter * self.recipe.batch_size,
                                 epoch=self.iter * self.recipe.batch_size // len(self.train_set)),
                    recipe=self.recipe.to_dict(), elapsed=self.elapsed,
                    meta=_plain(dict(num_classes=self.num_classes, class_names=self.info["class_names"],
                                     palette=self.info["palette"], last_val=self.last_val,
                                     val_iter=self._val_iter, skipped_steps=self.skipped_steps)))

    def save(self) -> Path | None:
        """Write ``work_dir/last.pt`` atomically (rank 0 only). A signal during the write never breaks it: the save
        finishes, then a second signal stops the run (``interrupts.py``)."""
        with self._saving_uninterrupted():
            path = save_checkpoint(self.work_dir / "last.pt", self.state_dict()) if self.env.is_main else None
            self._saved_iter, self._last_save = self.iter, time.monotonic()
        return path

    def write_log(self, record: dict) -> None:
        if self.env.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            with open(self.work_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(_plain(record)) + "\n")

    # --- training ---------------------------------------------------------------------------------------------
    def loader(self) -> DataLoader:
        """The training batches from the current iteration on (the position is ``iter x batch_size``)."""
        r = self.recipe
        sampler = InfiniteBatchSampler(len(self.train_set), self.micro_batch, r.seed, self.env.rank,
                                       self.env.world_size, start=self.iter * r.batch_size)
        return DataLoader(EpochIndexed(self.train_set), batch_sampler=sampler,
                          generator=torch.Generator().manual_seed(r.seed),
                          **loader_kwargs(resolve_num_workers(r.num_workers, r.dataset), self.device,
                                          worker_init_fn=ignore_stop_signals))

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, batches) -> dict:
        """One optimisation step over ``grad_accum_steps`` micro-batches drawn from ``batches``; returns its stats."""
        r, model = self.recipe, self.ddp_model
        model.train()
        lrs = self.schedule.step(self.iter)
        stats, data_time = defaultdict(float), 0.0
        for micro in range(r.grad_accum_steps):
            t = time.perf_counter()
            images, labels = next(batches)
            images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
            data_time += time.perf_counter() - t
            last = micro == r.grad_accum_steps - 1
            sync = contextlib.nullcontext() if last or not self.env.distributed else model.no_sync()
            with sync:  # DDP all-reduces gradients only in the last micro-batch's backward
                with self._autocast():
                    logits, aux_logits = model(images, with_aux=True)
                loss, parts = self.criterion((logits.float(), [a.float() for a in aux_logits]), labels)
                self._check_finite(loss, micro)
                self.scaler.scale(loss / r.grad_accum_steps).backward()
            for k, v in parts.items():
                stats[k] += float(v) / r.grad_accum_steps
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)  # fp16: skipped when a gradient is inf/NaN, and the scale is lowered
        self.scaler.update()
        if scale is not None and self.scaler.get_scale() < scale:
            self.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.iter += 1
        return dict(stats, lr=lrs[0], head_lr=lrs[-1], data_time=data_time)

    def _check_finite(self, loss: torch.Tensor, micro: int) -> None:
        bad = torch.tensor(0.0 if torch.isfinite(loss).item() else 1.0, device=self.device)
        if self.env.distributed:  # every rank must stop together, or the others hang in all-reduce
            all_reduce_max(bad)
        if bad.item():
            raise FloatingPointError(
                f"the loss became {loss.item()} at iteration {self.iter + 1} (micro-batch {micro}); training "
                f"stopped and {self._checkpoint_note()}. Try a lower learning rate (lr=), amp=bf16 or amp=none "
                f"instead of fp16, warmup_iters=, and check that the labels are class indices or 255.")

    def validate(self) -> dict:
        """Evaluate on the validation set (sharded over ranks), log ``val_*`` and return the metric dict."""
        r = self.recipe
        batch = self.micro_batch if r.dataset == "synthetic" else 1  # real images differ in size
        res = evaluate(unwrap(self.ddp_model), self.val_set, self.num_classes, r.eval_mode, r.crop_size, r.stride,
                       batch_size=batch, device=self.device, amp_dtype=self.amp_dtype, rank=self.env.rank,
                       world_size=self.env.world_size, progress=self.progress, class_names=self.info["class_names"],
                       num_workers=resolve_num_workers(r.num_workers, r.dataset))
        self.last_val = _plain({k: res[k] for k in ("mIoU", "mAcc", "aAcc", "IoU") if k in res})
        self._val_iter = self.iter
        self.write_log({"iter": self.iter, **{f"val_{k}": v for k, v in self.last_val.items()}})
        self._print(f"iter {self.iter}: val mIoU {100 * res['mIoU']:.2f}  mAcc {100 * res['mAcc']:.2f}  "
                    f"aAcc {100 * res['aAcc']:.2f}")
        return res

    def fit(self, until: int | None = None) -> dict:
        """Train from the current iteration to ``until`` (default ``max_iters``); returns a summary dict.

        Stopping early at ``until`` writes a checkpoint, so ``fit(until=100)`` then ``fit()`` trains in chunks.
        """
        from tqdm.auto import tqdm

        r = self.recipe
        end = min(until or r.max_iters, r.max_iters)
        if self.iter < end:
            self._print(f"training {r.name}: iterations {self.iter}->{end} of {r.max_iters}, global batch "
                        f"{r.batch_size} = {self.env.world_size} x {r.grad_accum_steps} x {self.micro_batch} on "
                        f"{self.device}, amp={r.amp}{f' -> {self.amp}' if r.amp == 'auto' else ''}, "
                        f"work_dir={self.work_dir}")
        batches = iter(self.loader()) if self.iter < end else None
        bar = tqdm(total=end, initial=self.iter, disable=not self.progress, desc=r.name, dynamic_ncols=True)
        window, n, t_log = defaultdict(float), 0, time.perf_counter()
        self._last_save = time.monotonic()
        if self.env.is_main:
            self._lock.acquire()  # again after an earlier fit released it
        with (contextlib.closing(self._lock) if self.env.is_main else contextlib.nullcontext(),
              self._stop_on_signals(), stopping_workers(batches), contextlib.closing(bar)):  # bar: before a message
            if self._validation_missing():  # the run stopped during this iteration's validation: run it again
                self._validate_keeping_checkpoint()
                self.save()
            while self.iter < end:
                t = time.perf_counter()
                try:
                    stats = self.train_step(batches)
                except BadFileError as e:  # a file changed since the start check
                    raise TrainingError(f"iteration {self.iter + 1} could not read its data: {one_line(e)}; "
                                        f"{self._checkpoint_note()}. Fix the file, then resume with: "
                                        f"{self.resume_hint}") from e
                self.elapsed += time.perf_counter() - t
                for k, v in stats.items():
                    window[k] += v
                n += 1
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2e}", **self._scaler_stats(str))
                if self.iter % r.log_every == 0 or self.iter == end:
                    self._log_window(window, n, time.perf_counter() - t_log)
                    window, n, t_log = defaultdict(float), 0, time.perf_counter()
                self._stop_if_signalled()
                evaluate_now = self.iter % r.eval_every == 0 or self.iter == r.max_iters
                if evaluate_now or self._checkpoint_due(end):
                    self.save()  # before validating: a validation that fails loses nothing
                if evaluate_now:
                    self._validate_keeping_checkpoint()
                    if self.iter == end:
                        self.save()  # the final checkpoint carries the metrics
                    self._stop_if_signalled()
            bar.close()
        return dict(iter=self.iter, train_time_s=round(self.elapsed, 1), work_dir=str(self.work_dir),
                    **{k: v for k, v in (self.last_val or {}).items() if k != "IoU"})

    def _validation_missing(self) -> bool:
        """The checkpoint we resumed from (or last saved) is of a validation iteration whose validation never
        finished (stopped by a signal, out of memory, a bad file): neither the checkpoint nor the log has it."""
        r = self.recipe
        due = self.iter % r.eval_every == 0 or self.iter == r.max_iters
        return bool(self.iter) and due and self._saved_iter == self.iter and self._val_iter != self.iter

    def _log_window(self, window: dict, n: int, seconds: float) -> None:
        mean = {k: v / n for k, v in window.items()}
        if self.env.distributed:  # average the losses over ranks (one small all-reduce per log line)
            keys = sorted(k for k in mean if k.startswith("loss"))
            t = all_reduce_sum(torch.tensor([mean[k] for k in keys], device=self.device, dtype=torch.float64))
            mean.update({k: float(v) / self.env.world_size for k, v in zip(keys, t.tolist())})
        rec = {"iter": self.iter, "epoch": self.iter * self.recipe.batch_size / len(self.train_set), **mean,
               "time": self.elapsed, "iter_time": seconds / n, "images_per_s": self.recipe.batch_size * n / seconds}
        if self.device.type == "cuda":
            rec["mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
        self.write_log({**rec, **self._scaler_stats()})
        self._warn_if_skipping()

    def _scaler_stats(self, fmt=lambda v: v) -> dict:
        """fp16: the GradScaler's loss scale and the steps it skipped so far (empty without a scaler)."""
        if not self.scaler.is_enabled():
            return {}
        return dict(loss_scale=fmt(self.scaler.get_scale()), skipped_steps=fmt(self.skipped_steps))

    def _warn_if_skipping(self) -> None:
        """Once per run: more than 5% of the steps were skipped (a few at the start, while the scale settles, are
        normal). Each skipped step trains nothing: with an overflowing scale a run learns nothing at all."""
        if self._warned_skips or not self.scaler.is_enabled() or self.skipped_steps < 5:
            return
        if self.skipped_steps > 0.05 * self.iter:
            self._warned_skips = True
            with contextlib.suppress(RuntimeError):
                self._print(f"warning: the fp16 GradScaler skipped {self.skipped_steps} of {self.iter} steps "
                            f"(inf/NaN gradients; loss scale now {self.scaler.get_scale():g}), so those steps "
                            f"trained nothing; use amp=bf16 (GPUs of compute capability >= 8.0) or amp=none, or a "
                            f"lower lr=")


def _plain(x):
    """JSON- and ``weights_only``-friendly copy: numpy/tensor values -> Python floats and lists."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def train(recipe: Recipe, work_dir: str | Path | None = None, resume: bool = False, **kw) -> dict:
    """``Trainer(recipe, work_dir, resume, **kw).fit()``: the one-call version used by the CLI and the book."""
    return Trainer(recipe, work_dir, resume=resume, **kw).fit()
