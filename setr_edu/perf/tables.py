"""Tables for chapter 15 and the ``bench`` command: cost per SETR variant, and plain-text formatting of results."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..model import build_setr
from .flops import _as_meta_model, count_flops
from .memory import GiB, estimate_training_memory_both


def variant_costs(decoders: Sequence[str] = ("naive", "pup", "mla"), encoders: Sequence[str] = ("base", "large"),
                  img_sizes: Sequence[int] = (512, 768), num_classes: int = 150, batch_size: int = 8,
                  amp: str | None = "bf16", memory: bool = True) -> list[dict]:
    """FLOPs and estimated training memory of each SETR variant, computed on the meta device (no weights allocated).

    One row per (encoder, size, decoder): ``params_m`` (millions, with auxiliary heads), ``gflops_fwd`` (per image,
    inference: encoder + main head), ``gflops_train`` (per image, forward + backward with the auxiliary heads),
    and, when ``memory``, the estimated training memory for ``batch_size`` images under ``amp`` without and with
    activation checkpointing (``mem_gib``, ``mem_ckpt_gib``).
    """
    rows = []
    for enc in encoders:
        for size in img_sizes:
            for dec in decoders:
                def make(dec=dec, enc=enc, size=size):
                    return build_setr(dec, enc, num_classes=num_classes, img_size=size)
                shape = (1, 3, size, size)
                fwd = count_flops(make, shape)
                train = count_flops(make, shape, backward=True, forward_fn=lambda m, x: m(x, with_aux=True))
                n_params = sum(p.numel() for p in _as_meta_model(make).parameters())
                row = dict(encoder=enc, img_size=size, decoder=dec, params_m=n_params / 1e6,
                           gflops_fwd=fwd.gflops(), gflops_train=train.gflops("total"))
                if memory:
                    mem = estimate_training_memory_both(make, (batch_size, 3, size, size), amp=amp)
                    row["mem_gib"], row["mem_ckpt_gib"] = mem[False].total / GiB, mem[True].total / GiB
                rows.append(row)
    return rows


def format_table(rows: Iterable[dict], columns: Sequence[str] | None = None, floatfmt: str = "{:.3g}") -> str:
    """A plain-text table (markdown pipe style) of dict rows; floats use ``floatfmt``."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])

    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.rjust(w) for v, w in zip(vals, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), sep, *(line(r) for r in cells)])
