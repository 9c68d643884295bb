"""Precision by hardware (``amp="auto"``): bf16 on GPUs of compute capability >= 8.0, fp16 + GradScaler on older
ones, fp32 on a CPU; MFU against the peak of the precision actually used. The GPU is simulated by patching what
``torch.cuda`` reports."""
from __future__ import annotations

import pytest
import torch

from setr_edu.engine.trainer import Trainer
from setr_edu.perf import bench
from setr_edu.perf.fastpaths import resolve_amp
from setr_edu.perf.timing import peak_tflops
from setr_edu.recipes import get_recipe
from engine_helpers import tiny_recipe


@pytest.mark.parametrize("capability, gpu, expected", [((7, 0), "V100", "fp16"), ((7, 5), "T4", "fp16"),
                                                       ((8, 0), "A100", "bf16"), ((8, 9), "L4", "bf16"),
                                                       ((9, 0), "H100", "bf16")])
def test_auto_picks_by_compute_capability(monkeypatch, capability, gpu, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability)
    assert resolve_amp("auto", "cuda") == expected
    assert asked, "the capability of the device must be asked for"
    assert resolve_amp("auto", "cpu") is None  # no autocast on a CPU unless asked
    assert resolve_amp("bf16", "cuda") == "bf16" and resolve_amp("fp16", "cuda") == "fp16"  # explicit wins


def test_explicit_choices_and_bad_values():
    assert resolve_amp("none", "cuda") is None and resolve_amp(None, "cpu") is None
    assert resolve_amp("bf16", "cpu") == "bf16"  # asked for: kept (chapter 12 checks its numerics on a CPU)
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_amp("float16", "cpu")


def test_peaks_are_per_precision():
    assert peak_tflops("Tesla T4", "fp16") == 65.0
    assert peak_tflops("Tesla T4", "bf16") is None  # no bf16 tensor cores: no MFU against a made-up peak
    assert peak_tflops("Tesla T4", None) == 8.1  # fp32
    assert peak_tflops("NVIDIA A100-SXM4-40GB", "bf16") == 312.0 and peak_tflops("NVIDIA A100", None) == 19.5
    assert peak_tflops("NVIDIA A10G", "bf16") == 125.0  # not mistaken for an A100
    assert peak_tflops("NVIDIA H200", "fp16") == 989.4


def test_mfu_uses_the_peak_of_the_precision_used(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla T4")
    cuda = torch.device("cuda")
    assert bench._peak(cuda, None, "fp16") == 65.0
    assert bench._peak(cuda, None, None) == 8.1
    assert bench._peak(cuda, 100.0, "fp16") == 100.0  # an explicit --peak-tflops wins
    assert bench._peak(torch.device("cpu"), None, "bf16") is None


def test_gpu_recipes_default_to_auto_and_cpu_recipes_to_fp32():
    for name in ("ade20k_pup", "cityscapes_pup_40k", "pascal_context_mla"):
        assert get_recipe(name).amp == "auto"
    assert get_recipe("synthetic_cpu").amp == "none"


def test_trainer_auto_on_cpu_is_fp32_without_scaler(tmp_path):
    t = Trainer(tiny_recipe(amp="auto"), work_dir=tmp_path / "a", progress=False, log=None)
    assert t.amp is None and t.amp_dtype is None and not t.scaler.is_enabled()
    t = Trainer(tiny_recipe(amp="bf16"), work_dir=tmp_path / "b", progress=False, log=None)
    assert t.amp == "bf16" and t.amp_dtype is torch.bfloat16 and not t.scaler.is_enabled()
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        Trainer(tiny_recipe(amp="fp16"), work_dir=tmp_path / "c", progress=False, log=None)


def test_bench_auto_on_cpu_runs_fp32():
    res = bench.bench_setr("naive", "tiny", img_size=32, batch_size=1, num_classes=3, repeats=1, warmup=1,
                           device="cpu", checkpointing=(False,), inference=False, estimate=False, depth=2,
                           embed_dim=32, num_heads=2, patch_size=8, decoder_channels=8)
    assert res["config"]["amp"] is None and "mfu" not in res["train"]
