"""What both converters share: the conversion report, the ViT's shape from its tensors,
and copying weights by a key map.

A converter is a *key map*: for every tensor of the setr_edu model, the name of the checkpoint tensor it comes
from (and, rarely, a function that rearranges it). Everything in the checkpoint that the map does not use must be
on a short list of layers known to be unused (e.g. mmsegmentation's ``conv_seg`` in the official heads); anything
else is an error, so no weight is ever ignored silently.
"""
from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import EncoderConfig
from ..io import read_checkpoint  # noqa: F401  (re-exported: setr_edu.convert.read_checkpoint)

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ConversionReport:
    """What a conversion did; attached to the converted model as ``model.conversion_report``.

    ``inferred``: settings read from the tensor shapes (depth, width, classes ...); ``assumed``: settings that are
    not in the tensors (taps, heads) and where each came from; ``dropped``: checkpoint tensors left out on purpose,
    with the reason; ``zero_filled``: setr_edu tensors the checkpoint has no counterpart for, set to 0 (biases of
    convs that mmsegmentation builds without one: the same function).
    """

    source: str
    loaded: int = 0
    inferred: dict = field(default_factory=dict)
    assumed: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    zero_filled: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.source} checkpoint -> setr_edu: {self.loaded} tensors loaded"]
        lines.append("  from the tensor shapes: " + ", ".join(f"{k}={v}" for k, v in self.inferred.items()))
        lines += [f"  {k} = {v}" for k, v in self.assumed.items()]
        reasons: dict[str, list[str]] = {}
        for key, why in self.dropped.items():
            reasons.setdefault(why, []).append(key)
        for why, keys in reasons.items():
            lines.append(f"  dropped {len(keys)} tensor(s) ({why}): {_short(keys)}")
        if self.zero_filled:
            lines.append(f"  set to 0 ({len(self.zero_filled)}, absent in the checkpoint): {_short(self.zero_filled)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _short(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n})" if len(keys) > n else "")


def count_indexed(sd: dict, pattern: str) -> int:
    """How many distinct ``N`` make ``pattern`` (a regex with one ``(\\d+)`` group) match a key, e.g. the depth."""
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in sd if (m := rx.match(k))}
    if found and found != set(range(len(found))):
        raise ValueError(f"indices {sorted(found)} of {pattern!r} are not 0..{len(found) - 1}; "
                         f"is the checkpoint complete?")
    return len(found)


def square_grid(num_patches: int) -> int:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"pos_embed has {num_patches} patch entries, not a square grid; pass img_size=(H, W)")
    return side


def config_model(meta: dict) -> dict:
    """The ``model = dict(...)`` of the training config stored in a checkpoint, as a nested dict (``{}`` if none).

    mmcv 1.x stores the config text under ``meta['config']`` (keys in definition order), mmengine (mmsegmentation
    >= 1.0) under ``meta['cfg']`` (pretty-printed with sorted keys). Both are Python: the text is *parsed* (``ast``),
    never run, and read by structure (``model['decode_head']['in_index']``), so the order of the keys does not
    matter. Values that are not literals (names, calls other than ``dict``) become ``None``.
    """
    if not isinstance(meta, dict):
        return {}
    for key in ("cfg", "config"):
        text = meta.get(key)
        if not isinstance(text, str):
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["model"]:
                model = _literal(node.value)
                if isinstance(model, dict):
                    return model
    return {}


def _literal(node: ast.AST):
    """A config value from its syntax tree: literals, lists/tuples/dicts and ``dict(k=v)``; anything else None."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value if isinstance(node.operand.value, (int, float)) else None
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    return None


def config_heads(model: dict) -> list[dict]:
    """The decode head, then the auxiliary heads in their list order (a single aux head may be a dict)."""
    aux = model.get("auxiliary_head")
    aux = [aux] if isinstance(aux, dict) else list(aux or [])
    return [h for h in [model.get("decode_head"), *aux] if isinstance(h, dict)]


def as_ints(value) -> list[int] | None:
    """``23`` -> ``[23]``, ``(5, 11, 17, 23)`` -> ``[5, 11, 17, 23]``; anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                         for v in value):
        return list(value)
    return None


