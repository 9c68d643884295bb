"""The GPU acceptance check of setr-edu: one command for whoever has a GPU (needs torch, timm, numpy, matplotlib).

    PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT                    # one GPU, under 8 minutes
    PYTHONPATH=. python3 benchmarks/gpu_check.py --device cpu --tiny --out /tmp/x   # the same code, under a minute

Writes ``OUT/gpu_check.json`` (every number) and ``OUT/gpu_check.md`` (the same as tables). Sections:

1. ``train``: SETR-PUP T-Large @ 512 (``--tiny``: a toy SETR @ 64) for a few dozen iterations in bf16, bf16 with
   activation checkpointing and fp16 with a GradScaler: images/s, MFU against the peak of the precision used,
   peak memory beside the library's estimate (``setr_edu.perf.estimate_training_memory``);
2. ``resume``: a Trainer run interrupted half-way and resumed on the device, against one that never stopped: the
   largest weight difference it ends at (0 on a CPU; CUDA kernels such as bilinear backward are nondeterministic);
3. ``slide``: sliding-window inference at 512 (an ADE20K-sized image) and 768 (a Cityscapes frame), images/s;
4. ``data``: the training pipeline (decoding + the paper's augmentation) on generated ADE20K-like JPEG/PNG pairs
   through a DataLoader with the library's default workers for 30 s (``setr_edu.perf.data_bench.measure_loader``):
   samples/s, and whether that keeps up with the training speed of section 1;
5. ``chapters``: the library calls each gpu-profile chapter makes (ch09-ch15), cut short: ok or the error.

A section that fails is recorded with its error and the check goes on; the exit status is 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import setr_edu
from setr_edu.engine.inference import predict, slide_inference
from setr_edu.perf import count_flops, estimate_training_memory_both
from setr_edu.perf.bench import _device_name, _peak, _versions, setr_train_step
from setr_edu.perf.fastpaths import resolve_amp
from setr_edu.perf.timing import synchronize
from setr_edu.profile import PROFILES

TOY = dict(encoder="tiny", embed_dim=64, depth=4, num_heads=2, patch_size=8, decoder_channels=32)
SCALES = {
    "full": dict(model=dict(encoder="large"), img=512, batch=8, iters=30, warmup=5, classes=150,
                 slide=[(512, (512, 683), 150), (768, (1024, 2048), 19)], slide_images=6,
                 data_seconds=30.0, data_image=(512, 683), data_scale=(2048, 512), resume_iters=20),
    "tiny": dict(model=TOY, img=64, batch=2, iters=2, warmup=1, classes=19,
                 slide=[(64, (64, 86), 150), (96, (128, 256), 19)], slide_images=1,
                 data_seconds=2.0, data_image=(96, 128), data_scale=(256, 64), resume_iters=4),
}
VARIANTS = (("bf16", "bf16", False), ("bf16+ckpt", "bf16", True), ("fp16+GradScaler", "fp16", False))


def peak_memory_gib(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def build(S: dict, img: int, classes: int, decoder: str = "pup"):
    kw = dict(S["model"])
    return lambda: setr_edu.build_setr(decoder, num_classes=classes, img_size=img, **kw)


# --- 1. training speed per precision ---------------------------------------------------------------------------
def check_train(S: dict, dev: torch.device) -> dict:
    make, img, B = build(S, S["img"], S["classes"]), S["img"], S["batch"]
    flops = count_flops(make, (1, 3, img, img), backward=True, forward_fn=lambda m, x: m(x, with_aux=True)).total
    model = make().to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = torch.randn(B, 3, img, img, device=dev)
    y = torch.randint(0, S["classes"], (B, img, img), device=dev)
    out = dict(model=f"SETR-PUP {S['model']['encoder']} @ {img}", batch=B, iters=S["iters"],
               train_tflops_per_image=flops / 1e12, variants={})
    estimates = {amp: estimate_training_memory_both(make, (B, 3, img, img), amp=amp) for amp in ("bf16", "fp16")}
    for label, amp, ckpt in VARIANTS:
        model.encoder.grad_checkpointing = ckpt
        scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")
        est = estimates[amp][ckpt].total / 2**30
        row = dict(amp=amp, checkpointing=ckpt, estimated_memory_gib=est)
        if amp == "bf16" and resolve_amp("auto", dev) == "fp16":  # the rule amp=auto applies
            row["error"] = "skipped: no bf16 tensor cores (compute capability < 8.0; amp=auto uses fp16 here)"
            out["variants"][label] = row
            continue
        try:
            reset_peak(dev)
            for i in range(S["warmup"] + S["iters"]):
                if i == S["warmup"]:
                    synchronize(dev)
                    t0 = time.perf_counter()
                loss = setr_train_step(model, opt, x, y, amp, scaler)
            synchronize(dev)
            ips = B * S["iters"] / (time.perf_counter() - t0)
            peak = _peak(dev, None, amp)
            row.update(images_per_s=ips, tflops=flops * ips / 1e12, loss=float(loss),
                       mfu=flops * ips / (peak * 1e12) if peak else None, peak_tflops=peak,
                       peak_memory_gib=peak_memory_gib(dev), finite=bool(math.isfinite(float(loss))))
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # OOM, or bf16 unsupported on an old GPU
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            opt.zero_grad(set_to_none=True)
        out["variants"][label] = row
    model.encoder.grad_checkpointing = False
    return out


# --- 2. interrupt and resume -------------------------------------------------------------------------------------
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


# --- 3. sliding-window inference -----------------------------------------------------------------------------------
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


# --- 4. data pipeline with workers -------------------------------------------------------------------------------
def check_data(S: dict, dev: torch.device, train_ips: float | None) -> dict:
    """The ADE20K training pipeline (JPEG/PNG decode + the paper's augmentation) on generated images, through a
    DataLoader with the library's default number of workers: does it keep up with the GPU?"""
    from setr_edu.perf.data_bench import measure_loader

    r = measure_loader(seconds=S["data_seconds"], batch_size=S["batch"], crop=S["img"], img_scale=S["data_scale"],
                       size=S["data_image"], pin_memory=dev.type == "cuda")
    return dict(r, per_worker=r["samples_per_s"] / max(1, r["num_workers"]), training_images_per_s=train_ips,
                keeps_up=None if train_ips is None else bool(r["samples_per_s"] >= train_ips))


# --- 5. what the gpu-profile chapters call -----------------------------------------------------------------------
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
def run_section(fn, *args) -> dict:
    """``{"ok": True, "seconds", "result"}``, or ``{"ok": False, "seconds", "error", "traceback"}``."""
    t0 = time.perf_counter()
    try:
        out = dict(ok=True, result=fn(*args))
    except Exception as e:  # noqa: BLE001  a failed section is a result, not the end of the check
        out = dict(ok=False, error=f"{type(e).__name__}: {e}"[:500], traceback=traceback.format_exc()[-2000:])
    return dict(out, seconds=round(time.perf_counter() - t0, 2))


def best_train_speed(train: dict) -> float | None:
    rows = train.get("result", {}).get("variants", {}).values() if train.get("ok") else []
    speeds = [r["images_per_s"] for r in rows if "images_per_s" in r]
    return max(speeds) if speeds else None


def to_markdown(report: dict) -> str:
    """The report as tables, for a person to read."""
    e, lines = report["environment"], []
    lines += [f"# setr-edu GPU check ({report['scale']})", "",
              f"{e['device_name']}, torch {e['torch']}, timm {e['timm']}, amp=auto -> {e['amp_auto']}; "
              f"total {report['seconds']:.0f} s", ""]
    t = report["train"]
    lines += ["## Training", ""]
    if t["ok"]:
        r = t["result"]
        lines += [f"{r['model']}, batch {r['batch']}, {r['iters']} timed iterations, "
                  f"{r['train_tflops_per_image']:.2f} TFLOPs per training image", "",
                  "| variant | images/s | MFU | peak memory GiB | estimate GiB | note |", "|---|---|---|---|---|---|"]
        for name, v in r["variants"].items():
            fmt = lambda k, f: "" if v.get(k) is None else f.format(v[k])
            lines.append(f"| {name} | {fmt('images_per_s', '{:.2f}')} | {fmt('mfu', '{:.1%}')} | "
                         f"{fmt('peak_memory_gib', '{:.2f}')} | {v['estimated_memory_gib']:.2f} | "
                         f"{v.get('error', '')} |")
    else:
        lines.append(f"FAILED: {t['error']}")
    for key, title in (("resume", "Interrupt and resume"), ("slide", "Sliding-window inference"),
                       ("data", "Data pipeline")):
        sec = report[key]
        lines += ["", f"## {title}", "", f"`{json.dumps(sec['result'])}`" if sec["ok"] else f"FAILED: {sec['error']}"]
    lines += ["", "## Chapters (library calls, cut short)", "", "| chapter | ok | seconds | result |", "|---|---|---|---|"]
    for name, sec in report["chapters"]["result"].items():
        lines.append(f"| {name} | {sec['ok']} | {sec['seconds']} | {sec.get('result', sec.get('error', ''))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda | cpu")
    ap.add_argument("--tiny", action="store_true", help="toy sizes: the same code in under a minute (tests, CPU)")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but PyTorch sees no GPU; use --device cpu --tiny to check the code on a CPU")
    S = SCALES["tiny" if args.tiny else "full"]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    amp = resolve_amp("auto", dev)
    report = dict(scale="tiny" if args.tiny else "full", environment=dict(
        device=str(dev), device_name=_device_name(dev), **_versions(), amp_auto=amp,
        capability=list(torch.cuda.get_device_capability(dev)) if dev.type == "cuda" else None))
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        report["train"] = run_section(check_train, S, dev)
        report["resume"] = run_section(check_resume, S, dev, work / "resume")
        report["slide"] = run_section(check_slide, S, dev, amp)
        report["data"] = run_section(check_data, S, dev, best_train_speed(report["train"]))
        report["chapters"] = run_section(check_chapters, dev, work / "chapters")
    report["seconds"] = time.perf_counter() - t0
    chapters_ok = report["chapters"]["ok"] and all(c["ok"] for c in report["chapters"]["result"].values())
    report["ok"] = chapters_ok and all(report[k]["ok"] for k in ("train", "resume", "slide", "data"))
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "gpu_check.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
