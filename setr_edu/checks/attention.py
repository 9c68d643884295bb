"""Assignment A2: multi-head self-attention (paper §3.2, Eq. 2). Graders for the attention core and the module.

Interfaces the assignment asks for:

* ``scaled_dot_product(q, k, v) -> (out, weights)``: ``q, k, v`` of shape ``(B, heads, N, d)``;
  ``weights = softmax(q k^T / sqrt(d))`` over the keys, ``(B, heads, N, N)``; ``out = weights @ v``, ``(B, heads, N, d)``.
* ``MyAttention(dim, num_heads)`` with ``qkv = nn.Linear(dim, 3 * dim)`` whose output is laid out
  ``[q | k | v]``, each ``heads x head_dim``, and ``proj = nn.Linear(dim, dim)``; ``forward(x)``:
  ``(B, N, D) -> (B, N, D)``. Reference: :class:`setr_edu.MultiHeadSelfAttention`.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..model.attention import MultiHeadSelfAttention, attention_weights
from .align import align, describe_params, forward_on
from .compare import (DROPOUT_HINT, grade_backward, call_student, close, dependency_note, diagnose, eval_outputs,
                      is_reference, randomize_, seeded, with_reference)
from .result import CheckResult, Grader

SCALE = {
    "sqrt_d": None,
    "none": "the scores q k^T are not scaled: divide them by sqrt(d), d = head_dim (paper Eq. 2), or the "
            "softmax saturates as d grows.",
    "d": "the scores are divided by d; the scale is 1/sqrt(d) (d = head_dim).",
    "sqrt_D": "the scores are divided by sqrt(D) of the whole embedding; each head uses its own d = D / heads: "
              "divide by sqrt(head_dim).",
    "times": "the scores are multiplied by sqrt(d) instead of divided by it: q k^T / sqrt(d).",
}
SOFTMAX = {
    "keys": None,
    "queries": "the softmax runs over the wrong dimension (the queries, dim=-2). Each query's weights over the "
               "N keys must sum to 1: softmax(dim=-1).",
}


def sdp_variant(q, k, v, scale="sqrt_d", softmax="keys", order="qk", place="before"):
    d, D = q.shape[-1], q.shape[-1] * q.shape[1]
    s = (q @ k.transpose(-2, -1)) if order == "qk" else (k @ q.transpose(-2, -1))  # (B, h, N, N)
    factor = {"sqrt_d": d ** -0.5, "none": 1.0, "d": 1.0 / d, "sqrt_D": D ** -0.5, "times": d ** 0.5}[scale]
    if place == "before":
        w = (s * factor).softmax(dim=-1 if softmax == "keys" else -2)
    else:  # the weights are scaled after the softmax
        w = s.softmax(dim=-1 if softmax == "keys" else -2) * factor
    return w, w @ v


PLACE = {"before": None,
         "after": "the scale is applied after the softmax, so the weights no longer sum to 1: scale the scores "
                  "first, softmax(q k^T / sqrt(d)), then multiply by v."}
SDP_AXES = {
    "scale": SCALE, "softmax": SOFTMAX, "place": PLACE,
    "order": {"qk": None, "kq": "the scores are k q^T, the transpose of q k^T: row i must hold query i's scores."},
}


def reference_sdp(q, k, v):
    """The reference ``scaled_dot_product``: part 2 runs on it instead of the student's part 1."""
    w = attention_weights(q, k)
    return w @ v, w


