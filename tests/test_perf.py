"""Performance tools (issue 6): FLOP counts, memory estimates, the benchmark harness and the fast paths.

Every fast path is checked against the readable path; the benchmark harness runs end to end on tiny models
(the same code path a GPU run takes: autocast, interleaving, result structure). Nothing downloads.
"""
import copy
import json
import os

import pytest
import timm
import torch
from torch import nn

import setr_edu
from setr_edu.perf import (autocast, bench_encoder, bench_setr, count_flops, encoder_pair, estimate_training_memory,
                           estimate_training_memory_both,
                           format_table, fused_sgd_available, graph_breaks, peak_tflops, saved_activation_bytes,
                           op_calls, op_kind, profile_step, set_fused_attention, time_interleaved, timm_blocks, to_channels_last,
                           vit_flops)
from setr_edu.perf.bench import main as bench_main

TINY = dict(embed_dim=32, depth=4, num_heads=2, patch_size=8)


def tiny_encoder(img_size=32, **kw):
    return setr_edu.ViTEncoder(setr_edu.encoder_config("tiny", **{**TINY, **kw}), img_size=img_size)


def tiny_setr(decoder="pup", img_size=32):
    return setr_edu.build_setr(decoder, "tiny", num_classes=3, img_size=img_size, decoder_channels=8, **TINY)


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


# ---------------------------------------------------------------- FLOPs


@pytest.mark.parametrize("encoder, size, gflops", [("base", 384, 110.97), ("large", 512, 723.97)])
def test_meta_count_equals_the_vit_formula(encoder, size, gflops):
    """Reference §3: ViT-B@384 110.97 and ViT-L@512 723.97 GFLOPs per image (backbone, forward)."""
    analytic = vit_flops(encoder, size)
    counted = count_flops(lambda: setr_edu.ViTEncoder(setr_edu.encoder_config(encoder), img_size=size), (1, 3, size, size))
    assert counted.forward == analytic["total"]  # exactly: every matmul, nothing else
    assert round(counted.gflops(), 2) == gflops


def test_meta_count_sees_fused_attention_and_matches_timm():
    enc = tiny_encoder(img_size=64)
    fused = count_flops(enc, (2, 3, 64, 64))
    set_fused_attention(enc, False)
    explicit = count_flops(enc, (2, 3, 64, 64))
    f = vit_flops("tiny", 64, **TINY)
    assert fused.forward == explicit.forward == 2 * f["total"]  # SDPA's matmuls are not dropped on meta
    assert fused.per_image() == f["total"] and f["attention_matmuls"] > 0
    assert next(enc.parameters()).device.type == "cpu"  # the caller's model was copied, not moved
    ours, theirs = encoder_pair(setr_edu.encoder_config("tiny", **TINY), 64, torch.device("cpu"))
    timm_count = count_flops(theirs, (2, 3, 64, 64), forward_fn=timm_blocks)
    assert timm_count.forward == fused.forward  # both benchmark candidates do the same work


def test_backward_is_about_twice_the_forward():
    c = count_flops(lambda: tiny_setr("mla"), (2, 3, 32, 32), backward=True, forward_fn=lambda m, x: m(x, with_aux=True))
    assert 1.8 < c.backward / c.forward <= 2.0  # < 2: the image needs no gradient (first conv)
    assert c.total == c.forward + c.backward and "aten.convolution" in c.by_op


# ---------------------------------------------------------------- memory


def test_saved_activation_bytes_of_a_known_module():
    """Linear saves its input (4x8 fp32), ReLU its output (4x16 fp32); the weight is a parameter, not counted."""
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    saved = saved_activation_bytes(model, torch.randn(4, 8))
    assert saved["total"] == 4 * 8 * 4 + 4 * 16 * 4