def infer_encoder(sd: dict, prefix: str, layer: str, names: dict, meta: dict, num_heads: int | None,
                  report: ConversionReport) -> tuple[EncoderConfig, tuple[int, int]]:
    """The ViT's shape from its tensors (``names``: where the patch conv, qkv bias and fc1 live)."""
    D = sd[f"{prefix}cls_token"].shape[-1]
    depth = count_indexed(sd, rf"{re.escape(prefix + layer)}\.(\d+)\.")
    patch = sd[f"{prefix}{names['patch']}.weight"]
    grid = square_grid(sd[f"{prefix}pos_embed"].shape[1] - 1)
    hidden = sd[f"{prefix}{layer}.0.{names['fc1']}.weight"].shape[0]
    report.inferred.update(depth=depth, embed_dim=D, patch_size=patch.shape[-1], img_size=grid * patch.shape[-1],
                           mlp_ratio=hidden / D)
    if num_heads is None:
        from_meta = as_ints((config_model(meta).get("backbone") or {}).get("num_heads"))
        if from_meta:
            num_heads, where = from_meta[0], "from the checkpoint's config (meta['cfg'] or meta['config'])"
        elif D % 64 == 0:
            num_heads, where = D // 64, "assumed: head width 64 as in ViT-B/L and DeiT-B; pass num_heads= if not"
        else:
            raise ValueError(f"cannot tell num_heads for width {D} from the tensors; pass num_heads=")
        report.assumed["num_heads"] = f"{num_heads} ({where})"
    cfg = EncoderConfig(embed_dim=D, depth=depth, num_heads=num_heads, mlp_ratio=hidden / D,
                        patch_size=patch.shape[-1], in_chans=patch.shape[1],
                        qkv_bias=f"{prefix}{layer}.0.{names['qkv_bias']}" in sd)
    return cfg, (grid, grid)


def copy_weights(model: nn.Module, sd: dict[str, torch.Tensor], key_map: dict[str, tuple[str | None, Transform | None]],
                 known_unused: dict[str, str], report: ConversionReport, strict: bool = True) -> None:
    """Fill ``model`` from ``sd`` following ``key_map`` (setr_edu key -> (checkpoint key or None, transform)).

    ``None`` as checkpoint key means "absent in this layout: set to 0". Checkpoint keys the map does not use must
    match a regex of ``known_unused`` (regex -> reason) and are reported as dropped; any other leftover, and any
    shape mismatch, raises ``ValueError`` (``strict=False`` reports leftovers instead).
    """
    target = model.state_dict()
    missing = sorted(set(target) - set(key_map))
    if missing:
        raise ValueError(f"internal: no source for {len(missing)} setr_edu tensor(s), e.g. {missing[:3]}")
    new, used = {}, set()
    for key, (src, fn) in key_map.items():
        if src is None:
            new[key] = torch.zeros_like(target[key])
            report.zero_filled.append(key)
            continue
        if src not in sd:
            raise ValueError(f"the checkpoint has no {src!r} (needed for {key!r}); is it a complete "
                             f"{report.source} SETR checkpoint of this decoder?")
        value = fn(sd[src]) if fn else sd[src]
        if value.shape != target[key].shape:
            raise ValueError(f"shape mismatch: checkpoint {src!r} {tuple(value.shape)} -> setr_edu {key!r} "
                             f"{tuple(target[key].shape)}; pass the matching setting (e.g. num_heads, img_size)")
        new[key] = value.to(target[key].dtype)
        used.add(src)
    leftovers = []
    for key in sd:
        if key in used:
            continue
        why = next((reason for rx, reason in known_unused.items() if re.fullmatch(rx, key)), None)
        if why is None:
            leftovers.append(key)
        else:
            report.dropped[key] = why
    if leftovers:
        if strict:
            raise ValueError(f"{len(leftovers)} checkpoint tensor(s) have no place in the setr_edu model, e.g. "
                             f"{leftovers[:4]}; wrong decoder or an unknown layout? (strict=False lists them in "
                             f"the report instead)")
        for key in leftovers:
            report.dropped[key] = "unknown to the converter (strict=False)"
    model.load_state_dict(new, strict=True)
    report.loaded = len(used)
