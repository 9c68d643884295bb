"""Checkpoints that survive a Colab disconnect: atomic writes, everything needed to resume, loud failures.

A checkpoint is one ``torch.save`` file holding a dict:

==============  ==========================================================================================
key             what
==============  ==========================================================================================
``format``      ``"setr-edu-checkpoint"`` (refuses random ``.pt`` files with a clear message)
``iter``        optimisation steps completed (training resumes at this iteration)
``model``       ``state_dict`` of the bare model (never DDP's ``module.`` prefix)
``optimizer``   SGD state (momentum buffers) and parameter groups
``scaler``      ``GradScaler`` state (fp16 training) or ``None``
``rng``         Python, NumPy, torch CPU and CUDA generator states
``sampler``     the data stream position (see ``setr_edu.engine.sampler.InfiniteBatchSampler``)
``recipe``      the training recipe as a plain dict (used to rebuild the model and to compare on load)
``meta``        free-form extras: class names, last validation metrics, library version
==============  ==========================================================================================

**Integrity.** ``torch.save`` writes a zip archive whose every member carries a CRC-32 checksum of its bytes;
``load_checkpoint`` verifies them all (``zipfile.testzip``, about 1 s per GB) before unpickling, so bytes zeroed or
changed on a disk, in a copy or a sync are refused with one line instead of loading silently as wrong weights.

Writes go to a temporary file in the same folder, are flushed to disk and then ``os.replace``-d over the target,
which is atomic on POSIX and Windows: a crash mid-write leaves the previous checkpoint intact (and, after
``kill -9``, a ``.last.pt.*.tmp`` file that ``remove_stale_temps`` deletes when training starts again).
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import UnreadableCheckpointError, UnsafeCheckpointError, load_checkpoint_file

FORMAT = "setr-edu-checkpoint"
# Recipe fields that change the model's shape: a checkpoint whose values differ cannot be loaded.
MODEL_FIELDS = ("model", "decoder", "encoder", "encoder_overrides", "decoder_channels", "num_classes", "crop_size",
                "aux", "cnn_width")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, not ours, or from a different model."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Atomically write ``state`` (plus the format tag) to ``path``; returns the path.

    A failed write (full disk, read-only or vanished folder) removes its temporary file and raises
    ``CheckpointError`` saying that the previous checkpoint, if any, is intact.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException as e:
        # a full disk surfaces as OSError(ENOSPC) or as a RuntimeError of torch's zip writer ("unexpected pos")
        full = isinstance(e, (OSError, RuntimeError)) and _free_bytes(path.parent) < 2 ** 20
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) or full:
            why = "the disk is full" if full else e.strerror or str(e)
            kept = f"the previous checkpoint {path} is intact" if path.is_file() else "no earlier checkpoint exists"
            raise CheckpointError(f"could not write checkpoint {path} ({why}); {kept}. Free disk space or make the "
                                  f"folder writable, then resume (--resume)") from e
        raise
    return path


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 2 ** 62


def remove_stale_temps(path: str | os.PathLike) -> tuple[int, int]:
    """Delete the ``.<name>.*.tmp`` files that a save killed mid-write (``kill -9``, power loss) left next to
    ``path``; returns ``(files, bytes)`` removed. Each can be as big as a whole checkpoint (2.5 GB for T-Large)."""
    path = Path(path)
    files = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    size = 0
    for f in files:
        with contextlib.suppress(OSError):
            size += f.stat().st_size
            f.unlink()
    return len(files), size


def checkpoint_bytes(model: nn.Module, optimizer: str = "sgd") -> int:
    """About how many bytes ``last.pt`` of ``model`` takes: its state dict plus the optimizer's per-parameter state
    (SGD momentum: one copy of the weights; AdamW: two). T-Large with SGD: about 2.5 GB."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return weights + {"sgd": 1, "adamw": 2}.get(optimizer, 2) * params


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``, with a clear error when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path (training writes "
                              f"<work_dir>/last.pt) or train first with `python -m setr_edu train`")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip file (or, before 1.6, a pickle)
        kind = "a text file" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "another format"
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it looks like {kind}: starts with {head!r}). "
                              f"Pass the last.pt that training wrote (<work_dir>/last.pt).")
    _verify_checksums(path)
    try:
        state = load_checkpoint_file(path, map_location)
    except UnsafeCheckpointError as e:
        raise CheckpointError(str(e)) from None
    except UnreadableCheckpointError as e:
        raise CheckpointError(
            f"checkpoint {path} ({path.stat().st_size} bytes) is truncated or corrupt and cannot be read "
            f"({e.cause}). It was probably copied or "
            f"downloaded only in part: copy it again, or delete it and resume from an earlier checkpoint.") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a setr-edu training checkpoint (no format tag {FORMAT!r}). To start "
                              f"from ImageNet ViT weights use the recipe's `pretrained=` option instead.")
    require(state, path, ("iter", "model", "recipe"))
    step, problems = state["iter"], []
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        problems.append(f"iter is {step!r}, not a whole number")
    problems += [f"{k} is a {type(state[k]).__name__}, not a dict" for k in ("model", "recipe")
                 if not isinstance(state[k], dict)]
    if isinstance(state["model"], dict):
        problems += [f"model[{k!r}] is a {type(v).__name__}, not a tensor" for k, v in state["model"].items()
                     if not isinstance(v, torch.Tensor)][:1]
    if problems:
        raise CheckpointError(f"checkpoint {path} is damaged or was edited: {'; '.join(problems)}. Pass a last.pt "
                              f"that training wrote, or resume from an earlier checkpoint")
    return state