def check_scaled_dot_product(fn, verbose: bool = True) -> CheckResult:
    """Grade ``fn(q, k, v) -> (out, weights)`` against :func:`setr_edu.model.attention.attention_weights`."""
    g = Grader("A2", "scaled_dot_product", "scaled dot-product attention", tests=4, verbose=verbose)
    with g.run():
        shape = (2, 3, 5, 4)  # (B, heads, N, d)
        q, k, v = (seeded(*shape, seed=s, scale=2.0) for s in (0, 1, 2))
        want_out, want_w = reference_sdp(q, k, v)
        res = g.call(fn, q, k, v, what="scaled_dot_product changes q, k or v")
        ok_tuple = isinstance(res, (tuple, list)) and len(res) == 2 and all(isinstance(t, torch.Tensor) for t in res)
        g.test(ok_tuple and res[0].shape == want_out.shape and res[1].shape == want_w.shape,
               f"returns (out, weights) of shapes {tuple(want_out.shape)} and {tuple(want_w.shape)}",
               f"expected a tuple (out, weights) with shapes (B, heads, N, d) = {tuple(want_out.shape)} and "
               f"(B, heads, N, N) = {tuple(want_w.shape)}, got "
               + (str([tuple(t.shape) for t in res]) if ok_tuple else repr(type(res).__name__)),
               "you return (weights, out): return them in this order, (out, weights)"
               if ok_tuple and res[0].shape == want_w.shape and res[1].shape == want_out.shape else "", stop=True)
        out, w = res
        if close(w, want_w):
            g.ok("attention weights = softmax(q k^T / sqrt(d)) over the keys")
        else:
            bugs = diagnose(w, SDP_AXES, lambda **o: sdp_variant(q, k, v, **o)[0])
            rows = w.sum(-1)
            generic = ("each row of the weights should sum to 1" if not torch.allclose(rows, torch.ones_like(rows), atol=1e-4)
                       else "compare with softmax((q @ k.transpose(-2, -1)) / sqrt(d), dim=-1)")
            g.fail("attention weights differ from softmax(q k^T / sqrt(d))", bugs or generic, stop=True)
        g.test(close(out, want_out), "out = weights @ v", "out differs from weights @ v",
               "multiply the (N, N) weights by v: (B, h, N, N) @ (B, h, N, d) -> (B, h, N, d)")
        q2, k2, v2 = (seeded(1, 2, 7, 8, seed=s) for s in (3, 4, 5))
        w2 = g.call(fn, q2, k2, v2, what="scaled_dot_product changes q, k or v")[1]
        g.test(close(w2, attention_weights(q2, k2)), "also right for 2 heads, 7 tokens, d = 8",
               "right for the first example but not for 2 heads, 7 tokens, d = 8: take d from q.shape[-1]")
    return g.finish()


def attention_variant(ref: MultiHeadSelfAttention, x: torch.Tensor, split="heads", qkv="outer", scale="sqrt_d",
                      softmax="keys", merge="transpose", proj="yes", take="012") -> torch.Tensor:
    """The reference module's forward with the mistakes of :data:`ATTENTION_AXES` switched on."""
    B, N, D = x.shape
    h = ref.num_heads
    d = D // h
    y = F.linear(x, ref.qkv.weight, ref.qkv.bias)  # (B, N, 3D)
    if qkv == "outer":
        q, k, v = y.reshape(B, N, 3, D).unbind(2)  # [q | k | v]: 3 x (B, N, D)
    else:
        q, k, v = y.reshape(B, N, h, 3, d).permute(3, 0, 1, 2, 4).flatten(3).unbind(0)  # per-head [q k v]
    parts = (q, k, v)
    q, k, v = (parts[int(i)] for i in take)  # which slice each of q, k, v was taken from

    def heads(t):  # (B, N, D) -> (B, h, N, d)
        if split == "heads":
            return t.reshape(B, N, h, d).transpose(1, 2)
        if split == "strided":
            return t.reshape(B, N, d, h).permute(0, 3, 1, 2)
        if split == "swapped":  # head_dim groups of `heads` channels: (B, N, d, h) -> (B, d, N, h)
            return t.reshape(B, N, d, h).transpose(1, 2)
        return t.reshape(B, h, N, d)  # "reshape": mixes tokens and heads

    w, o = sdp_variant(heads(q), heads(k), heads(v), scale=scale, softmax=softmax)
    if merge == "transpose":
        o = o.transpose(1, 2).reshape(B, N, D)  # (B, h, N, d) -> (B, N, h*d)
    elif merge == "strided":
        o = o.permute(0, 2, 3, 1).reshape(B, N, D)  # -> (B, N, d*h)
    else:
        o = o.reshape(B, N, D)  # "reshape": mixes tokens and heads
    return F.linear(o, ref.proj.weight, ref.proj.bias) if proj == "yes" else o


def _take_message(take: str) -> str | None:
    names = "qkv"
    wrong = [(names[j], names[int(i)], j) for j, i in enumerate(take) if int(i) != j]
    if not wrong:
        return None
    said = " and ".join(f"{a} is taken from the {b} slice of qkv(x)" for a, b, _ in wrong)
    fix = ", ".join(f"{a} = qkv[{j}]" for a, _, j in wrong)
    return (f"{said}: its 3*D outputs are [q | k | v], so after the reshape to (3, B, heads, N, head_dim) "
            f"{fix}.")


TAKE = {"".join(t): _take_message("".join(t)) for t in itertools.product("012", repeat=3)}
TAKE = {"012": None, **{t: m for t, m in TAKE.items() if t != "012"}}

