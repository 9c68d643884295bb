"""The GPU acceptance check of setr-edu: one command for whoever has a GPU (needs torch, timm, numpy, matplotlib).

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT                    # one GPU, about 10 minutes
    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT --notebooks        # + every chapter, headless
    PYTHONPATH=. python3 benchmarks/gpu_check.py --device cpu --tiny --out /tmp/x   # the same code, toy sizes

Without a GPU the full sizes are refused at once. Each section prints one line when it finishes, and
``OUT/gpu_check.json`` (every number) and ``OUT/gpu_check.md`` (tables, provenance at the top) are rewritten after
every section: killed at any moment, the check leaves every finished section on disk. Each section has a time
budget (and the whole check ``--budget``); a section that fails or runs out of time is recorded and the check goes
on. Sections:

1. ``train``: the configurations users run, through the real ``Trainer`` (random 512 px images, 150 classes): the
   Colab recipe (``ade20k_pup_colab``: micro-batch 4 x 2 accumulation steps, checkpointing, ``amp=auto``), the same
   with fp16 + GradScaler where ``auto`` picks bf16, the paper recipe's per-GPU batch (16 on 8 GPUs: 2) with
   ``amp=auto``: images/s, MFU (``setr_edu.perf.timing.mfu``), peak memory beside the estimate;
2. ``max_batch``: the largest micro-batch that fits, found by trying next to the estimator's answer;
3. ``resume``: a Trainer run interrupted half-way and resumed, against one that never stopped;
4. ``slide``: sliding-window inference at 512 (an ADE20K-sized image) and 768 (a Cityscapes frame), images/s;
5. ``data``: the training data pipeline with the library's default workers: does it keep up with section 1?
6. ``chapters``: the library calls each gpu-profile chapter makes (ch09-ch15), cut short;
7. ``notebooks`` (``--notebooks``): every chapter run headless under the gpu profile
   (``book/_scripts/execute_notebooks.py --report``) in the time left.

The exit status is 1 if any section failed.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

import setr_edu
from setr_edu.engine.inference import predict, slide_inference
from setr_edu.perf.bench import _device_name, _peak, _versions, setr_train_step
from setr_edu.engine.amp import resolve_amp
from setr_edu.perf.flops import train_flops
from setr_edu.perf.memory import GiB, estimate_training_memory, fits
from setr_edu.perf.timing import mfu, synchronize
from setr_edu.profile import PROFILES

ROOT = Path(__file__).resolve().parents[1]
TOY = dict(encoder="tiny", embed_dim=64, depth=4, num_heads=2, patch_size=8, decoder_channels=32)
PAPER_GPUS = 8  # the official configs train on 8 GPUs: ADE20K's batch 16 is 2 per GPU, Cityscapes' 8 is 1
SCALES = {
    "full": dict(model=dict(encoder="large"), img=512, batch=8, iters=10, warmup=3, classes=150,
                 slide=[(512, (512, 683), 150), (768, (1024, 2048), 19)], slide_images=6,
                 data_seconds=30.0, data_image=(512, 683), data_scale=(2048, 512), resume_iters=20),
    "tiny": dict(model=TOY, img=64, batch=2, iters=2, warmup=1, classes=19,
                 slide=[(64, (64, 86), 150), (96, (128, 256), 19)], slide_images=1,
                 data_seconds=2.0, data_image=(96, 128), data_scale=(256, 64), resume_iters=4),
}
# seconds per section (a section also stops when the overall --budget runs out)
BUDGETS = dict(train=300, max_batch=150, resume=90, slide=60, data=60, chapters=120, notebooks=3600)
TRAIN_CONFIGS = (  # (label, recipe, overrides): what users run
    ("Colab recipe, amp=auto", "ade20k_pup_colab", ()),
    ("Colab recipe, fp16 + GradScaler", "ade20k_pup_colab", ("amp=fp16",)),
    ("paper recipe per GPU, amp=auto", "ade20k_pup", (f"batch_size={16 // PAPER_GPUS}",)),
    ("Cityscapes Colab recipe, amp=auto", "cityscapes_pup_colab", ()),
)


class SectionTimeout(Exception):
    """A section ran past its time budget."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`SectionTimeout` in the main thread after ``seconds`` (SIGALRM; no limit where unavailable)."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(_signum, _frame):
        raise SectionTimeout(f"ran past its time budget of {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def peak_memory_gib(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / GiB if dev.type == "cuda" else None


def free_memory(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def build(S: dict, img: int, classes: int, decoder: str = "pup"):
    kw = dict(S["model"])
    return lambda: setr_edu.build_setr(decoder, num_classes=classes, img_size=img, **kw)


def gpu_memory_gib(dev: torch.device) -> float | None:
    return torch.cuda.get_device_properties(dev).total_memory / GiB if dev.type == "cuda" else None


class RandomImages(torch.utils.data.Dataset):
    """Random images and labels of a fixed size, generated per index (no files, no download)."""

    def __init__(self, n: int, size: int, num_classes: int):
        self.n, self.size, self.num_classes = n, size, num_classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        return (torch.randn(3, self.size, self.size, generator=g),
                torch.randint(0, self.num_classes, (self.size, self.size), generator=g))


# --- 1. training: the configurations users run, through the Trainer -------------------------------------------------
def user_recipe(name: str, overrides, S: dict, dev: torch.device):
    """A named recipe with its own settings, on ``dev``, without downloads (random weights); toy-sized for --tiny."""
    from setr_edu.recipes import get_recipe

    r = get_recipe(name, list(overrides))
    r = replace(r, pretrained="", num_workers=0, device=dev.type, max_iters=10_000, eval_every=10_000,
                checkpoint_every=10_000, checkpoint_minutes=0.0, log_every=10_000)
    if S is SCALES["tiny"]:
        kw = {k: v for k, v in TOY.items() if k not in ("encoder", "decoder_channels")}
        r = replace(r, encoder="tiny", encoder_overrides=kw, decoder_channels=TOY["decoder_channels"],
                    crop_size=S["img"] if r.crop_size == 512 else 96)
    return r.validate()


def train_row(label: str, name: str, overrides, S: dict, dev: torch.device, work: Path) -> dict:
    from setr_edu.engine.trainer import Trainer

    r = user_recipe(name, overrides, S, dev)
    K = r.num_classes or 150
    micro = r.batch_size // r.grad_accum_steps
    row = dict(config=label, recipe=name, crop=r.crop_size, micro_batch=micro, accum=r.grad_accum_steps,
               checkpointing=r.grad_checkpointing)
    amp = resolve_amp(r.amp, dev)
    row["amp"] = amp or "fp32"
    make = lambda: setr_edu.build_setr(r.decoder, r.encoder, num_classes=K, img_size=r.crop_size,
                                       decoder_channels=r.decoder_channels, **r.encoder_overrides)
    if amp == "fp16" and dev.type != "cuda":
        return dict(row, note="skipped: fp16 + GradScaler needs a CUDA GPU")
    est = estimate_training_memory(make, (micro, 3, r.crop_size, r.crop_size), amp=amp,
                                   checkpointing=r.grad_checkpointing, grad_accum_steps=r.grad_accum_steps)
    row["estimate_gib"] = est.total / GiB
    free_memory(dev)
    data = RandomImages(64, r.crop_size, K)
    t = Trainer(r, work_dir=work / label.replace(" ", "_").replace(",", ""), overwrite=True, datasets=(data, data),
                progress=False, log=None)
    try:
        batches = iter(t.loader())
        for _ in range(S["warmup"]):
            t.train_step(batches)
        synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(S["iters"]):
            stats = t.train_step(batches)
        synchronize(dev)
        ips = r.batch_size * S["iters"] / (time.perf_counter() - t0)
        peak = _peak(dev, None, amp)
        flops = train_flops(make, (1, 3, r.crop_size, r.crop_size))
        row.update(images_per_s=ips, mfu=mfu(flops, ips, peak), peak_memory_gib=peak_memory_gib(dev),
                   loss=stats["loss"], finite=bool(math.isfinite(stats["loss"])),
                   loss_scale=t.scaler.get_scale() if t.scaler.is_enabled() else None)
    except torch.cuda.OutOfMemoryError as e:
        row["note"] = f"out of memory: {str(e).splitlines()[0][:120]}"
    finally:
        del t
        free_memory(dev)
    return row


def check_train(S: dict, dev: torch.device, work: Path) -> dict:
    rows, auto = [], resolve_amp("auto", dev)
    for label, name, overrides in TRAIN_CONFIGS:
        if "amp=fp16" in overrides and auto == "fp16":
            rows.append(dict(config=label, recipe=name, note="same as amp=auto on this GPU (fp16)"))
            continue
        try:
            rows.append(train_row(label, name, overrides, S, dev, work))
        except SectionTimeout:
            raise
        except Exception as e:  # noqa: BLE001  one configuration failing is a row, not the end of the section
            rows.append(dict(config=label, recipe=name, note=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"))
    return dict(rows=rows, timed_iterations=S["iters"], model_flops="forward + backward with aux heads, "
                "no recompute (MFU as in PaLM)")


# --- 2. the largest batch that fits, by trying ----------------------------------------------------------------------
def largest_batch(step_fits, start: int, limit: int = 64) -> tuple[int, list[tuple[int, bool]]]:
    """The largest ``b`` with ``step_fits(b)`` True, searching from ``start`` (the estimator's answer) up while it
    fits and down while it does not. Returns ``(b, [(b, fitted), ...])`` (``b`` 0 when not even 1 fits)."""
    tried: list[tuple[int, bool]] = []
    b = max(1, min(start, limit))
    ok = step_fits(b)
    tried.append((b, ok))
    step = 1 if ok else -1
    while 1 <= b + step <= limit:
        nxt = step_fits(b + step)
        tried.append((b + step, nxt))
        if ok and not nxt:
            return b, tried
        b += step
        if not ok and nxt:
            return b, tried
    return (b if ok else 0), tried


def estimated_largest_batch(make, img: int, amp, ckpt: bool, gpu_gib: float, limit: int = 64) -> int:
    """The largest micro-batch whose estimate :func:`fits` a GPU of ``gpu_gib``: linear in b from b = 1 and 2."""
    one, two = (estimate_training_memory(make, (b, 3, img, img), amp=amp, checkpointing=ckpt) for b in (1, 2))
    per, fixed = two.total - one.total, 2 * one.total - two.total
    b = 0
    while b < limit and fits(fixed + (b + 1) * per, gpu_gib):
        b += 1
    return b


def check_max_batch(S: dict, dev: torch.device) -> dict:
    if dev.type != "cuda":
        return dict(rows=[], note="skipped: a CPU has no device-memory limit to find")
    amp, img, K = resolve_amp("auto", dev), S["img"], S["classes"]
    make, total = build(S, img, 150), gpu_memory_gib(dev)
    model = make().to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    measured: dict[int, float] = {}

    def step_fits(b: int) -> bool:
        free_memory(dev)
        try:
            x = torch.randn(b, 3, img, img, device=dev)
            y = torch.randint(0, 150, (b, img, img), device=dev)
            for _ in range(2):  # the second step has the momentum buffers
                setr_train_step(model, opt, x, y, amp, scaler)
            synchronize(dev)
            measured[b] = peak_memory_gib(dev)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            x = y = None
            opt.zero_grad(set_to_none=True)

    rows = []
    for ckpt in (True, False):
        model.encoder.grad_checkpointing = ckpt
        est_b = estimated_largest_batch(make, img, amp, ckpt, total)
        found, tried = largest_batch(step_fits, est_b)
        est = estimate_training_memory(make, (max(found, 1), 3, img, img), amp=amp, checkpointing=ckpt)
        rows.append(dict(amp=amp, checkpointing=ckpt, estimator_answer=est_b, found_by_trying=found,
                         tried=" ".join(f"{b}{'' if ok else '(OOM)'}" for b, ok in tried),
                         peak_memory_gib=measured.get(found), estimate_gib=est.total / GiB))
    del model, opt
    free_memory(dev)
    return dict(rows=rows, gpu_memory_gib=total, model=f"SETR-PUP {S['model']['encoder']} @ {img}")


# --- 3. interrupt and resume -------------------------------------------------------------------------------------
def check_resume(S: dict, dev: torch.device, work: Path) -> dict:
    from setr_edu.engine.trainer import Trainer
    from setr_edu.recipes import synthetic_recipe

    n = S["resume_iters"]
    r = synthetic_recipe("ci", name="gpu_check_resume", max_iters=n, eval_every=n, checkpoint_every=n // 2,
                         log_every=1, num_val=4, device=dev.type, amp="auto", checkpoint_minutes=0.0)
    a = Trainer(r, work_dir=work / "straight", overwrite=True, progress=False, log=None)
    a.fit()
    b = Trainer(r, work_dir=work / "resumed", overwrite=True, progress=False, log=None)
    b.fit(until=n // 2)
    del b  # the disconnect: only resumed/last.pt survives
    b = Trainer(r, work_dir=work / "resumed", resume=True, progress=False, log=None)
    b.fit()
    diff = max((p - q).abs().max().item() for p, q in zip(a.model.state_dict().values(),
                                                          b.model.state_dict().values()) if p.is_floating_point())
    return dict(iters=n, stopped_at=n // 2, amp=a.amp, max_abs_weight_diff=diff, bitwise_equal=diff == 0.0)


# --- 4. sliding-window inference -----------------------------------------------------------------------------------
def check_slide(S: dict, dev: torch.device, amp: str | None) -> dict:
    rows = {}
    for crop, (h, w), classes in S["slide"]:
        model = build(S, crop, classes)().to(dev).eval()
        x = torch.randn(1, 3, h, w, device=dev)
        run = lambda: slide_inference(model, x, crop, 2 * crop // 3)
        with torch.inference_mode(), setr_edu.perf.autocast(dev, amp):
            run()  # warm-up
            synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(S["slide_images"]):
                run()
            synchronize(dev)
        rows[f"{crop}"] = dict(image=f"{h}x{w}", crop=crop, stride=2 * crop // 3, amp=amp,
                               images_per_s=S["slide_images"] / (time.perf_counter() - t0))
        del model
    return rows


# --- 5. data pipeline with workers -------------------------------------------------------------------------------
def check_data(S: dict, dev: torch.device, train_ips: float | None) -> dict:
    """The ADE20K training pipeline (JPEG/PNG decode + the paper's augmentation) on generated images, through a
    DataLoader with the library's default number of workers: does it keep up with the GPU?"""
    from setr_edu.perf.data_bench import measure_loader

    r = measure_loader(seconds=S["data_seconds"], batch_size=S["batch"], crop=S["img"], img_scale=S["data_scale"],
                       size=S["data_image"], pin_memory=dev.type == "cuda")
    return dict(r, per_worker=r["samples_per_s"] / max(1, r["num_workers"]), training_images_per_s=train_ips,
                keeps_up=None if train_ips is None else bool(r["samples_per_s"] >= train_ips))


# --- 6. what the gpu-profile chapters call -----------------------------------------------------------------------
def check_chapters(dev: torch.device, work: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    from setr_edu.data import SyntheticContextDataset
    from setr_edu.engine.inference import evaluate
    from setr_edu.engine.losses import setr_loss
    from setr_edu.engine.metrics import SegmentationMetric
    from setr_edu.engine.trainer import Trainer
    from setr_edu.recipes import synthetic_recipe
    from setr_edu.viz import plots

    P = PROFILES["ci"]
    small = lambda dec="naive": setr_edu.build_setr(dec, num_classes=3, **P.model_kwargs()).to(dev)
    val = SyntheticContextDataset(4, img_size=P.img_size, split="val")
    images = torch.stack([val[i][0] for i in range(2)])  # CPU tensors, as a notebook builds them
    labels = torch.stack([val[i][1] for i in range(2)])

    def ch09():
        logits, aux = small()(images.to(dev), with_aux=True)
        loss, _ = setr_loss(logits, labels.to(dev), aux)
        m = SegmentationMetric(3, device=dev)
        m.update(logits.argmax(1), labels.to(dev))
        return f"loss {loss.item():.3f}, mIoU {m.compute()['mIoU']:.3f}"

    def ch10_ch12():
        r = synthetic_recipe("ci", name="gpu_check_ch10", max_iters=2, eval_every=2, checkpoint_every=2,
                             log_every=1, num_val=4, device=dev.type, amp="auto", grad_checkpointing=True)
        t = Trainer(r, work_dir=work / "ch10", overwrite=True, progress=False, log=None)
        t.fit()
        probs = predict(t.model.eval(), images)  # the model is on the device, the images are not
        plots.plot_segmentation_grid(images, labels, probs, palette=val.palette)
        plots.plot_training_curves(work / "ch10")
        return f"amp={r.amp} -> {t.amp}, probs on {probs.device}"

    def ch11():
        import timm

        name = "vit_large_patch16_384" if dev.type == "cuda" else "vit_tiny_patch16_224"
        enc = setr_edu.build_setr("pup", "large" if dev.type == "cuda" else "tiny", num_classes=150,
                                  img_size=512 if dev.type == "cuda" else 64).encoder
        report = setr_edu.load_timm_weights(enc, timm.create_model(name, pretrained=False))
        enc = enc.to(dev).eval()
        with torch.no_grad():
            enc(torch.randn(1, 3, enc.config.patch_size * 4, enc.config.patch_size * 4, device=dev))
        return str(report)[:120]

    def ch13():
        model = small().eval()
        big = SyntheticContextDataset(2, img_size=2 * P.img_size, split="test")
        x = torch.stack([big[i][0] for i in range(2)])
        slide = predict(model, x, mode="slide", crop=P.img_size)
        tta = predict(model, x, scales=(0.75, 1.0, 1.25), flip=True)
        res = evaluate(model, big, 3, mode="slide", crop=P.img_size)
        assert slide.device.type == tta.device.type == "cpu"
        return f"slide mIoU {res['mIoU']:.3f}"

    def ch14():
        from setr_edu.viz.widgets import AttentionExplorer

        model = small().eval()
        maps = model.encoder.attention_maps(images[:1].to(dev))
        g = P.img_size // model.encoder.config.patch_size
        ex = AttentionExplorer(maps, plots.to_rgb(images[0]), (g, g), model.encoder.num_prefix_tokens)
        return f"{ex.num_layers} layers x {ex.num_heads} heads"

    def ch15():
        from setr_edu.perf import bench_setr

        kw = {k: v for k, v in P.model_kwargs().items() if k != "img_size"}
        r = bench_setr("pup", num_classes=19, repeats=1, warmup=1, device=str(dev), img_size=P.img_size,
                       batch_size=2, checkpointing=(False,), estimate=False, **kw)
        return f"toy: train {r['train']['images_per_s']:.1f} img/s, inference " \
               f"{r['inference']['images_per_s']:.1f} img/s, amp={r['config']['amp']}"

    out = {}
    for name, fn in (("ch09", ch09), ("ch10+ch12", ch10_ch12), ("ch11", ch11), ("ch13", ch13), ("ch14", ch14),
                     ("ch15", ch15)):
        out[name] = run_section(fn)
    return out


# --- driver --------------------------------------------------------------------------------------------------------
def run_section(fn, *args, budget: float | None = None) -> dict:
    """``{"ok": True, "seconds", "result"}``, or ``{"ok": False, "seconds", "error", "traceback"}``; a section that
    runs past ``budget`` seconds is stopped and recorded as failed."""
    t0 = time.perf_counter()
    try:
        with time_limit(budget):
            out = dict(ok=True, result=fn(*args))
    except Exception as e:  # noqa: BLE001  a failed section is a result, not the end of the check
        out = dict(ok=False, error=f"{type(e).__name__}: {e}"[:500], traceback=traceback.format_exc()[-2000:])
    return dict(out, seconds=round(time.perf_counter() - t0, 2))


def best_train_speed(train: dict) -> float | None:
    rows = train.get("result", {}).get("rows", []) if train.get("ok") else []
    speeds = [r["images_per_s"] for r in rows if r.get("images_per_s")]
    return max(speeds) if speeds else None


def _run(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(dev: torch.device) -> dict:
    """What the numbers were measured with: commit, versions, GPU."""
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    p = dict(commit=_run(["git", "rev-parse", "HEAD"]) or "unknown (not a git checkout)",
             commit_dirty=bool(dirty), setr_edu=setr_edu.__version__, **_versions(),
             cuda_build=torch.version.cuda, cudnn=torch.backends.cudnn.version() if dev.type == "cuda" else None,
             driver=_run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
             device=str(dev), device_name=_device_name(dev), amp_auto=resolve_amp("auto", dev))
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        p.update(capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / GiB, 2))
    return p


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v).replace("|", "/").replace("\n", " ")


def table(rows: list[dict]) -> list[str]:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
            *("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows)]


def section_markdown(result) -> list[str]:
    """Any section result as text + tables: ``rows`` (a list of dicts) as a table, a dict of dicts as a table
    with a ``name`` column, other fields as a two-column table."""
    if not isinstance(result, dict):
        return [_fmt(result)]
    lines, rest = [], dict(result)
    rows = rest.pop("rows", None)
    nested = {k: v for k, v in rest.items() if isinstance(v, dict)}
    flat = {k: v for k, v in rest.items() if k not in nested}
    if flat:
        lines += ["| field | value |", "|---|---|", *(f"| {k} | {_fmt(v)} |" for k, v in flat.items()), ""]
    if nested:
        lines += table([dict(name=k, **{kk: vv for kk, vv in v.items() if kk != "traceback"})
                        for k, v in nested.items()]) + [""]
    if rows:
        lines += table(rows) + [""]
    return lines


TITLES = dict(train="Training: the configurations users run", max_batch="Largest batch that fits",
              resume="Interrupt and resume", slide="Sliding-window inference", data="Data pipeline",
              chapters="Chapters (library calls, cut short)", notebooks="Notebooks (headless, gpu profile)")


def to_markdown(report: dict) -> str:
    """The report as tables, for a person to read; works on a partial report (sections still to run)."""
    lines = [f"# setr-edu GPU check ({report['scale']})", "", "## Provenance", ""]
    lines += section_markdown(report["provenance"])
    lines.append(f"Status: {report.get('status', 'running')}; {report.get('seconds', 0):.0f} s so far")
    for key, title in TITLES.items():
        if key not in report:
            continue
        sec = report[key]
        lines += ["", f"## {title}", "", f"{'ok' if sec['ok'] else 'FAILED'} in {sec['seconds']:.0f} s", ""]
        lines += section_markdown(sec["result"]) if sec["ok"] else [f"FAILED: {sec['error']}"]
    return "\n".join(lines) + "\n"


def summary_line(key: str, sec: dict) -> str:
    if not sec["ok"]:
        return f"{key}: FAILED in {sec['seconds']:.0f} s: {sec['error'].splitlines()[0][:160]}"
    res = sec["result"]
    if key == "train":
        done = [f"{r['config']}: {r['images_per_s']:.2f} img/s" for r in res["rows"] if r.get("images_per_s")]
        return f"train: ok in {sec['seconds']:.0f} s; " + ("; ".join(done) or "no configuration ran")
    if key in ("chapters", "notebooks"):
        bad = [k for k, v in res.items() if isinstance(v, dict) and not v.get("ok", v.get("status") == "passed")]
        return f"{key}: {'ok' if not bad else 'problems in ' + ', '.join(bad)} in {sec['seconds']:.0f} s"
    return f"{key}: ok in {sec['seconds']:.0f} s"


def section_ok(key: str, sec: dict) -> bool:
    if not sec["ok"]:
        return False
    if key == "chapters":
        return all(c["ok"] for c in sec["result"].values())
    if key == "notebooks":
        return all(v["status"] != "failed" for v in sec["result"].values() if isinstance(v, dict))
    return True


def check_notebooks(dev: torch.device, out: Path, seconds: float) -> dict:
    sys.path.insert(0, str(ROOT / "book" / "_scripts"))
    from execute_notebooks import book_notebooks, run_report

    nbs = book_notebooks(ROOT / "book")
    report = run_report(nbs, profile="gpu" if dev.type == "cuda" else "ci", out=out / "notebooks",
                        timeout_per_notebook=max(60, int(seconds / max(1, len(nbs)))), total_seconds=seconds)
    return {r["notebook"]: {k: v for k, v in r.items() if k != "notebook"} for r in report["notebooks"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda | cpu")
    ap.add_argument("--tiny", action="store_true", help="toy sizes: the same code in about a minute (tests, CPU)")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds for the whole check (default 900)")
    ap.add_argument("--notebooks", action="store_true", help="then run every chapter headless in the time left")
    ap.add_argument("--sections", nargs="+", default=None, choices=[k for k in TITLES if k != "notebooks"],
                    help="run only these sections")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if (dev.type == "cuda" or not args.tiny) and not torch.cuda.is_available():
        print(f"no GPU visible to torch (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
              f"use --device cpu --tiny for a dry run", file=sys.stderr)
        return 2
    if dev.type != "cuda" and not args.tiny:
        print(f"--device {dev} runs the full sizes only on a GPU; use --device cpu --tiny for a dry run",
              file=sys.stderr)
        return 2
    S = SCALES["tiny" if args.tiny else "full"]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report = dict(scale="tiny" if args.tiny else "full", provenance=provenance(dev), status="running")

    def write():
        report["seconds"] = time.perf_counter() - t0
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        (args.out / "gpu_check.md").write_text(to_markdown(report))

    write()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        sections = dict(train=lambda: check_train(S, dev, work / "train"),
                        max_batch=lambda: check_max_batch(S, dev),
                        resume=lambda: check_resume(S, dev, work / "resume"),
                        slide=lambda: check_slide(S, dev, resolve_amp("auto", dev)),
                        data=lambda: check_data(S, dev, best_train_speed(report.get("train", {}))),
                        chapters=lambda: check_chapters(dev, work / "chapters"))
        for key, fn in sections.items():
            if args.sections and key not in args.sections:
                continue
            left = args.budget - (time.perf_counter() - t0)
            if left <= 1:
                report[key] = dict(ok=False, seconds=0.0, error="skipped: the overall --budget ran out")
            else:
                report[key] = run_section(fn, budget=min(BUDGETS[key], left))
                free_memory(dev)
            print(summary_line(key, report[key]), flush=True)
            write()
        if args.notebooks:
            left = args.budget - (time.perf_counter() - t0)
            report["notebooks"] = run_section(check_notebooks, dev, args.out, left, budget=left + 60)
            print(summary_line("notebooks", report["notebooks"]), flush=True)
    keys = [k for k in TITLES if k in report]
    report["ok"] = all(section_ok(k, report[k]) for k in keys)
    report["status"] = "finished, all ok" if report["ok"] else "finished with failures"
    write()
    print(f"wrote {args.out / 'gpu_check.md'} and gpu_check.json: {report['status']}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