def test_memory_estimate_responds_to_batch_checkpointing_and_precision():
    make = lambda: tiny_setr("pup")
    base, ckpt = estimate_training_memory_both(make, (2, 3, 32, 32)).values()
    assert estimate_training_memory(make, (2, 3, 32, 32), checkpointing=True) == ckpt
    double = estimate_training_memory(make, (4, 3, 32, 32))
    bf16 = estimate_training_memory(make, (2, 3, 32, 32), amp="bf16")
    n = sum(p.numel() for p in make().parameters())
    assert base.params == base.grads == base.optimizer == 4 * n
    assert double.activations == pytest.approx(2 * base.activations, rel=0.01)
    assert ckpt.activations < base.activations and bf16.activations < base.activations
    with pytest.raises(ValueError, match="amp must be"):
        estimate_training_memory(make, (2, 3, 32, 32), amp="fp8")


# ---------------------------------------------------------------- timing and the harness


def test_time_interleaved_alternates_and_counts():
    calls = []
    res = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1,
                           batch_size=4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert len(res["a"].times) == 3 and res["a"].min <= res["a"].median
    assert res["a"].images_per_s == pytest.approx(4 / res["a"].median)
    with pytest.raises(ValueError):
        time_interleaved({"a": lambda: None}, repeats=0)


def test_profile_step_groups_ops_by_kind():
    assert op_kind("aten::upsample_bilinear2d") == "upsampling"  # not "linear"
    assert op_kind("aten::addmm") == "matmul (linear, bmm)" and op_kind("aten::native_layer_norm") == "normalisation"
    lin, x = nn.Linear(64, 64), torch.randn(32, 64)
    kinds, top = profile_step(lambda: lin(x).relu().sum().backward())
    assert sum(r["share"] for r in kinds) == pytest.approx(1.0)
    assert "matmul (linear, bmm)" in {r["kind"] for r in kinds} and top[0]["ms"] >= top[-1]["ms"]


def test_peak_table_lookup():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA L40S") == 362.0 and peak_tflops("NVIDIA L4") == 121.0
    assert peak_tflops("Some Future GPU") is None


def test_bench_encoder_smoke():
    r = bench_encoder("tiny", img_size=32, batch_size=2, repeats=1, warmup=0, device="cpu", **TINY)
    assert r["max_abs_diff"] < 1e-5  # same weights, same outputs
    assert r["flops_per_image"]["forward"] == vit_flops("tiny", 32, **TINY)["total"]
    for mode in ("forward", "train"):
        for impl in ("setr_edu", "timm"):
            row = r[mode][impl]
            assert row["images_per_s"] > 0 and row["min_ms"] <= row["median_ms"]
        assert r[mode]["speedup"] == pytest.approx(r[mode]["timm"]["median_ms"] / r[mode]["setr_edu"]["median_ms"])
        assert r[mode]["speedup_paired"] == pytest.approx(r[mode]["speedup"])  # one repetition: the same pair
    c = r["config"]  # a committed result must say what it was measured on
    assert c["torch"] == torch.__version__ and c["timm"] and f"{os.cpu_count()} cores" in c["device_name"]
    json.dumps(r)  # the CLI writes it as JSON


def test_bench_setr_smoke_bf16_and_checkpointing():
    """The GPU code path (autocast, checkpointing, SGD step, memory estimate) on a tiny CPU model."""
    r = bench_setr("pup", "tiny", img_size=32, batch_size=2, num_classes=3, repeats=1, warmup=1, device="cpu",
                   amp="bf16", decoder_channels=8, **TINY)
    for name in ("train", "train+ckpt", "inference"):
        assert r[name]["images_per_s"] > 0
    assert r["train+ckpt"]["estimated_memory_gib"] < r["train"]["estimated_memory_gib"]
    assert r["flops_per_image"]["train"] > 2.5 * r["flops_per_image"]["forward"]
    assert "images_per_s" in format_table([r["train"]])


def test_bench_command_line(tmp_path, capsys):
    out = tmp_path / "enc.json"
    args = ["encoder", "--encoder", "tiny", "--img-size", "32", "--batch-size", "2", "--repeats", "1", "--warmup", "0",
            "--depth", "2", "--embed-dim", "32", "--num-heads", "2", "--patch-size", "8", "--json", str(out)]
    assert bench_main(args) == 0
    assert "speedup" in capsys.readouterr().out and json.loads(out.read_text())["config"]["depth"] == 2
    with pytest.raises(SystemExit):
        bench_main(["nonsense"])