def require(state: dict, path, keys: tuple[str, ...], purpose: str = "use it") -> None:
    """Refuse a checkpoint that lacks any of ``keys``, naming them (not a bare ``KeyError: 'model'``)."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(repr(k) for k in missing)}, which it needs to "
                              f"{purpose} (training writes {', '.join(keys)}); it was written by other code or cut "
                              f"down: pass the last.pt that training wrote")


def _verify_checksums(path: Path) -> None:
    """Compare every member of the zip archive with the CRC-32 stored for it (legacy pickle files have none)."""
    if not zipfile.is_zipfile(path):
        return  # not a zip: the reader below says what it is
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError) as e:
        bad = f"its zip structure ({e})"
    if bad:
        raise CheckpointError(f"checkpoint {path} is corrupt: {bad} does not match the checksum stored with it "
                              f"(bytes changed on the disk or in a copy); copy it again, or delete it and resume "
                              f"from an earlier checkpoint")


def nonfinite_weights(weights: dict) -> list[str]:
    """The names of the floating-point tensors in ``weights`` that hold a NaN or an infinity (a diverged run)."""
    return [k for k, v in weights.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_compatible(state: dict, model: nn.Module, recipe: dict | None = None, path: str = "checkpoint") -> None:
    """Refuse a checkpoint from another model *before* touching any weights.

    Compares the recipe fields that decide the model's shape (``MODEL_FIELDS``), then every key and tensor shape
    of the state dict, and raises ``CheckpointError`` naming the differences and how to fix them.
    """
    saved = state.get("recipe") or {}
    if recipe is not None:
        diffs = [f"{k}: checkpoint {saved[k]!r} vs now {recipe[k]!r}" for k in MODEL_FIELDS
                 if k in saved and k in recipe and _norm(saved[k]) != _norm(recipe[k])]
        if diffs:
            raise CheckpointError(
                f"{path} was trained with a different model ({'; '.join(diffs)}). Use the recipe it was trained "
                f"with (`--config` of that run, or pass the same `key=value` overrides), or pick another checkpoint.")
    own = model.state_dict()
    ckpt = state["model"]
    missing, unexpected = sorted(set(own) - set(ckpt)), sorted(set(ckpt) - set(own))
    shapes = [f"{k}: checkpoint {tuple(ckpt[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in ckpt and tuple(ckpt[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:3]})")
        raise CheckpointError(f"{path} does not fit this model: {'; '.join(parts)}. It was saved from another "
                              f"architecture or number of classes; use the matching recipe or another checkpoint.")


def _norm(v):
    """Compare recipe values across a save/load round trip (tuples may come back as lists)."""
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in sorted(v.items())}
    return v


def rng_state() -> dict:
    """Every random generator training touches, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x
