"""Data-pipeline benchmark: setr_edu's training transforms against the same pipeline written the way mmseg writes
it with OpenCV, and a real-format dataset through a ``DataLoader`` with N workers (book chapter 15).

* :class:`OpenCVReference` is mmseg's training pipeline (``Resize`` with ``mmcv.imrescale``, ``RandomCrop`` with
  ``np.unique``, ``RandomFlip``, ``PhotoMetricDistortion`` with float ``convert`` and ``cv2.cvtColor``,
  ``Normalize`` with ``cv2.subtract``/``cv2.multiply``, ``Pad`` with ``cv2.copyMakeBorder``, ``ImageToTensor``),
  written directly with OpenCV and NumPy. It draws its randomness through the same transform objects, so for one
  seed it computes the same sample as ours (the tests check this).
* ``per core``: one thread (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``), both pipelines over the same
  decoded images, interleaved every repetition (:func:`setr_edu.perf.timing.time_interleaved`), median reported;
  ``ratio = reference time / our time`` (above 1: ours is faster), also as the median of per-repetition ratios.
* ``loader``: samples/s of an ADE20K-layout dataset (JPEG images, PNG labels, decoded by the dataset) through a
  ``DataLoader`` with 0 and N workers, ours and the reference alternating (the main process single-threaded).

    python -m setr_edu bench data                                  # 512 crops of 512x683 images, 2 workers
    python -m setr_edu bench data --workers 0 4 8 --seconds 20 --json out.json
    python -m setr_edu bench data --root data/ade20k               # real ADE20K images instead of generated ones
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler

from ..data.transforms import (
    Compose, Normalize, Pad, PhotoMetricDistortion, RandomCrop, RandomFlip, RandomResize, ToTensor, _as_numpy,
)
from ..data.pipelines import train_pipeline
from .timing import paired_ratio, time_interleaved


# --- the reference ----------------------------------------------------------------------------------------------
class OpenCVReference(Compose):
    """mmseg's way of computing the steps of ``transforms`` (a :class:`Compose` of the same step objects)."""

    def __call__(self, image, label, rng: np.random.Generator | None = None):
        rng = np.random.default_rng() if rng is None else rng
        img, seg = _as_numpy(image, label)
        for t in self.transforms:
            if isinstance(t, RandomResize):  # mmcv.imrescale: cv2.resize, bilinear image, nearest label
                h, w = t.draw_size(img.shape[0], img.shape[1], rng)
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
                if t.resize_label:
                    seg = cv2.resize(seg, (w, h), interpolation=cv2.INTER_NEAREST)
            elif isinstance(t, RandomCrop):
                y0, y1, x0, x1 = t.window(*seg.shape[:2], rng)
                for _ in range(10 if t.cat_max_ratio < 1 else 0):
                    labels, cnt = np.unique(seg[y0:y1, x0:x1], return_counts=True)
                    cnt = cnt[labels != t.ignore_index]
                    if len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < t.cat_max_ratio:
                        break
                    y0, y1, x0, x1 = t.window(*seg.shape[:2], rng)
                img, seg = img[y0:y1, x0:x1], seg[y0:y1, x0:x1]
            elif isinstance(t, RandomFlip):
                if t.draw(rng):
                    img, seg = np.flip(img, axis=1), np.flip(seg, axis=1)
            elif isinstance(t, PhotoMetricDistortion):
                img = self.photometric(np.ascontiguousarray(img), t.draw(rng))
            elif isinstance(t, Normalize):  # mmcv.imnormalize
                img = img.copy().astype(np.float32)
                cv2.subtract(img, np.float64(t.mean.reshape(1, -1)), img)
                cv2.multiply(img, 1 / np.float64(t.std.reshape(1, -1)), img)
            elif isinstance(t, Pad):  # mmcv.impad
                ph, pw = max(t.size[0] - img.shape[0], 0), max(t.size[1] - img.shape[1], 0)
                img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=t.pad_val)
                seg = cv2.copyMakeBorder(np.ascontiguousarray(seg), 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                         value=t.seg_pad_val)
            elif isinstance(t, ToTensor):  # ImageToTensor + DefaultFormatBundle
                img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
                seg = torch.from_numpy(seg.astype(np.int64))
            else:
                raise TypeError(f"OpenCVReference has no rule for {type(t).__name__}")
        return img, seg

    @staticmethod
    def photometric(img: np.ndarray, steps) -> np.ndarray:
        def convert(x, alpha=1.0, beta=0.0):
            return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

        for name, value in steps:
            if name == "brightness":
                img = convert(img, beta=value)
            elif name == "contrast":
                img = convert(img, alpha=value)
            else:
                hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
                if name == "saturation":
                    hsv[:, :, 1] = convert(hsv[:, :, 1], alpha=value)
                else:
                    hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + value) % 180
                img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return img


