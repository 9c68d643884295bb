"""Benchmarks: setr_edu's encoder against timm's ViT, and whole SETR models (book chapter 15).

Both comparisons follow the same rules: the same configuration and the **same weights** (loaded with
:func:`setr_edu.load_timm_weights`), the same work (every block's output, no final norm: timm's
``forward_intermediates(x, norm=False, intermediates_only=True)``), one process, candidates interleaved each
repetition (:func:`setr_edu.perf.timing.time_interleaved`), median and min reported.

* ``forward``: ``model.eval()`` under ``torch.inference_mode()``.
* ``train``: ``model.train()``, forward, a scalar loss (the sum of all block outputs for the encoder; SETR's
  cross-entropy with 0.4-weighted auxiliary losses for a full model), backward (and an SGD step for SETR).
* ``speedup = timm time / setr_edu time`` (= setr_edu images/s / timm images/s): **above 1 means setr_edu is
  faster**. Reported for the median (``speedup``), the min (``speedup_min``), the median CPU time
  (``speedup_cpu``) and the median of the per-repetition ratios (``speedup_paired``: each repetition runs both
  back to back, so slow drifts of the machine's load cancel).
* Precision: ``amp="auto"`` (the default) is bf16 on GPUs of compute capability >= 8.0, fp16 on older ones, fp32 on
  a CPU (:func:`setr_edu.engine.amp.resolve_amp`). On CUDA: peak memory (``torch.cuda.max_memory_allocated``)
  and model FLOPs utilisation (FLOPs counted on the meta device / time / the GPU's datasheet peak *for the
  precision used*: :func:`setr_edu.perf.timing.peak_tflops`).

Command line (``python -m setr_edu bench ...``; ``--help`` on each)::

    python -m setr_edu bench encoder --encoder base --img-size 384 --batch-size 2 --repeats 9
    python -m setr_edu bench setr --decoder pup --encoder large --img-size 512 --batch-size 8 --amp bf16
    python -m setr_edu bench flops --decoder naive pup mla --encoder base large --img-size 512 768
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys

import torch
from torch import nn

from ..config import EncoderConfig, encoder_config
from ..model import ViTEncoder, build_setr, load_timm_weights
from ..profile import get_profile
from .fastpaths import AMP_CHOICES, autocast, fused_sgd_available, resolve_amp
from .flops import count_flops
from .memory import GiB, estimate_training_memory_both
from .timing import Timing, mfu, paired_ratio, peak_tflops, time_interleaved

ENCODER_FIELDS = ("embed_dim", "depth", "num_heads", "patch_size")


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def timm_vit(cfg: EncoderConfig, img_size: int) -> nn.Module:
    """timm's ``VisionTransformer`` with ``cfg``'s shape: no classifier, fixed input size (no pos-embed resampling)."""
    from timm.layers import LayerNorm
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                             embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                             mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, num_classes=0, dynamic_img_size=False,
                             norm_layer=functools.partial(LayerNorm, eps=cfg.ln_eps))


def encoder_pair(cfg: EncoderConfig, img_size: int, device: torch.device) -> tuple[ViTEncoder, nn.Module]:
    """setr_edu's ``ViTEncoder`` and timm's ViT with the same shape and the same (timm-initialised) weights."""
    theirs = timm_vit(cfg, img_size)
    ours = ViTEncoder(cfg, img_size=img_size, keep_cls_token=True)
    load_timm_weights(ours, theirs)
    return ours.to(device), theirs.to(device)


def timm_blocks(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """timm's equivalent of ``ViTEncoder.forward``: every block's raw output as ``(B, D, h, w)``."""
    return model.forward_intermediates(x, norm=False, intermediates_only=True, output_fmt="NCHW")


def _total(outs) -> torch.Tensor:
    return sum(o.float().sum() for o in outs)


def _summary(t: Timing, flops_per_image: float, device: torch.device, peak: float | None) -> dict:
    row = dict(median_ms=1e3 * t.median, min_ms=1e3 * t.min, cpu_median_ms=1e3 * t.cpu_median,
               images_per_s=t.images_per_s, tflops=flops_per_image * t.images_per_s / 1e12)
    if peak:
        row["mfu"] = mfu(flops_per_image, t.images_per_s, peak)
    if t.peak_memory is not None:
        row["peak_memory_gib"] = t.peak_memory / GiB
    return row


def _peak(device: torch.device, peak_tflops_override: float | None, amp: str | None) -> float | None:
    """The peak for MFU: the override, else the datasheet peak of this GPU for the precision ``amp`` used."""
    if peak_tflops_override:
        return peak_tflops_override
    return peak_tflops(torch.cuda.get_device_name(device), amp) if device.type == "cuda" else None


def bench_encoder(encoder: str | EncoderConfig = "base", img_size: int = 384, batch_size: int = 2, repeats: int = 9,
                  warmup: int = 2, device: str | None = None, amp: str | None = "auto",
                  modes: tuple[str, ...] = ("forward", "train"), compile: bool = False,
                  peak_tflops: float | None = None, **overrides) -> dict:
    """Time setr_edu's encoder against timm's ViT (same shape, same weights), interleaved.

    Returns a JSON-able dict: ``config``, ``flops_per_image`` (forward and train, meta-device counts),
    ``max_abs_diff`` (outputs of the two models on the benchmark batch; a sanity check), and per mode
    ``{"setr_edu": row, "timm": row, "speedup": ..., "speedup_min": ...}`` where a row holds ``median_ms``,
    ``min_ms``, ``images_per_s``, ``tflops`` and, on CUDA, ``mfu`` and ``peak_memory_gib``.
    """
    dev = resolve_device(device)
    amp = resolve_amp(amp, dev)
    cfg = encoder_config(encoder, **overrides)
    ours, theirs = encoder_pair(cfg, img_size, dev)
    run_ours, run_timm = ours, (lambda inp: timm_blocks(theirs, inp))
    if compile:
        run_ours, run_timm = torch.compile(run_ours), torch.compile(run_timm)
    x = torch.randn(batch_size, cfg.in_chans, img_size, img_size, device=dev)
    fl = count_flops(lambda: ViTEncoder(cfg, img_size=img_size), (1, cfg.in_chans, img_size, img_size), backward=True)
    peak = _peak(dev, peak_tflops, amp)
    result = dict(config=dict(encoder=encoder if isinstance(encoder, str) else "custom", **cfg.__dict__,
                              img_size=img_size, batch_size=batch_size, amp=amp, compile=compile,
                              device=str(dev), device_name=_device_name(dev), threads=torch.get_num_threads(),
                              repeats=repeats, warmup=warmup, **_versions()),
                  flops_per_image=dict(forward=fl.forward, train=fl.total))
    with torch.inference_mode(), autocast(dev, amp):
        ours.eval(), theirs.eval()
        diffs = [(a.float() - b.float()).abs().max().item() for a, b in zip(run_ours(x), run_timm(x))]
    result["max_abs_diff"] = max(diffs)

    def forward(model, run):
        def fn():
            model.eval()
            with torch.inference_mode(), autocast(dev, amp):
                run(x)
        return fn

    def train(model, run):
        def fn():
            model.train()
            model.zero_grad(set_to_none=True)
            with autocast(dev, amp):
                loss = _total(run(x))
            loss.backward()
        return fn

    for mode in modes:
        make = {"forward": forward, "train": train}[mode]
        flops = fl.forward if mode == "forward" else fl.total
        times = time_interleaved({"setr_edu": make(ours, run_ours), "timm": make(theirs, run_timm)},
                                 repeats=repeats, warmup=warmup, device=dev, batch_size=batch_size)
        a, b = times["setr_edu"], times["timm"]
        result[mode] = dict(setr_edu=_summary(a, flops, dev, peak), timm=_summary(b, flops, dev, peak),
                            speedup=b.median / a.median, speedup_min=b.min / a.min,
                            speedup_cpu=b.cpu_median / a.cpu_median,
                            speedup_paired=paired_ratio(b, a))
    return result


def _device_name(dev: torch.device) -> str:
    """The GPU's name, or for a CPU its model, core count and widest vector ISA (``"AMD EPYC, 2 cores, AVX2"``)."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:  # not Linux
        pass
    isa = torch.backends.cpu.get_cpu_capability()  # e.g. AVX2, AVX512, DEFAULT
    return f"{model}, {os.cpu_count()} cores, {isa}"


