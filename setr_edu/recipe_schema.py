"""What a recipe is: the :class:`Recipe` dataclass (one flat record per run), its checks, and ``key=value``
overrides (:func:`apply_overrides`). It imports nothing from setr_edu, so the named recipes
(``setr_edu/named_recipes.py``) and the look-up (``setr_edu/recipes.py``, which re-exports every name here) can
both build on it.

    >>> r = apply_overrides(Recipe(), ["max_iters=1000", "amp=bf16"])
    >>> r.max_iters, r.amp
    (1000, 'bf16')
"""
from __future__ import annotations

import difflib
import ast
import typing
from dataclasses import asdict, dataclass, field, fields, replace

DATASETS = ("synthetic", "ade20k", "cityscapes", "pascal_context", "folder")
CHOICES = dict(dataset=DATASETS, model=("setr", "cnn"), decoder=("naive", "pup", "mla"),
               encoder=("tiny", "small", "base", "large"), optimizer=("sgd", "adamw"),
               amp=("auto", "none", "bf16", "fp16"), eval_mode=("whole", "slide"),
               eval_protocol=("single", "paper", "official"),
               eval_convention=("official", "mmseg"), device=("auto", "cpu", "cuda", "mps"))


@dataclass
class Recipe:
    """Everything that defines a training run. Every field can be overridden with ``key=value``."""

    name: str = "custom"
    notes: str = ""
    # --- data -------------------------------------------------------------------------------------------------
    dataset: str = "synthetic"  # synthetic | ade20k | cityscapes | pascal_context | folder
    data_root: str = ""  # folder of a real dataset, e.g. data/ade20k (unused for synthetic)
    num_classes: int = 0  # 0: take it from the dataset
    crop_size: int = 96  # training crop = the model's img_size (square)
    train_scale: tuple[int, int] = (0, 0)  # base scale of the random 0.5-2x resize, e.g. (2048, 512); (0, 0): none
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    test_scale: tuple[int, int] = (0, 0)  # keep-ratio resize before testing; (0, 0): none
    num_train: int = 1024  # synthetic only: dataset sizes
    num_val: int = 128
    synthetic: dict = field(default_factory=dict)  # extra SyntheticContextDataset kwargs (num_keys, key_clearance...)
    # --- model ------------------------------------------------------------------------------------------------
    model: str = "setr"  # setr | cnn (the local-receptive-field baseline of setr_edu.model.baseline)
    decoder: str = "pup"  # naive | pup | mla
    encoder: str = "large"  # tiny | small | base (T-Base) | large (T-Large)
    encoder_overrides: dict = field(default_factory=dict)  # e.g. {"depth": 4, "embed_dim": 128, "patch_size": 8}
    decoder_channels: int = 256
    aux: bool = True  # auxiliary heads (paper: always on during training)
    pretrained: str = ""  # "" | "paper" (the paper's ImageNet-21k ViT) | "deit" (DeiT-B) | "timm:<tag>" | a .pth
    cnn_width: int = 176  # model=cnn only (176: about the size of synthetic_cpu's SETR)
    # --- optimisation (paper §4; fudan-zvg/SETR configs/SETR/*.py) -----------------------------------------------
    optimizer: str = "sgd"  # sgd (the paper's, for fine-tuning) | adamw (training from scratch: the synthetic task)
    lr: float = 0.001  # base (encoder) learning rate; heads get lr * head_lr_mult
    head_lr_mult: float = 10.0
    momentum: float = 0.9  # SGD momentum (AdamW: beta1)
    weight_decay: float = 0.0
    min_lr: float = 1e-4  # absolute floor of the poly schedule for every group (mmcv semantics)
    power: float = 0.9
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6
    max_iters: int = 160_000
    batch_size: int = 16  # GLOBAL batch = world_size * grad_accum_steps * per-device batch
    grad_accum_steps: int = 1
    aux_weight: float = 0.4
    amp: str = "none"  # auto (bf16 on GPUs >= sm80, fp16 on older, none on CPU) | none | bf16 | fp16 (+ GradScaler)
    grad_checkpointing: bool = False  # recompute encoder blocks in backward (T-Large on a 16 GB GPU)
    # --- evaluation -------------------------------------------------------------------------------------------
    eval_every: int = 16_000
    eval_mode: str = "whole"  # whole | slide
    slide_stride: int = 0  # 0: 2/3 of the crop, as in the paper's configs
    eval_protocol: str = "single"  # single | paper (6 ratios 0.5-1.75 + flip) | official (*_MS config ratios + flip)
    eval_convention: str = "official"  # official (short-side rule, padded windows) | mmseg (neither): the checkpoint's code
    # --- bookkeeping ------------------------------------------------------------------------------------------
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 10.0  # also write last.pt when this much wall time passed since the last one (0: off)
    log_every: int = 50
    seed: int = 0
    num_workers: int = -1  # DataLoader workers; -1: auto (real data: one per core, at most 8; synthetic: 0)
    device: str = "auto"  # auto | cpu | cuda | mps

    # ------------------------------------------------------------------------------------------------------------
    def validate(self) -> "Recipe":
        """Check choices and ranges; raises ``ValueError`` naming the key and the valid values."""
        for key, options in CHOICES.items():
            if getattr(self, key) not in options:
                raise ValueError(f"recipe key {key}={getattr(self, key)!r} is not valid; choose one of {list(options)}")
        for key in ("max_iters", "batch_size", "grad_accum_steps", "crop_size", "eval_every", "checkpoint_every",
                    "log_every", "decoder_channels", "cnn_width", "num_train", "num_val"):
            if getattr(self, key) < 1:
                raise ValueError(f"recipe key {key} must be >= 1, got {getattr(self, key)}")
        for key, low, note in (("num_classes", 0, " (0: from the dataset)"), ("warmup_iters", 0, ""),
                               ("slide_stride", 0, " (0: 2/3 of the crop)"), ("num_workers", -1, " (-1: automatic)"),
                               ("seed", 0, "")):
            if getattr(self, key) < low:
                raise ValueError(f"recipe key {key} must be >= {low}{note}, got {getattr(self, key)}")
        for key in ("checkpoint_minutes", "lr", "min_lr", "head_lr_mult", "momentum", "weight_decay", "power",
                    "warmup_ratio", "aux_weight", "cat_max_ratio"):
            if not 0 <= getattr(self, key) < float("inf"):  # also refuses NaN
                raise ValueError(f"recipe key {key} must be a number >= 0, got {getattr(self, key)}"
                                 + (" (0: off)" if key == "checkpoint_minutes" else ""))
        if self.lr <= 0 or self.min_lr < 0:
            raise ValueError(f"lr must be > 0 and min_lr >= 0, got lr={self.lr}, min_lr={self.min_lr}")
        lo, hi = self.ratio_range
        if not 0 < lo <= hi < float("inf"):
            raise ValueError(f"recipe key ratio_range must be two numbers 0 < low <= high (the random resize "
                             f"factors, the paper's 0.5,2.0), got {self.ratio_range}")
        for key in ("train_scale", "test_scale"):
            if min(getattr(self, key)) < 0:
                raise ValueError(f"recipe key {key} must be two sizes >= 0 ((0, 0): none), got {getattr(self, key)}")
        for key in ("synthetic", "encoder_overrides"):
            for sub, value in getattr(self, key).items():
                _check_entry(key, sub, value)
        for sub, value in self.encoder_overrides.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 < value < float("inf"):
                raise ValueError(f"recipe key encoder_overrides.{sub} must be > 0, got {value}")
        if self.pretrained.startswith("timm:") and not self.pretrained[5:].strip():
            raise ValueError("recipe key pretrained='timm:' names no timm tag; e.g. pretrained=timm:"
                             "vit_large_patch16_384.augreg_in21k_ft_in1k")
        return self

    @property
    def stride(self) -> int:
        """The sliding-window stride, ``slide_stride`` or else 2/3 of the crop (768/512, 512/341, 480/320)."""
        return self.slide_stride or (2 * self.crop_size) // 3

    def to_dict(self) -> dict:
        """A plain dict of every field (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, base: "Recipe | None" = None) -> "Recipe":
        """Build from a dict of (a subset of) fields, on top of ``base``; unknown keys raise with suggestions."""
        d = dict(d)
        start = base if base is not None else cls()
        if "base" in d:
            raise ValueError(f"'base' ({str(d['base'])[:80]!r}) is read only from recipe files, which name a named "
                             f"recipe (setr_edu.recipes.load_recipe_file); a stored recipe lists every field")
        for k in d:
            _check_key(k)
        return replace(start, **{k: _coerce(k, v) for k, v in d.items()}).validate()


# --- overrides --------------------------------------------------------------------------------------------------
def field_names() -> list[str]:
    """Every recipe key, in declaration order."""
    return [f.name for f in fields(Recipe)]


def _check_key(key: str) -> None:
    if key not in field_names():
        close = difflib.get_close_matches(key, field_names(), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown recipe key {key!r}.{hint} Valid keys: {', '.join(field_names())}")


def _coerce(key: str, value):
    """Convert ``value`` (often a command-line string) to the type of recipe field ``key``, or raise TypeError."""
    hint = typing.get_type_hints(Recipe)[key]
    origin = typing.get_origin(hint) or hint
    try:
        if origin is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if origin is int:
            if isinstance(value, str):
                value = value.lower().replace("_", "")
                value = float(value[:-1]) * 1000 if value.endswith("k") else float(value)  # "160k", "1e4"
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if origin is float:
            return float(value)
        if origin is str:
            return str(value)
        if origin is tuple:
            if isinstance(value, str):
                value = ast.literal_eval(value if value.strip()[:1] in "([" else f"({value},)")
            args = typing.get_args(hint)
            value = tuple(args[0](v) for v in value)
            if len(value) != len(args):
                raise ValueError
            return value
        if origin is dict:
            value = ast.literal_eval(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (ValueError, SyntaxError, TypeError, OverflowError):  # OverflowError: max_iters=1e400 (infinite)
        pass
    else:
        raise TypeError(f"recipe key {key!r} has unsupported type {hint}")
    raise TypeError(f"recipe key {key!r} expects {getattr(hint, '__name__', hint)}, got {value!r}; e.g. "
                    f"{key}={_example(hint)}")


def _example(hint) -> str:
    return {int: "100", float: "0.01", bool: "true", str: "text", dict: "\"{'depth': 4}\""}.get(
        typing.get_origin(hint) or hint, "512,512")


# The synthetic task's options (``synthetic.<key>=``; ``setr_edu.data.synthetic.SyntheticContextDataset``) and
# their types, listed here because recipes sit below the data package (layering).
SYNTHETIC_OPTIONS = dict(num_keys=int, num_shapes=tuple, key_size=float, key_clearance=float, shapes=tuple,
                         class_per_shape=bool, key_corner=int)


# The decoder settings ``build_setr`` also takes through ``encoder_overrides`` (``setr_edu.config.DecoderConfig``).
DECODER_OVERRIDES = dict(main_tap=int, aux_taps=tuple, mla_taps=tuple, mla_channels=int, mla_align_corners=bool,
                         mla_cls_kernel=int)


def _check_entry(key: str, sub: str, value) -> None:
    """``encoder_overrides.depth=abc``, ``synthetic.num_keys=abc``: refuse an unknown entry or a value of the wrong
    type, naming the key."""
    if key == "synthetic":
        hints = SYNTHETIC_OPTIONS
    elif key == "encoder_overrides":  # build_setr's **overrides: encoder fields and the decoder's taps/widths
        from .config import EncoderConfig

        hints = {**typing.get_type_hints(EncoderConfig), **DECODER_OVERRIDES}
    else:
        return
    if sub not in hints:
        raise KeyError(f"recipe key {key}.{sub} does not exist; {key} takes {', '.join(hints)}")
    want = hints[sub]
    if key == "synthetic" and sub == "key_corner" and value is None:
        return
    if want is tuple and isinstance(value, list):
        value = tuple(value)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool)) or (
        want is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise TypeError(f"recipe key {key}.{sub} expects {want.__name__}, got {value!r}; e.g. {key}.{sub}="
                        f"{_example(want)}")


def apply_overrides(recipe: Recipe, overrides: typing.Iterable[str]) -> Recipe:
    """Apply ``["lr=0.01", "max_iters=2k", "encoder_overrides.depth=6", "synthetic.num_keys=3"]`` to ``recipe``.

    Values are converted to the field's type (``TypeError`` if they cannot be); unknown keys raise ``KeyError``
    with a "did you mean" suggestion. A dotted key sets one entry of a dict field.
    """
    updates = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. max_iters=200)")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if "." in key:
            key, sub = key.split(".", 1)
            _check_key(key)
            if typing.get_type_hints(Recipe)[key] is not dict:
                raise KeyError(f"recipe key {key!r} is not a dict; write {key}=value without a dot")
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parsed = value
            _check_entry(key, sub, parsed)
            updates[key] = {**updates.get(key, getattr(recipe, key)), sub: parsed}
        else:
            _check_key(key)
            updates[key] = _coerce(key, value)
    return replace(recipe, **updates).validate()


# --- named recipes (setr_edu/named_recipes.py: the paper's, Colab-sized, -DeiT and synthetic) ------------------