# ---------------------------------------------------------------- fast paths agree with the readable path


def test_sdpa_switch_agrees_for_ours_and_timm():
    ours, theirs = encoder_pair(setr_edu.encoder_config("tiny", **TINY), 32, torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fast_ours, fast_timm = ours(x), timm_blocks(theirs.eval(), x)
        assert set_fused_attention(ours, False) == TINY["depth"] and set_fused_attention(theirs, False) == TINY["depth"]
        slow_ours, slow_timm = ours(x), timm_blocks(theirs, x)
    for a, b, c, d in zip(fast_ours, slow_ours, fast_timm, slow_timm):
        assert (a - b).abs().max() < 1e-5 and (c - d).abs().max() < 1e-5 and (a - c).abs().max() < 1e-5


def test_encoder_runs_the_same_arithmetic_as_timm():
    """Op for op, the two forward passes differ only in copies/views (timm copies each map to NCHW)."""
    ours, theirs = encoder_pair(setr_edu.encoder_config("tiny", **TINY), 32, torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a = op_calls(lambda: ours.eval()(x))
        b = op_calls(lambda: timm_blocks(theirs.eval(), x))
    compute = lambda calls: {k: n for k, n in calls.items() if op_kind(k) not in ("copies / reshapes", "other")}
    assert compute(a) == compute(b) and compute(a)["aten::addmm"] == 4 * TINY["depth"]
    assert a.get("aten::copy_", 0) <= b.get("aten::copy_", 0)


def test_bf16_autocast_close_to_fp32():
    model = tiny_setr("mla").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with autocast("cpu", "bf16"):
            low = model(x)
    assert low.dtype == torch.bfloat16
    assert cosine(ref, low.float()) > 0.999
    assert ((ref - low.float()).norm() / ref.norm()).item() < 0.05
    with pytest.raises(ValueError, match="amp must be"):
        autocast("cpu", "int8")


@pytest.mark.parametrize("decoder", ["pup", "mla"])
def test_channels_last_agrees(decoder):
    model = tiny_setr(decoder).eval()
    fast = to_channels_last(copy.deepcopy(model))
    assert fast.decode_head.cls.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - fast(x)).abs().max() < 1e-5


def test_checkpointed_encoder_and_whole_model_have_no_graph_breaks():
    """(The plain encoder is covered by ``fullgraph=True`` below, which raises on any break.)"""
    enc, x = tiny_encoder().train(), torch.randn(2, 3, 32, 32)
    enc.grad_checkpointing = True
    assert graph_breaks(enc, x) == (0, [])
    assert graph_breaks(tiny_setr("mla").eval(), x) == (0, [])


def test_compiled_encoder_fullgraph_matches_eager_forward_and_backward():
    enc, x = tiny_encoder().train(), torch.randn(2, 3, 32, 32)
    compiled = torch.compile(enc, fullgraph=True, backend="aot_eager")  # no C compiler needed
    eager_out, comp_out = enc(x), compiled(x)
    for a, b in zip(eager_out, comp_out):
        assert (a - b).abs().max() < 1e-5
    g_eager = torch.autograd.grad(sum(o.sum() for o in eager_out), enc.blocks[0].attn.qkv.weight)[0]
    g_comp = torch.autograd.grad(sum(o.sum() for o in comp_out), enc.blocks[0].attn.qkv.weight)[0]
    assert (g_eager - g_comp).abs().max() < 1e-4


def test_fused_sgd_matches_plain_sgd():
    if not fused_sgd_available("cpu"):
        pytest.skip("this PyTorch has no fused SGD on CPU")
    a, b = nn.Linear(8, 4), nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=f) for m, f in ((a, None), (b, True))]
    x = torch.randn(16, 8)
    for _ in range(3):
        for m, opt in zip((a, b), opts):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    assert (a.weight - b.weight).abs().max() < 1e-6


