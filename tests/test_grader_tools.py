"""The graders' shared tools (setr_edu/checks/compare.py, result.py, grade.py): the tolerance measured from valid
float32 implementations, device handling, unique diagnoses, and the CSV feedback text."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from setr_edu import MultiHeadSelfAttention, PatchEmbedding, TransformerBlock, checks
from setr_edu.checks import compare, grade
from setr_edu.checks.compare import TOL, randomize_, rel_diff, seeded
from setr_edu.checks.decoders import reference_head


def _attention_variants():
    D, h = 24, 4
    ref = randomize_(MultiHeadSelfAttention(D, h)).eval()
    x = seeded(2, 7, D, seed=3)
    B, N, d = 2, 7, D // h
    want = ref(x)
    q, k, v = ref.qkv(x).reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)
    s = torch.einsum("bhnd,bhmd->bhnm", q, k) / math.sqrt(d)
    yield "attention, einsum", ref.proj(torch.einsum("bhnm,bhmd->bhnd", s.softmax(-1), v)
                                        .transpose(1, 2).reshape(B, N, D)), want
    outs = []
    for i in range(h):  # one head at a time, softmax by hand
        w = [ref.qkv.weight[j * D + i * d:j * D + (i + 1) * d] for j in range(3)]
        b = [ref.qkv.bias[j * D + i * d:j * D + (i + 1) * d] for j in range(3)]
        qi, ki, vi = (x @ wj.T + bj for wj, bj in zip(w, b))
        e = torch.exp(qi @ ki.transpose(-1, -2) * d ** -0.5)
        outs.append(e / e.sum(-1, keepdim=True) @ vi)
    yield "attention, loop over heads", ref.proj(torch.cat(outs, -1)), want
    xn = x.numpy()
    y = (xn @ ref.qkv.weight.numpy().T + ref.qkv.bias.numpy()).reshape(B, N, 3, h, d).transpose(2, 0, 3, 1, 4)
    sn = y[0] @ y[1].transpose(0, 1, 3, 2) / np.float32(math.sqrt(d))
    e = np.exp(sn - sn.max(-1, keepdims=True))
    on = (e / e.sum(-1, keepdims=True) @ y[2]).transpose(0, 2, 1, 3).reshape(B, N, D)
    yield "attention, NumPy float32", torch.from_numpy(on @ ref.proj.weight.numpy().T + ref.proj.bias.numpy()), want


def _layer_norm(t, m, eps=1e-6):
    mu = t.mean(-1, keepdim=True)
    return (t - mu) / torch.sqrt(((t - mu) ** 2).mean(-1, keepdim=True) + eps) * m.weight + m.bias


def _block(blk, t, eps=1e-6, act=None):
    act = act or (lambda u: 0.5 * u * (1 + torch.erf(u / math.sqrt(2))))
    t = t + blk.attn(_layer_norm(t, blk.norm1, eps))
    return t + blk.mlp.fc2(act(blk.mlp.fc1(_layer_norm(t, blk.norm2, eps))))


def _block_inputs():
    # the two inputs check_transformer_block uses: plain tokens and tokens of small variance
    return [("plain", seeded(2, 7, 24, seed=5)), ("small variance", seeded(2, 7, 24, seed=7, scale=1e-3))]


def _valid_variants():
    yield from _attention_variants()
    blk = randomize_(TransformerBlock(24, 4)).eval()
    for name, x in _block_inputs():
        yield f"block, hand-written LayerNorm and erf GELU ({name})", _block(blk, x), blk(x)
    pe = randomize_(PatchEmbedding(4, 3, 10)).eval()
    x = seeded(2, 3, 12, 20, seed=1)
    u = F.unfold(x, 4, stride=4).transpose(1, 2)
    yield "patch embedding, unfold + einsum", torch.einsum("bnk,dk->bnd", u, pe.proj.weight.flatten(1)) \
        + pe.proj.bias, pe(x)
    for kind in ("naive", "pup", "mla"):
        r = randomize_(reference_head(kind, 24, 5, 16)).eval()
        zs = [seeded(2, 24, 3, 4, seed=j) for j in range(4)]
        r64 = reference_head(kind, 24, 5, 16)
        r64.load_state_dict(r.state_dict())
        r64 = r64.double().eval()
        args = zs if kind == "mla" else zs[0]
        args64 = [z.double() for z in zs] if kind == "mla" else zs[0].double()
        yield f"decoder {kind}, float64", r64(args64, (50, 70)), r(args, (50, 70))


@torch.no_grad()
def test_tolerance_separates_valid_implementations_from_look_alikes(capsys):
    """Valid float32 implementations stay below TOL / 2; the look-alikes the issue names are above 2 * TOL."""
    valid = [(name, rel_diff(a, b)) for name, a, b in _valid_variants()]
    blk = randomize_(TransformerBlock(24, 4)).eval()
    look_alikes = []
    for name, x in _block_inputs():
        look_alikes.append((f"LayerNorm eps 1e-5 ({name})", rel_diff(_block(blk, x, eps=1e-5), blk(x))))
        look_alikes.append((f"tanh GELU ({name})", rel_diff(
            _block(blk, x, act=lambda u: F.gelu(u, approximate="tanh")), blk(x))))
    with capsys.disabled():
        print("\nrelative differences (max|a-b| / max|ref|), TOL =", TOL)
        for name, r in valid + look_alikes:
            print(f"  {r:.2e}  {name}")
    assert max(r for _, r in valid) < TOL / 2, valid
    assert min(r for _, r in look_alikes) > 2 * TOL, look_alikes


def test_diagnose_names_a_mistake_only_when_the_evidence_is_unique():
    x = torch.arange(6.0)
    axes = {"a": {"ok": None, "neg": "negated"}, "b": {"ok": None, "rev": "reversed"},
            "c": {"ok": None, "sign": "sign flipped"}}

    def variant(a, b, c):
        y = -x if a == "neg" else x
        y = y.flip(0) if b == "rev" else y
        return -y if c == "sign" else y

    assert compare.diagnose(x, axes, variant) == []
    assert compare.diagnose(x.flip(0), axes, variant) == ["reversed"]
    both = compare.diagnose(-x, axes, variant)  # "negated" and "sign flipped" give the same output
    assert "more than one mistake" in both[0] and len(both) == 3
    assert compare.diagnose(x + 1, axes, variant) is None


class DeviceRecorder(nn.Module):
    """A module whose weights live on the ``meta`` device: it records the device of every input it gets."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, device="meta"))
        self.seen = []

    def forward(self, x, *rest):
        self.seen.append(x.device)
        return torch.zeros(x.shape[0], 3, *x.shape[-2:])  # results on the CPU