def reference_pipeline(crop: int, img_scale: tuple[int, int], **kw) -> OpenCVReference:
    """The OpenCV reference of ``train_pipeline(crop, img_scale, **kw)``."""
    return OpenCVReference(train_pipeline(crop, img_scale, fast=False, **kw).transforms)


# --- test data in the real on-disk format -------------------------------------------------------------------------
def synthetic_scene(h: int, w: int, seed: int = 0, regions: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like uint8 image ``(h, w, 3)`` (smooth colour field + grain) and an ADE20K-style label ``(h, w)``:
    ``regions`` Voronoi cells with values in 0-150 (0 = "other")."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    centres = rng.integers(0, (h, w), (regions, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    nearest = np.argmin([(yy - cy) ** 2 + (xx - cx) ** 2 for cy, cx in centres], axis=0)
    return img, rng.permutation(151)[:regions].astype(np.uint8)[nearest]


def write_fake_ade20k(root: str | Path, n_train: int = 16, n_val: int = 4, size: tuple[int, int] = (512, 683),
                      seed: int = 0) -> Path:
    """Write ``root/ADEChallengeData2016`` with :func:`synthetic_scene` images (JPEG, quality 90) and labels (PNG),
    the real dataset's layout and file formats; returns ``root``."""
    base = Path(root) / "ADEChallengeData2016"
    for split, sub, n in (("train", "training", n_train), ("val", "validation", n_val)):
        (base / "images" / sub).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, lab = synthetic_scene(*size, seed=seed + 1000 * (split == "val") + i)
            stem = f"ADE_{split}_{i + 1:08d}"
            Image.fromarray(img).save(base / "images" / sub / f"{stem}.jpg", quality=90)
            Image.fromarray(lab).save(base / "annotations" / sub / f"{stem}.png")
    return Path(root)


# --- measurements -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def one_thread():
    """One thread for PyTorch and OpenCV in this process (DataLoader workers are single-threaded anyway): the
    per-core figure, and a main process that does not compete with its workers for cores."""
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def bench_transforms(crop: int = 512, img_scale: tuple[int, int] = (2048, 512), size: tuple[int, int] = (512, 683),
                     samples: int = 16, repeats: int = 7, warmup: int = 1, images=None, readable: bool = True) -> dict:
    """ms per sample of ours vs the OpenCV reference on one core (and the readable pipeline, ``readable=True``);
    ``images``: list of ``(image, label)`` (default ``samples`` synthetic scenes of ``size``). Each repetition
    runs every image once with seeds 0, 1, ..."""
    images = images or [synthetic_scene(*size, seed=i) for i in range(samples)]
    ours, ref = train_pipeline(crop, img_scale), reference_pipeline(crop, img_scale)

    def run(pipe):
        return lambda: [pipe(im, lb, np.random.default_rng(i)) for i, (im, lb) in enumerate(images)]

    fns = {"ours": run(ours), "opencv": run(ref)}
    if readable:
        fns["readable"] = run(ours.readable())
    with one_thread():
        t = time_interleaved(fns, repeats=repeats, warmup=warmup)
    n = len(images)
    return dict(ms_per_sample={k: 1000 * v.median / n for k, v in t.items()},
                samples_per_s_per_core={k: n / v.median for k, v in t.items()},
                ratio=t["opencv"].median / t["ours"].median, ratio_paired=paired_ratio(t["opencv"], t["ours"]),
                ratio_readable=t["opencv"].median / t["readable"].median if readable else None,
                ratio_min=t["opencv"].min / t["ours"].min, images=n, repeats=repeats,
                image_size=list(images[0][0].shape[:2]), crop=crop, img_scale=list(img_scale))


def loader_throughput(dataset, num_workers: int, batch_size: int = 8, seconds: float = 10.0,
                      pin_memory: bool = False, warmup_batches: int = 2) -> dict:
    """Samples/s that ``dataset`` delivers through a ``DataLoader`` (random order, with replacement) during
    ``seconds``, after ``warmup_batches`` (worker start-up is not counted); the main process runs
    :func:`one_thread`."""
    from ..data.loader import loader_kwargs

    sampler = RandomSampler(dataset, replacement=True, num_samples=10 ** 9, generator=torch.Generator().manual_seed(0))
    with one_thread():  # before loader_kwargs, which makes OpenCV single-threaded: restored on the way out
        kw = loader_kwargs(num_workers, torch.device("cuda" if pin_memory else "cpu"))
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kw)
        it, count = iter(loader), 0
        for _ in range(warmup_batches):
            next(it)
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            images, _ = next(it)
            count += images.shape[0]
        del it
    return dict(num_workers=num_workers, batch_size=batch_size, samples=count, seconds=elapsed,
                samples_per_s=count / elapsed)