ATTENTION_AXES = {
    "split": {"heads": None,
              "strided": "the heads are split along the wrong axis: head j got channels j, j+heads, j+2*heads, "
                         "... Each head owns a contiguous block of head_dim channels: reshape (B, N, D) to "
                         "(B, N, heads, head_dim), then transpose(1, 2).",
              "swapped": "the heads are split along the wrong axis: heads and head_dim are swapped in the reshape, "
                         "giving head_dim heads of width `heads`. Reshape (B, N, D) to (B, N, heads, head_dim), "
                         "then transpose(1, 2).",
              "reshape": "(B, N, D) was reshaped straight to (B, heads, N, head_dim), which mixes tokens into the "
                         "heads: reshape to (B, N, heads, head_dim) first, then transpose(1, 2)."},
    "qkv": {"outer": None,
            "per_head": "q, k and v were cut from the wrong slices of qkv(x): its 3*D outputs are [q | k | v] "
                        "(each D wide, heads inside), so reshape to (B, N, 3, heads, head_dim)."},
    "scale": SCALE,
    "softmax": SOFTMAX,
    "merge": {"transpose": None,
              "strided": "the heads are merged back along the wrong axis: (B, heads, N, d) -> transpose(1, 2) -> "
                         "(B, N, heads * d), head 0's channels first.",
              "reshape": "the heads are merged with a plain reshape of (B, heads, N, d) to (B, N, D), which mixes "
                         "tokens: transpose(1, 2) first, then reshape."},
    "proj": {"yes": None, "no": "the output projection `proj` is not applied after merging the heads."},
    "take": TAKE,
}


def check_attention(student_cls, verbose: bool = True) -> CheckResult:
    """Grade ``student_cls(dim, num_heads)`` against :class:`setr_edu.MultiHeadSelfAttention` with equal weights.

    Part 1's ``scaled_dot_product`` is replaced by the reference while this runs, so a bug there costs points
    once; the report says when the student's own version would have failed this part."""
    g = Grader("A2", "attention", "multi-head self-attention", tests=4, verbose=verbose)
    with g.run(), with_reference(student_cls, {"scaled_dot_product": reference_sdp}) as swapped:
        if is_reference(student_cls, MultiHeadSelfAttention):
            g.fail("this is setr_edu's own MultiHeadSelfAttention: write your own module", stop=True)
        D, heads = 24, 4
        ref = randomize_(MultiHeadSelfAttention(D, heads)).eval()
        student = student_cls(dim=D, num_heads=heads).eval()
        x = seeded(2, 7, D, seed=3)
        al = align(student, ref, forward_on(x))
        g.require(al.ok and not al.missing, f"{student_cls.__name__}(dim={D}, num_heads={heads}) has the layers "
                  f"qkv ({3 * D}x{D}) and proj ({D}x{D})",
                  f"{student_cls.__name__}(dim={D}, num_heads={heads}) does not have the expected layers",
                  al.messages() + [f"expected: {describe_params(ref)}"])
        out, deterministic = eval_outputs(g, student, x, what="forward changes x")
        want = ref(x).detach()
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        g.test(got == tuple(want.shape), f"output shape {tuple(want.shape)} = (B, N, D)",
               f"output shape {got}, expected (B, N, D) = {tuple(want.shape)}",
               "if you return (out, weights), return only out from forward", stop=True)
        if close(out, want):
            g.ok("values match setr_edu.MultiHeadSelfAttention with the same weights")
        elif not deterministic:
            g.fail("values differ from setr_edu.MultiHeadSelfAttention, and from one call to the next",
                   DROPOUT_HINT, stop=True)
        else:
            with torch.no_grad():
                bugs = diagnose(out, ATTENTION_AXES, lambda **o: attention_variant(ref, x, **o))
            g.fail("values differ from setr_edu.MultiHeadSelfAttention with the same weights",
                   bugs or "Several things differ: check the head split, (B, N, 3D) -> (B, N, 3, heads, "
                           "head_dim) -> (3, B, heads, N, head_dim), and the merge back, transpose(1, 2) then "
                           "reshape to (B, N, D).", stop=True)
        ref2 = randomize_(MultiHeadSelfAttention(D, 2), seed=1).eval()
        student2 = student_cls(dim=D, num_heads=2).eval()
        x2 = seeded(1, 5, D, seed=4)
        align(student2, ref2, forward_on(x2))
        with torch.no_grad():
            out2 = g.call(student2, x2, what="forward changes x")
        g.test(close(out2, ref2(x2)), "also right with 2 heads and 5 tokens (nothing hard-coded)",
               "right with 4 heads but not with 2 heads and 5 tokens: use self.num_heads and x.shape")
        grade_backward(g, student, ref, x)
        if swapped.active:
            g.note(dependency_note("scaled_dot_product", swapped, lambda: close(call_student(student, x)[0], want)))
    return g.finish()