def test_graders_move_inputs_to_the_model_device():
    """A student's module (or trained model) on another device gets its inputs there: on a GPU machine the same
    code moves them to cuda."""
    m = DeviceRecorder()
    out, modified = compare.call_student(m, torch.ones(2, 3, 4, 4))
    assert m.seen == [torch.device("meta")] and out.device.type == "cpu" and not modified
    m = DeviceRecorder()
    checks.check_trained_model(m, verbose=False)
    assert m.seen and set(m.seen) == {torch.device("meta")}


def test_call_student_detects_in_place_changes_and_returns_cpu_outputs():
    def bump(x, ys):
        ys[0].add_(1)
        return x * 2

    x, ys = torch.ones(3), [torch.zeros(2)]
    out, modified = compare.call_student(bump, x, ys, device="cpu")
    assert modified and torch.equal(ys[0], torch.zeros(2)) and torch.equal(out, 2 * x)  # the caller's copy is safe


def test_csv_feedback_is_one_readable_sentence_group():
    def sdp(q, k, v):
        w = (q @ k.transpose(-2, -1)).softmax(-1)
        return w @ v, w

    entry = checks.check_scaled_dot_product(sdp, verbose=False).to_json()
    text = grade.feedback(entry)
    assert text.startswith("2 of 5 tests passed. First failure: attention weights differ")
    assert "Hint: the scores q k^T are not scaled" in text
    assert "\n" not in text and "[FAIL]" not in text and "  " not in text and len(text) <= 650
    long = dict(entry, messages=["  [FAIL] x", "         " + "word " * 400])
    cut = grade.feedback(long)
    assert len(cut) <= 650 and cut.endswith("(see the executed notebook)")
    assert grade.feedback(dict(entry, messages=["  [ok]   fine"])) == ""
    stopped = dict(entry, messages=["  [FAIL] shapes differ", "         reshape first", "  [skip] 3 more tests not run",
                                    "  [info] the model has 2 layers"])
    assert grade.feedback(stopped).endswith("Hint: reshape first")  # skip/info lines are not part of the hint


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (unverified here)")
def test_graders_grade_modules_that_live_on_cuda():
    """A student's module that puts itself on the GPU is graded like one on the CPU."""
    class OnCuda(MultiHeadSelfAttention):
        def __init__(self, dim, num_heads):
            super().__init__(dim, num_heads)
            self.cuda()

    class MyAttention(nn.Module):
        def __init__(self, dim, num_heads):
            super().__init__()
            self.inner = OnCuda(dim, num_heads)
            self.qkv, self.proj = self.inner.qkv, self.inner.proj

        def forward(self, x):
            return self.inner(x)

    r = checks.check_attention(MyAttention, verbose=False)
    assert r.passed, r.report()