def measure_loader(root: str | Path | None = None, seconds: float = 30.0, num_workers: int | None = None,
                   batch_size: int = 8, crop: int = 512, img_scale=(2048, 512), pin_memory: bool | None = None,
                   size: tuple[int, int] = (512, 683)) -> dict:
    """Samples/s of the ADE20K training pipeline (decode + our transforms) through a DataLoader with the
    library's settings: ``root`` an ADE20K folder, or None to generate 32 pairs of ``size`` in a temporary folder;
    ``num_workers`` None: the library's default for this machine; ``pin_memory`` None: when CUDA is available.
    For a GPU check: compare ``samples_per_s`` with the training images/s the GPU reaches."""
    from ..data import ADE20K
    from ..data.loader import default_num_workers

    workers = default_num_workers() if num_workers is None else num_workers
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    with tempfile.TemporaryDirectory() as tmp:
        folder = root or write_fake_ade20k(tmp, n_train=32, n_val=1, size=size)
        dataset = ADE20K(folder, "train", transforms=train_pipeline(crop, img_scale))
        result = loader_throughput(dataset, workers, batch_size, seconds, pin_memory=pin)
    return dict(result, crop=crop, pin_memory=pin, data=str(root) if root else f"generated, {size[0]}x{size[1]}")


def bench_loader(root: str | Path, workers=(0, 2), crop: int = 512, img_scale=(2048, 512), batch_size: int = 8,
                 seconds: float = 10.0) -> list[dict]:
    """:func:`loader_throughput` of ADE20K at ``root`` with our pipeline and the reference, alternating."""
    from ..data import ADE20K

    rows = []
    for w in workers:
        pair = [("ours", train_pipeline(crop, img_scale)), ("opencv", reference_pipeline(crop, img_scale))]
        for name, tf in (pair if len(rows) % 4 == 0 else pair[::-1]):
            r = loader_throughput(ADE20K(root, "train", transforms=tf), w, batch_size, seconds)
            rows.append(dict(pipeline=name, **r))
    return rows


def machine() -> dict:
    """CPU model, cores, library versions (recorded with every result)."""
    from ..data.loader import usable_cores
    from .bench import _device_name

    return dict(device_name=_device_name(torch.device("cpu")), cpu_count=os.cpu_count(), usable_cores=usable_cores(),
                python=platform.python_version(), torch=torch.__version__, opencv=cv2.__version__,
                numpy=np.__version__, pillow=Image.__version__)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m setr_edu bench data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", type=int, default=512, help="crop size (default 512, ADE20K's)")
    ap.add_argument("--img-scale", type=int, nargs=2, default=(2048, 512), metavar=("LONG", "SHORT"),
                    help="base scale of the random resize (default 2048 512, ADE20K's)")
    ap.add_argument("--size", type=int, nargs=2, default=(512, 683), metavar=("H", "W"),
                    help="size of the generated images (default 512 683, a typical ADE20K photo)")
    ap.add_argument("--samples", type=int, default=16, help="images per repetition (default 16)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repetitions per core (default 7)")
    ap.add_argument("--workers", type=int, nargs="*", default=None,
                    help="DataLoader worker counts to measure (default: 0 and the library's default for this "
                         "machine); none: skip the loader measurement")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per loader measurement (default 10)")
    ap.add_argument("--batch-size", type=int, default=8, help="loader batch size (default 8)")
    ap.add_argument("--root", default=None, help="an ADE20K folder to read (default: generate one in a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    return ap


def main(argv: list[str] | None = None) -> int:
    from ..data.loader import default_num_workers

    args = build_parser().parse_args(argv)
    out = dict(command=" ".join(["python -m setr_edu bench data", *(argv or [])]), machine=machine())
    r = out["per_core"] = bench_transforms(args.crop, tuple(args.img_scale), tuple(args.size), args.samples,
                                           args.repeats)
    ms = r["ms_per_sample"]
    print(f"per core, {r['images']} images {r['image_size'][0]}x{r['image_size'][1]} -> {args.crop} crops: "
          f"ours {ms['ours']:.1f} ms/sample, OpenCV reference {ms['opencv']:.1f} ms/sample; "
          f"ratio (reference/ours, > 1: ours faster) {r['ratio']:.2f}, paired {r['ratio_paired']:.2f}; the readable "
          f"pipeline {ms['readable']:.1f} ms/sample (ratio {r['ratio_readable']:.2f})")
    workers = [0, default_num_workers()] if args.workers is None else args.workers
    if workers:
        with tempfile.TemporaryDirectory() as tmp:
            root = args.root or write_fake_ade20k(tmp, n_train=32, size=tuple(args.size))
            out["loader"] = bench_loader(root, sorted(set(workers)), args.crop, tuple(args.img_scale),
                                         args.batch_size, args.seconds)
        out["loader_data"] = args.root or f"generated ADE20K layout, 32 JPEG/PNG pairs of {args.size[0]}x{args.size[1]}"
        for row in out["loader"]:
            print(f"loader {row['pipeline']:7s} workers {row['num_workers']}: {row['samples_per_s']:.1f} samples/s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0