def _versions() -> dict:
    import timm

    return dict(torch=torch.__version__, timm=timm.__version__, python=platform.python_version())


def setr_train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    amp: str | None, scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One SETR training step: :func:`setr_edu.engine.losses.setr_loss` (CE + 0.4 x each aux head), SGD step.

    With a ``scaler`` (fp16) the loss is scaled before ``backward`` and the step is skipped on inf/NaN gradients,
    as in the Trainer. Returns the (unscaled) loss."""
    from ..engine.losses import setr_loss

    opt.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        logits, aux = model(x, with_aux=True)
        loss, _ = setr_loss(logits, y, aux)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss.detach()


def bench_setr(decoder: str = "pup", encoder: str = "large", img_size: int = 512, batch_size: int = 8,
               num_classes: int = 150, repeats: int = 5, warmup: int = 2, device: str | None = None,
               amp: str | None = "auto", checkpointing: tuple[bool, ...] = (False, True), inference: bool = True,
               channels_last: bool = False, peak_tflops: float | None = None, decoder_channels: int = 256,
               estimate: bool = True, **overrides) -> dict:
    """Images/s of a full SETR model for training (with/without activation checkpointing) and inference.

    Returns ``config``, ``flops_per_image`` (``forward`` with the main head only, ``train`` with the auxiliary
    heads, forward + backward), and one row per measured variant (``train``, ``train+ckpt``, ``inference``) with
    ``images_per_s``, ``median_ms``, ``min_ms``, ``tflops`` (and ``mfu``, ``peak_memory_gib`` on CUDA), plus
    ``estimated_memory_gib`` for each training variant (:func:`.estimate_training_memory`). A variant that runs
    out of GPU memory is reported as ``{"error": "out of memory"}``.
    """
    dev = resolve_device(device)
    amp = resolve_amp(amp, dev)  # "auto": bf16 / fp16 by GPU generation, fp32 on a CPU
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16" and dev.type == "cuda")
    kw = dict(encoder=encoder, num_classes=num_classes, img_size=img_size, decoder_channels=decoder_channels, **overrides)
    model = build_setr(decoder, **kw).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, img_size, img_size, device=dev)
    y = torch.randint(0, num_classes, (batch_size, img_size, img_size), device=dev)
    fused = (dev.type == "cuda" and fused_sgd_available(dev)) or None  # CPU: foreach (one stall seen with fused)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, fused=fused)
    shape = (1, 3, img_size, img_size)
    fl_inf = count_flops(lambda: build_setr(decoder, **kw), shape)
    fl_train = count_flops(lambda: build_setr(decoder, **kw), shape, backward=True,
                           forward_fn=lambda m, inp: m(inp, with_aux=True))  # = flops.train_flops: MFU's FLOPs
    result = dict(config=dict(decoder=decoder, batch_size=batch_size, amp=amp, channels_last=channels_last,
                              device=str(dev), device_name=_device_name(dev), **_versions(),
                              params=sum(p.numel() for p in model.parameters()), **kw),
                  flops_per_image=dict(forward=fl_inf.forward, train=fl_train.total))

    def train(ckpt: bool):
        def fn():
            model.train()
            model.encoder.grad_checkpointing = ckpt
            setr_train_step(model, opt, x, y, amp, scaler)
        return fn

    def infer():
        model.eval()
        with torch.inference_mode(), autocast(dev, amp):
            model(x)

    fns = {("train+ckpt" if c else "train"): train(c) for c in checkpointing}
    if inference:
        fns["inference"] = infer
    for name in list(fns):  # a first call of each; drop variants that do not fit in memory
        try:
            fns[name]()
        except torch.cuda.OutOfMemoryError:
            del fns[name]
            result[name] = dict(error="out of memory")
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    peak = _peak(dev, peak_tflops, amp)
    times = time_interleaved(fns, repeats=repeats, warmup=max(0, warmup - 1), device=dev, batch_size=batch_size)
    for name, t in times.items():
        flops = fl_inf.forward if name == "inference" else fl_train.total
        result[name] = _summary(t, flops, dev, peak)
    model.encoder.grad_checkpointing = False
    if estimate:
        est = estimate_training_memory_both(lambda: build_setr(decoder, **kw), (batch_size, 3, img_size, img_size), amp)
        for c in checkpointing:
            result.setdefault("train+ckpt" if c else "train", {})["estimated_memory_gib"] = est[c].total / GiB
    return result


def encoder_rows(result: dict) -> list[dict]:
    """Flatten a :func:`bench_encoder` result into table rows (one per mode and implementation)."""
    rows = []
    for mode in ("forward", "train"):
        if mode not in result:
            continue
        for impl in ("setr_edu", "timm"):
            r = result[mode][impl]
            rows.append(dict(mode=mode, impl=impl, median_ms=r["median_ms"], min_ms=r["min_ms"],
                             images_per_s=r["images_per_s"], tflops=r["tflops"], mfu=r.get("mfu"),
                             peak_memory_gib=r.get("peak_memory_gib"),
                             speedup=result[mode]["speedup"] if impl == "setr_edu" else None,
                             speedup_min=result[mode]["speedup_min"] if impl == "setr_edu" else None,
                             cpu_median_ms=r["cpu_median_ms"],
                             speedup_cpu=result[mode]["speedup_cpu"] if impl == "setr_edu" else None,
                             speedup_paired=result[mode]["speedup_paired"] if impl == "setr_edu" else None))
    return rows


def setr_rows(result: dict) -> list[dict]:
    """Flatten a :func:`bench_setr` result into table rows (one per variant)."""
    c = result["config"]
    rows = []
    for name in ("train", "train+ckpt", "inference"):
        if name in result:
            r = result[name]
            rows.append(dict(model=f"SETR-{c['decoder'].upper()} {c['encoder']}@{c['img_size']}", variant=name,
                             images_per_s=r.get("images_per_s"), median_ms=r.get("median_ms"), tflops=r.get("tflops"),
                             mfu=r.get("mfu"), peak_memory_gib=r.get("peak_memory_gib"),
                             estimated_memory_gib=r.get("estimated_memory_gib"), error=r.get("error")))
    return rows


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: cuda if available)")
    p.add_argument("--amp", default="auto", choices=AMP_CHOICES,
                   help="autocast precision (default auto: bf16 on GPUs of compute capability >= 8.0, fp16 + "
                        "GradScaler on older GPUs, none on CPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions (default: the profile's, at least 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU peak for MFU when the GPU is not in the table")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    for f in ENCODER_FIELDS:
        p.add_argument("--" + f.replace("_", "-"), type=int, default=None, help=f"override the encoder's {f}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m setr_edu bench", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encoder", help="setr_edu's ViTEncoder vs timm's ViT (same shape and weights), interleaved")
    e.add_argument("--encoder", default="base", help="tiny | small | base | large (default base)")
    e.add_argument("--img-size", type=int, default=384)
    e.add_argument("--batch-size", type=int, default=2)
    e.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    e.add_argument("--compile", action="store_true", help="torch.compile both models (compiled vs compiled)")
    s = sub.add_parser("setr", help="whole SETR models: images/s for training and inference, peak memory")
    s.add_argument("--decoder", nargs="+", default=["pup"], choices=["naive", "pup", "mla"])
    s.add_argument("--encoder", nargs="+", default=None, help="default: the profile's (large on a GPU)")
    s.add_argument("--img-size", nargs="+", type=int, default=None, help="default: the profile's (512 on a GPU)")
    s.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    s.add_argument("--num-classes", type=int, default=150)
    s.add_argument("--checkpointing", default="both", choices=["both", "on", "off"])
    s.add_argument("--channels-last", action="store_true", help="store decoder convs channels-last")
    s.add_argument("--no-estimate", action="store_true", help="skip the meta-device memory estimate")
    f = sub.add_parser("flops", help="FLOPs and estimated training memory per SETR variant (meta device, no timing)")
    f.add_argument("--decoder", nargs="+", default=["naive", "pup", "mla"], choices=["naive", "pup", "mla"])
    f.add_argument("--encoder", nargs="+", default=["base", "large"])
    f.add_argument("--img-size", nargs="+", type=int, default=[512, 768])
    f.add_argument("--batch-size", type=int, default=8)
    f.add_argument("--amp", default="bf16", choices=["none", "bf16", "fp16"])
    f.add_argument("--json", default=None)
    for p in (e, s):
        _add_common(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m setr_edu bench``; prints tables, optionally writes JSON. Returns 0."""
    from .tables import format_table, variant_costs

    args = build_parser().parse_args(argv)
    if args.what == "flops":
        amp = None if args.amp == "none" else args.amp
        rows = variant_costs(args.decoder, args.encoder, args.img_size, batch_size=args.batch_size, amp=amp)
        print(f"per image; memory for batch {args.batch_size}, amp={amp}, SGD momentum (estimates, not measured)")
        print(format_table(rows))
        results: object = rows
    else:
        dev = resolve_device(args.device)
        amp = resolve_amp(args.amp, dev)
        if args.threads:
            torch.set_num_threads(args.threads)
        P = get_profile()
        repeats = args.repeats or max(5, P.bench_repeats)
        over = {k: getattr(args, k) for k in ENCODER_FIELDS if getattr(args, k) is not None}
        common = dict(repeats=repeats, warmup=args.warmup, device=str(dev), amp=amp, peak_tflops=args.peak_tflops)
        if args.what == "encoder":
            results = bench_encoder(args.encoder, args.img_size, args.batch_size, modes=tuple(args.modes),
                                    compile=args.compile, **common, **over)
            c = results["config"]
            print(f"{c['encoder']} D={c['embed_dim']} depth={c['depth']} @ {c['img_size']}, batch {c['batch_size']}, "
                  f"{c['device_name']}, amp={amp}, {c['threads']} threads; max |diff| {results['max_abs_diff']:.1e}")
            print("speedup = timm time / setr_edu time (> 1: setr_edu is faster)")
            print(format_table(encoder_rows(results)))
        else:
            if not (args.encoder and args.img_size):  # profile-sized defaults (e.g. a CPU toy model)
                over = {**P.encoder_overrides, "decoder_channels": P.decoder_channels, **over}
            results = []
            ckpt = {"both": (False, True), "on": (True,), "off": (False,)}[args.checkpointing]
            for enc in args.encoder or [P.encoder]:
                for size in args.img_size or [P.img_size]:
                    for dec in args.decoder:
                        r = bench_setr(dec, enc, size, args.batch_size or P.batch_size, args.num_classes,
                                       checkpointing=ckpt, channels_last=args.channels_last,
                                       estimate=not args.no_estimate, **common, **over)
                        results.append(r)
                        print(format_table(setr_rows(r)), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
