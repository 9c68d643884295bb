"""Device rules of the library, checked on a CPU-only machine (issue: ch10/ch13 call ``predict(model, images)``
with the model on a GPU, moved there by the Trainer, and the images on the CPU).

Two stand-ins for a GPU:

* a model on a *fake* ``cuda`` device (``FakeTensorMode``: shapes, dtypes and devices, no data). Its operators check
  devices exactly like CUDA ones do, so a CPU tensor fed to it raises PyTorch's own "Expected all tensors to be on
  the same device" error, without a GPU;
* :class:`OnGPU`, a CPU tensor that refuses numpy conversions the way a CUDA tensor does, for the plotting helpers.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import setr_edu
from setr_edu.engine import inference
from setr_edu.engine.inference import evaluate, model_device, predict, slide_inference, whole_inference
from setr_edu.viz import plots

TOY = dict(num_classes=3, img_size=32, embed_dim=32, depth=2, num_heads=2, patch_size=8, decoder_channels=8)


@pytest.fixture
def fake_cuda():
    """``(mode, model)``: a small SETR whose weights live on a fake ``cuda:0``; use it inside ``with mode:``."""
    with torch.device("meta"):  # built on meta (no data), then given fake CUDA storage
        model = setr_edu.build_setr("pup", "tiny", **TOY).eval()
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        model = model.to_empty(device="cuda")
    return mode, model


def test_the_fake_gpu_refuses_cpu_inputs_like_a_real_one(fake_cuda):
    mode, model = fake_cuda
    with mode, pytest.raises(RuntimeError, match="same device"):
        model(torch.randn(2, 3, 32, 32))  # what ch10 cell 15 did before predict moved its inputs


def test_predict_runs_on_the_model_device_and_returns_to_the_caller(fake_cuda):
    mode, model = fake_cuda
    with mode:
        assert model_device(model).type == "cuda"
        images = torch.randn(2, 3, 32, 32)  # CPU images, as a notebook builds them from a dataset
        for kw in (dict(), dict(mode="slide", crop=32, stride=16), dict(scales=(0.75, 1.0), flip=True)):
            probs = predict(model, images, **kw)
            assert probs.device.type == "cpu" and tuple(probs.shape) == (2, 3, 32, 32)
        assert whole_inference(model, images).device.type == "cpu"
        assert slide_inference(model, torch.randn(1, 3, 40, 56), crop=32, stride=16).device.type == "cpu"
        on_gpu = predict(model, images.to("cuda"))  # GPU images: the result stays on the GPU
        assert on_gpu.device.type == "cuda"


def test_evaluate_defaults_to_the_model_device(monkeypatch):
    """evaluate must feed the model on *its* device (it used to default to "cpu" whatever the model). The model
    lives on ``meta`` here; predict and the metric are replaced by recorders (both are tested elsewhere)."""
    with torch.device("meta"):
        model = setr_edu.build_setr("naive", "tiny", **TOY)
    seen = []

    def recording_predict(m, images, *args, out_size=None, **kw):
        seen.append(("predict", images.device.type, model_device(m).type))
        return torch.zeros(images.shape[0], 3, *out_size, device=images.device)

    class Recorder:
        def __init__(self, num_classes, **kw):
            pass

        def update(self, pred, target):
            seen.append(("metric", pred.device.type, target.device.type))

        def all_reduce(self):
            pass

        def compute(self):
            return {"mIoU": 0.0}

        def report(self):
            return ""

    monkeypatch.setattr(inference, "predict", recording_predict)
    monkeypatch.setattr(setr_edu.engine.metrics, "SegmentationMetric", Recorder)
    data = [(torch.randn(3, 32, 32), torch.zeros(32, 32, dtype=torch.long)) for _ in range(2)]
    evaluate(model, data, num_classes=3, batch_size=2)
    assert seen == [("predict", "meta", "meta"), ("metric", "meta", "meta")]


def test_model_device_of_a_model_without_weights_is_the_cpu():
    assert model_device(torch.nn.Identity()) == torch.device("cpu")
    assert model_device(torch.nn.BatchNorm2d(2, affine=False)) == torch.device("cpu")  # buffers only


def test_inference_on_cpu_is_unchanged():
    torch.manual_seed(0)
    model = setr_edu.build_setr("naive", "tiny", **TOY).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(predict(model, x), model(x).softmax(1))
    assert inference.model_device(model) == torch.device("cpu")


class OnGPU(torch.Tensor):
    """A CPU tensor that behaves like a CUDA one where it matters for plotting: numpy conversion is refused
    until ``.cpu()`` (which returns a plain tensor); every other op keeps the subclass."""

    REFUSED = {torch.Tensor.numpy, torch.Tensor.__array__, torch.Tensor.tolist}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in cls.REFUSED:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                            "to host memory first.")
        out = super().__torch_function__(func, types, args, kwargs)
        if func is torch.Tensor.cpu or (func is torch.Tensor.to and "cpu" in map(str, (*args[1:], *kwargs.values()))):
            return out.as_subclass(torch.Tensor)
        return out


def test_onGPU_stand_in_refuses_numpy():
    t = torch.zeros(2).as_subclass(OnGPU)
    with pytest.raises(TypeError, match="cpu"):
        np.asarray(t)
    assert np.asarray(t.cpu()).shape == (2,)


def test_plots_accept_gpu_tensors_in_bfloat16():
    import matplotlib

    matplotlib.use("Agg")
    images = torch.randn(2, 3, 16, 16).to(torch.bfloat16).as_subclass(OnGPU)
    labels = torch.randint(0, 3, (2, 16, 16)).as_subclass(OnGPU)
    logits = torch.randn(2, 3, 16, 16).as_subclass(OnGPU)
    fig = plots.plot_segmentation_grid(images, labels, logits)  # no palette: inferred from the labels
    assert len(fig.axes) == 6
    assert plots.to_rgb(images[0]).dtype == np.uint8
    assert plots.colour_labels(labels[0], np.zeros((3, 3), np.uint8)).shape == (16, 16, 3)
    matplotlib.pyplot.close(fig)
