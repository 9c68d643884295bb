"""Reading files that may come from anywhere: checkpoints that hold data only, and file hashes.

A PyTorch checkpoint is a pickle, and a pickle can name any importable function for the loader to call, so
loading one from the internet can run code (PyTorch's "weights_only" documentation, and the advisories that led
``torch.load`` to default to ``weights_only=True`` in 2.6). Every checkpoint setr_edu reads goes through
:func:`load_checkpoint_file`: ``torch.load(weights_only=True)``, whose unpickler builds only tensors, containers,
numbers and strings, plus the **exact** numpy reconstructors below (mmcv writes numpy scalars and arrays into a
training checkpoint's ``meta``). Each is named in full; nothing is allowed by prefix, and no name is taken from
the file. Anything else in the file is refused before it is called, with one line that says so.

This module sits below ``model`` and ``data`` (both read files), so it imports nothing from setr_edu.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

# What ``pickle`` writes for numpy values, by numpy version: numpy 1.x files name ``numpy.core.multiarray.*``,
# numpy 2.x files ``numpy._core.multiarray.*``; the object is looked up in whichever numpy is installed.
_NUMPY_RECONSTRUCTORS = {
    "numpy.core.multiarray.scalar": ("numpy._core.multiarray", "numpy.core.multiarray", "scalar"),
    "numpy._core.multiarray.scalar": ("numpy._core.multiarray", "numpy.core.multiarray", "scalar"),
    "numpy.core.multiarray._reconstruct": ("numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct"),
    "numpy._core.multiarray._reconstruct": ("numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct"),
    "numpy.dtype": ("numpy", "numpy", "dtype"),
    "numpy.ndarray": ("numpy", "numpy", "ndarray"),
}
# The dtype classes a numeric/bool/string numpy value refers to (numpy >= 1.25); never ObjectDType.
_NUMPY_DTYPES = ("BoolDType", "Int8DType", "UInt8DType", "Int16DType", "UInt16DType", "Int32DType", "UInt32DType",
                 "Int64DType", "UInt64DType", "LongDType", "ULongDType", "LongLongDType", "ULongLongDType",
                 "ByteDType", "UByteDType", "ShortDType", "UShortDType", "IntDType", "UIntDType",
                 "Float16DType", "Float32DType", "Float64DType", "LongDoubleDType", "Complex64DType",
                 "Complex128DType", "CLongDoubleDType", "StrDType", "BytesDType")


class UnsafeCheckpointError(ValueError):
    """The file asks the loader to call a function that is not on the allow-list; nothing was called."""


class UnreadableCheckpointError(ValueError):
    """Not a readable checkpoint (truncated, zeroed, another format); ``cause`` says what the loader met."""

    def __init__(self, path: Path, cause: str):
        self.cause = cause
        super().__init__(f"could not read {path} as a PyTorch checkpoint ({cause}); is the download complete? "
                         f"delete the file and download it again")


def allowed_globals() -> list[tuple[object, str]]:
    """``(object, full name)`` for every non-torch global a checkpoint may name: the exact list above."""
    out = []
    for name, (new_module, old_module, attr) in _NUMPY_RECONSTRUCTORS.items():
        for module in (new_module, old_module):
            try:
                out.append((getattr(importlib.import_module(module), attr), name))
                break
            except (ImportError, AttributeError):
                continue
    try:
        import numpy.dtypes as dtypes
    except ImportError:  # numpy < 1.25 has no dtype classes to name
        dtypes = None
    for cls in _NUMPY_DTYPES:
        if dtypes is not None and hasattr(dtypes, cls):
            out.append((getattr(dtypes, cls), f"numpy.dtypes.{cls}"))
    return out


def load_checkpoint_file(path: str | os.PathLike, map_location="cpu"):
    """The object stored in the checkpoint ``path``, built from data only (see the module docstring).

    Raises :class:`UnsafeCheckpointError` (one line naming the refused globals) for a file that would run code,
    ``FileNotFoundError`` for a missing one, and ``ValueError`` for a file that is not a readable checkpoint
    (truncated download, HTML error page, zeroed bytes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on old pickle protocols
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_globals(path)
        if refused:
            raise UnsafeCheckpointError(
                f"{path} asks to call {', '.join(refused[:4])}{' ...' if len(refused) > 4 else ''} when loaded: "
                f"refused, nothing in it was run (setr_edu reads checkpoints that hold only tensors, numbers and "
                f"strings; do not use this file)") from None
        raise UnreadableCheckpointError(path, _unpickler_cause(err)) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, ValueError, TypeError,
            AttributeError, IndexError, MemoryError, OverflowError) as err:
        raise UnreadableCheckpointError(path, f"{type(err).__name__}: {_first_line(err)}") from None


def _refused_globals(path: Path) -> list[str]:
    allowed = {name for _, name in allowed_globals()}
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint: the unpickler's message is all there is
        return []
    return [n for n in names if n not in allowed]


def _unpickler_cause(err: BaseException) -> str:
    """What the weights-only unpickler met, without torch's advice to load with ``weights_only=False``."""
    m = re.search(r"WeightsUnpickler error: ([^\n]+)", str(err))
    return f"not a pickle of tensors: {m[1].strip()[:150]}" if m else "not a pickle of tensors"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def read_checkpoint(path_or_state_dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, meta)`` from a path or an already loaded checkpoint.

    Accepts mmcv's ``{'meta', 'state_dict', 'optimizer'?}`` wrapper, a ``{'model': ...}`` wrapper or a bare state
    dict, with or without DDP's ``module.`` prefix. The optimizer state of a training checkpoint is ignored.
    """
    obj = path_or_state_dict
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        obj = load_checkpoint_file(path)
    if not isinstance(obj, dict):
        raise TypeError(f"expected a checkpoint dict or a path, got {type(obj).__name__}")
    meta = obj.get("meta", {}) if isinstance(obj.get("meta"), dict) else {}
    for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    sd = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ValueError("the checkpoint holds no tensors; is it a SETR segmentation checkpoint?")
    if any(k.startswith("encoder.blocks.") for k in sd):
        raise ValueError("this is a setr_edu checkpoint already (keys 'encoder.*'): load it with "
                         "setr_edu.engine.checkpoint.load_checkpoint or `python -m setr_edu eval --checkpoint PATH`")
    return sd, meta


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (works for multi-GB archives)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()
