"""The trained SETR checkpoints that were released, with the numbers they should reproduce.

Two sources: the paper's authors (github.com/fudan-zvg/SETR README, files on Google Drive, T-Large unless named
-Base) and mmsegmentation (``configs/setr/README.md``, ViT-L, files on download.openmmlab.com). ``ss`` and ``ms``
are the single-scale and multi-scale + flip val mIoU that the releasing README lists for that file; ``paper_ss`` /
``paper_ms`` are the paper's numbers for the same model (Tables 2, 4, 5, 6), which can differ (batch 8 vs 16,
mmsegmentation's re-implementation). Which test protocol produced the README numbers is that repository's:
``official`` ratios for the fudan-zvg files (their ``*_MS.py`` configs), the paper's six ratios for mmsegmentation.

``sha256`` is None everywhere: no full hash is published, and this library was written without network access,
so none is verified yet (mmsegmentation's file names carry the first 8 hex digits of the SHA-256, which
:func:`setr_edu.model.pretrained.verify_file` checks). The URLs were copied from the two READMEs, not fetched.

::

    python -m setr_edu eval --checkpoint official:ade20k_pup --data-root data/ade20k --protocol single
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .recipes import Recipe, paper_recipe

DRIVE = "https://drive.google.com/file/d/{}/view"
MMSEG = "https://download.openmmlab.com/mmsegmentation/v0.5/setr/{0}/{0}_{1}.pth"


@dataclass(frozen=True)
class Released:
    """One released checkpoint. ``name`` is what ``--checkpoint <source>:<name>`` takes."""

    source: str  # "official" (fudan-zvg/SETR) | "mmseg" (open-mmlab/mmsegmentation)
    name: str
    dataset: str
    decoder: str
    crop: int
    batch: int
    iters: int
    url: str
    ss: float  # val mIoU in the releasing README, single scale
    ms: float | None  # ... multi-scale + flip (None: not listed)
    paper_ss: float | None  # the paper's number for this model (None: not in the paper)
    paper_ms: float | None
    encoder: str = "large"
    sha256: str | None = None  # unverified: see the module docstring
    drive_id: str = ""
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def verified(self) -> bool:
        return self.sha256 is not None


def _official(name, dataset, decoder, crop, batch, iters, drive_id, ss, ms, paper_ss, paper_ms, encoder="large",
              note=""):
    return Released("official", name, dataset, decoder, crop, batch, iters, DRIVE.format(drive_id), ss, ms,
                    paper_ss, paper_ms, encoder, drive_id=drive_id, note=note)


def _mmseg(name, dataset, decoder, crop, batch, iters, folder, stamp, ss, ms, paper_ss, paper_ms, note=""):
    return Released("mmseg", name, dataset, decoder, crop, batch, iters, MMSEG.format(folder, stamp), ss, ms,
                    paper_ss, paper_ms, note=note)


RELEASED: dict[str, Released] = {r.key: r for r in [
    # fudan-zvg/SETR README (Cityscapes rows list single-scale only; the paper's Table 6 has PUP's MS)
    _official("ade20k_naive", "ade20k", "naive", 512, 16, 160_000, "17ZlPBcJRKO3c3XoAeNutrExIETu23qKY",
              48.06, 48.80, 48.06, 48.80),
    _official("ade20k_mla_bs8", "ade20k", "mla", 512, 8, 160_000, "1Zcaut5LAKYibjyeCcD3m-aG-ETWW6uhA",
              47.79, 50.03, 48.64, 50.28, note="the paper's 48.64 / 50.28 are the batch-16 model, not released; "
              "with the official MS config (ratios 0.5-1.0) this file gives 47.91 MS (fudan-zvg/SETR#52)"),
    _official("ade20k_pup", "ade20k", "pup", 512, 16, 160_000, "1hCeiz60ITgVPkWsrKwah8JnwM3G8VVL4",
              48.62, 50.09, 48.58, 50.09),
    _official("pascal_context_naive", "pascal_context", "naive", 480, 16, 80_000, "140T7-wQ3UOzHA0-6pjO3lik_5Vi5RvqJ",
              52.89, 53.61, 52.89, 53.61),
    _official("pascal_context_mla_bs8", "pascal_context", "mla", 480, 8, 80_000, "1XvhUVIMcdcEYUYKudUcV99vOwhisYh61",
              54.39, 55.39, None, None),
    _official("pascal_context_mla", "pascal_context", "mla", 480, 16, 80_000, "1k5CwpKfpNUdAFWOuzwWz9PrRwiGS0Xu9",
              55.01, 55.83, 54.87, 55.83),
    _official("pascal_context_pup", "pascal_context", "pup", 480, 16, 80_000, "1kXZYyqjA96d2DTL-tRvQjixfDBIZFIyR",
              54.37, 55.27, 54.40, 55.27),
    _official("cityscapes_naive_40k", "cityscapes", "naive", 768, 8, 40_000, "1f3b7I7IwKx-hcr16afjcxkAyXyeNQCAz",
              77.37, None, 77.37, None),
    _official("cityscapes_naive_80k", "cityscapes", "naive", 768, 8, 80_000, "1dplB4wceJhyVRQfZR5AWODywMN90CY0h",
              77.90, None, 77.90, None),
    _official("cityscapes_mla_40k", "cityscapes", "mla", 768, 8, 40_000, "18k26X-xM7BEQZUjzkvroeGV-6XwPgBqN",
              76.65, None, 76.65, None),
    _official("cityscapes_mla_80k", "cityscapes", "mla", 768, 8, 80_000, "1ke6wcsCwP_J-p8sYriCZ3pC8G61bE0v_",
              77.24, None, 77.24, None),
    _official("cityscapes_pup_40k", "cityscapes", "pup", 768, 8, 40_000, "1DcZltdh6eHwmQ5BvCdHudJRgJUjPzS56",
              78.39, None, 78.39, 81.57),
    _official("cityscapes_pup_80k", "cityscapes", "pup", 768, 8, 80_000, "1469aYtEAuhT39BrHn0yOv1s71unF85JE",
              79.34, None, 79.34, 82.15),
    _official("cityscapes_naive_base_40k", "cityscapes", "naive", 768, 8, 40_000, "1kGzdSLCazsbgZe0Y1Lo6sNwv9s5V3CAp",
              75.54, None, 75.54, None, encoder="base"),
    _official("cityscapes_naive_base_80k", "cityscapes", "naive", 768, 8, 80_000, "1vOD1-PGNfuM9IUvwnm2CrAXsPkadoyW8",
              76.25, None, 76.25, None, encoder="base"),
    # open-mmlab/mmsegmentation configs/setr/README.md (ViT-L; MS = the paper's six ratios + flip)
    _mmseg("ade20k_naive", "ade20k", "naive", 512, 16, 160_000, "setr_naive_512x512_160k_b16_ade20k",
           "20210619_191258-061f24f5", 48.28, 49.56, 48.06, 48.80),
    _mmseg("ade20k_pup", "ade20k", "pup", 512, 16, 160_000, "setr_pup_512x512_160k_b16_ade20k",
           "20210619_191343-7e0ce826", 48.24, 49.99, 48.58, 50.09),
    _mmseg("ade20k_mla_bs8", "ade20k", "mla", 512, 8, 160_000, "setr_mla_512x512_160k_b8_ade20k",
           "20210619_191118-c6d21df0", 47.34, 49.05, None, None),
    _mmseg("ade20k_mla", "ade20k", "mla", 512, 16, 160_000, "setr_mla_512x512_160k_b16_ade20k",
           "20210619_191057-f9741de7", 47.39, 49.37, 48.64, 50.28,
           note="the README said 47.54 single-scale before mmsegmentation commit a6a5a50 (#2113)"),
    _mmseg("cityscapes_naive", "cityscapes", "naive", 768, 8, 80_000, "setr_naive_vit-large_8x1_768x768_80k_cityscapes",
           "20211123_000505-20728e80", 78.10, 80.22, 77.90, None),
    _mmseg("cityscapes_pup", "cityscapes", "pup", 768, 8, 80_000, "setr_pup_vit-large_8x1_768x768_80k_cityscapes",
           "20211122_155115-f6f37b8f", 79.21, 81.02, 79.34, 82.15),
    _mmseg("cityscapes_mla", "cityscapes", "mla", 768, 8, 80_000, "setr_mla_vit-large_8x1_768x768_80k_cityscapes",
           "20211119_101003-7f8dccbe", 77.00, 79.59, 77.24, None),
]}


def get_released(key: str) -> Released:
    """``"official:ade20k_pup"`` or ``"mmseg:cityscapes_pup"`` -> its :class:`Released` entry."""
    if key not in RELEASED:
        import difflib

        close = difflib.get_close_matches(key, list(RELEASED), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise KeyError(f"no released checkpoint {key!r}.{hint} Known: {', '.join(RELEASED)}")
    return RELEASED[key]


def released_recipe(entry: Released) -> Recipe:
    """The paper's recipe for the checkpoint's dataset and decoder (its test settings: crop, stride, test scale),
    evaluated by the conventions of the code that trained it (``eval_convention``: official SETR or mmseg)."""
    recipe = paper_recipe(entry.dataset, entry.decoder, entry.encoder, iters=entry.iters, batch_size=entry.batch)
    return replace(recipe, eval_convention=entry.source)


def download_released(entry: Released, cache_dir: str | os.PathLike | None = None) -> Path:
    """The checkpoint file, downloaded once into ``cache_dir`` (default ``~/.cache/setr_edu``).

    mmsegmentation files: a plain download, SHA-256 prefix checked. Google Drive files need the ``gdown`` package
    (``pip install gdown``): Drive answers large downloads with a confirmation page, not the file. Offline, without
    gdown or on a failed download: :class:`~setr_edu.model.pretrained.DownloadError` saying where to put a copy
    downloaded by hand (no partial file is left)."""
    from .model.pretrained import DownloadError, fetch_verified, verify_file

    if entry.source == "mmseg":
        return fetch_verified(entry.url, entry.sha256, cache_dir)[0]
    cache = Path(cache_dir or Path.home() / ".cache" / "setr_edu")
    path = cache / f"setr_official_{entry.name}.pth"
    by_hand = f"{entry.url} by hand (in a browser) to {path}, then run again"
    if not path.is_file():
        try:
            import gdown
        except ImportError:
            raise DownloadError(f"{entry.key} is on Google Drive, which needs the gdown package: pip install gdown, "
                                f"or download {by_hand}") from None
        cache.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        try:
            got = gdown.download(id=entry.drive_id, output=str(part), quiet=False)
        except Exception as err:  # gdown raises its own errors and those of requests
            got, why = None, " ".join(f"{type(err).__name__}: {err}".split())
        else:
            why = "Google Drive sent no file; the daily download quota may be used up"
        if got is None or not part.is_file():
            part.unlink(missing_ok=True)
            raise DownloadError(f"could not download {entry.key} ({why}); no internet? Download {by_hand}")
        os.replace(part, path)
    print(f"{entry.key}: {verify_file(path, entry.url, entry.sha256)}")
    return path


def load_released(key: str, cache_dir: str | os.PathLike | None = None):
    """Download (once) and convert a released checkpoint: ``(model, entry)``; the model is a setr_edu SETR in
    eval mode with ``model.conversion_report``."""
    from .convert import load_mmseg_setr, load_official_setr

    entry = get_released(key)
    path = download_released(entry, cache_dir)
    load = load_official_setr if entry.source == "official" else load_mmseg_setr
    return load(path, entry.decoder, img_size=entry.crop), entry


def table(source: str | None = None) -> str:
    """A plain-text table of the released checkpoints (what the book and ``--help`` show), within 88 columns.
    ``hash``: ``pinned`` when a full SHA-256 is recorded, else ``unverified``."""
    w = max(len(k) for k in RELEASED)
    head = f"{'checkpoint':{w}} {'crop':>4} {'bs':>2} {'iters':>5} {'SS':>5} {'MS':>5} {'pap.SS':>6} {'pap.MS':>6} hash"
    rows = [head]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    for r in RELEASED.values():
        if source and r.source != source:
            continue
        rows.append(f"{r.key:{w}} {r.crop:>4} {r.batch:>2} {r.iters // 1000:>4}k {fmt(r.ss):>5} {fmt(r.ms):>5} "
                    f"{fmt(r.paper_ss):>6} {fmt(r.paper_ms):>6} {'pinned' if r.verified else 'unverified'}")
    return "\n".join(rows)