# --- Colab recipes: expected time from FLOPs, memory on a 16 GB GPU ----------------------------------------------
@pytest.mark.parametrize("name", ["ade20k_pup_colab", "ade20k_naive_colab", "cityscapes_pup_colab"])
def test_colab_recipes_state_their_expected_time_and_fit_16gb(name):
    from setr_edu.perf.plan import expected_time
    from setr_edu.recipes import get_recipe

    r = get_recipe(name)
    assert r.pretrained == "paper" and r.encoder == "large" and r.grad_checkpointing and r.amp == "auto"
    t4, a100 = expected_time(r, "Tesla T4"), expected_time(r, "NVIDIA A100")
    assert t4["amp"] == "fp16" and a100["amp"] == "bf16"
    # the numbers in the notes are the planner's (rounded), so they cannot drift from the recipe
    assert f"{t4['hours_total']:.1f} h on a T4" in r.notes and f"{a100['hours_total']:.1f} h on an A100" in r.notes
    assert f"first validation after {t4['hours_to_first_val']:.1f} h" in r.notes
    assert t4["hours_to_first_val"] <= 1.05 and t4["hours_total"] < 8  # one Colab session
    per_gpu = r.batch_size // r.grad_accum_steps
    make = lambda: setr_edu.build_setr(r.decoder, r.encoder, num_classes=r.num_classes, img_size=r.crop_size)
    est = estimate_training_memory(make, (per_gpu, 3, r.crop_size, r.crop_size), amp="fp16", checkpointing=True,
                                   grad_accum_steps=r.grad_accum_steps)
    from setr_edu.perf.memory import GPU_MEMORY_GIB, fits
    assert fits(est, GPU_MEMORY_GIB["T4 16 GB"])  # with the CUDA context and the allocator's headroom


def test_expected_time_is_data_bound_when_the_loader_is_slow():
    from setr_edu.perf.plan import expected_time, gpu_peak
    from setr_edu.recipes import get_recipe

    r = get_recipe("ade20k_pup_colab")
    fast, slow = expected_time(r, "NVIDIA A100"), expected_time(r, "NVIDIA A100", data_samples_per_s=5.0)
    assert not fast["data_bound"] and slow["data_bound"] and slow["images_per_s"] == 5.0
    assert slow["hours_total"] > fast["hours_total"]
    assert gpu_peak("Tesla T4") == ("fp16", 65.0) and gpu_peak("NVIDIA H100 80GB HBM3") == ("bf16", 989.4)
    with pytest.raises(ValueError, match="unknown GPU"):
        gpu_peak("Voodoo 3")


def test_one_mfu_definition_round_trips_through_the_plan():
    """A run measured at ``images_per_s`` has MFU ``timing.mfu(train_flops, ips, peak)`` (recompute excluded);
    the plan given that MFU must predict the same images/s, with and without checkpointing (issue 19: the plan
    counted the recompute, so it came out 1.28x slow)."""
    from setr_edu.perf.flops import train_flops
    from setr_edu.perf.plan import ASSUMED_HFU, expected_time, gpu_peak
    from setr_edu.perf.timing import mfu
    from setr_edu.recipes import get_recipe

    for ckpt in ("true", "false"):
        r = get_recipe("ade20k_pup_colab", [f"grad_checkpointing={ckpt}"])
        make = lambda: setr_edu.build_setr(r.decoder, r.encoder, num_classes=r.num_classes, img_size=r.crop_size)
        flops = train_flops(make, (1, 3, r.crop_size, r.crop_size))
        _, peak = gpu_peak("Tesla T4")
        measured = mfu(flops, 3.0, peak)  # a T4 run at 3 images/s
        t = expected_time(r, "Tesla T4", mfu=measured)
        assert t["images_per_s"] == pytest.approx(3.0) and t["mfu"] == measured and not t["mfu_assumed"]
        assumed = expected_time(r, "Tesla T4")
        assert assumed["mfu_assumed"] and assumed["train_tflops_per_image"] == pytest.approx(flops / 1e12)
        if ckpt == "true":  # the assumption is on executed FLOPs: checkpointing lowers the assumed MFU
            assert 0.7 * ASSUMED_HFU < assumed["mfu"] < 0.85 * ASSUMED_HFU
        else:
            assert assumed["mfu"] == ASSUMED_HFU
