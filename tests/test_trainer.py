"""Optimiser groups, poly schedule, data sampler and the training loop (engine/optim.py, engine/trainer.py)."""
import json
import math

import pytest
import torch
from engine_helpers import PointwiseNet, one_thread, tiny_recipe

import setr_edu
from setr_edu.data import SyntheticContextDataset
from setr_edu.engine.optim import PolySchedule, build_optimizer, param_groups, poly_lr
from setr_edu.engine.checkpoint import load_checkpoint
from setr_edu.engine.trainer import InfiniteBatchSampler, Trainer
from setr_edu.model.baseline import LocalCNN


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():  # bitwise-reproducible and fast on a busy 2-core machine
        yield


# --- optimiser ------------------------------------------------------------------------------------------------------
def test_head_groups_follow_the_official_substring_rule():
    model = setr_edu.build_setr("mla", "tiny", num_classes=5, img_size=32, depth=4, embed_dim=32, num_heads=2,
                                patch_size=8, decoder_channels=16)
    groups = {g["name"]: g for g in param_groups(model, lr=1e-3)}
    head_ids = {id(p) for p in groups["head"]["params"]}
    for name, p in model.named_parameters():  # decode_head.* and auxiliary_heads.* at 10x; neck and encoder at 1x
        assert (id(p) in head_ids) == name.startswith(("decode_head.", "auxiliary_heads.")), name
    assert groups["head"]["lr"] == pytest.approx(1e-2) and groups["base"]["lr"] == pytest.approx(1e-3)
    assert any(n.startswith("neck.") for n, _ in model.named_parameters())


def test_poly_schedule_is_mmcv_with_absolute_min_lr():
    assert poly_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert poly_lr(1e-3, 50, 100) == pytest.approx((1e-3 - 1e-4) * 0.5 ** 0.9 + 1e-4)
    assert poly_lr(1e-2, 100, 100) == pytest.approx(1e-4)  # the 10x head group also ends at min_lr (not 1e-3)
    # linear warm-up multiplies the poly value, from warmup_ratio to 1
    assert poly_lr(1e-3, 0, 100, warmup_iters=10, warmup_ratio=0.1) == pytest.approx(1e-4)
    assert poly_lr(1e-3, 5, 100, warmup_iters=10, warmup_ratio=0.1) == pytest.approx(poly_lr(1e-3, 5, 100) * 0.55)
    opt = build_optimizer(PointwiseNet(), lr=1e-3)
    lrs = PolySchedule(opt, 100).step(100)
    assert lrs == pytest.approx([1e-4, 1e-4])


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_impls_agree(name):
    torch.manual_seed(0)
    nets = [PointwiseNet() for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [build_optimizer(n, lr=0.01, impl=i, name=name) for n, i in zip(nets, ("auto", "loop"))]
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        for n, o in zip(nets, opts):
            n(x).square().mean().backward()
            o.step()
            o.zero_grad()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b)
    assert opts[0].param_groups[0]["weight_decay"] == 0.0 and type(opts[0]).__name__ == {"sgd": "SGD", "adamw": "AdamW"}[name]


# --- sampler --------------------------------------------------------------------------------------------------------
def test_sampler_is_seeded_sharded_and_resumable():
    take = lambda s, k: [b for _, b in zip(range(k), iter(s))]  # noqa: E731
    one = take(InfiniteBatchSampler(10, 4, seed=3), 6)  # 24 samples: crosses two epoch boundaries
    assert one == take(InfiniteBatchSampler(10, 4, seed=3), 6) != take(InfiniteBatchSampler(10, 4, seed=4), 6)
    flat = [i for b in one for i, _ in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))  # each epoch a permutation
    assert [e for _, e in one[2]] == [0, 0, 1, 1]  # epochs are tagged for seeded augmentation
    ranks = [take(InfiniteBatchSampler(10, 2, seed=3, rank=r, world_size=2), 6) for r in range(2)]
    assert [ranks[0][m] + ranks[1][m] for m in range(6)] == one  # 2 ranks x 2 == 1 process x 4
    assert take(InfiniteBatchSampler(10, 4, seed=3, start=8), 4) == one[2:]  # resuming at a position


# --- training loop --------------------------------------------------------------------------------------------------
def test_training_logs_validates_and_learns(tmp_path):
    with one_thread():
        r = tiny_recipe(max_iters=12, num_train=4, eval_every=12, checkpoint_every=12, log_every=4, lr=0.05)
        trainer = Trainer(r, tmp_path, progress=False, log=None)
        summary = trainer.fit()
    lines = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    train = [ln for ln in lines if "loss" in ln]
    assert [ln["iter"] for ln in train] == [4, 8, 12]
    assert {"lr", "head_lr", "loss_main", "loss_aux0", "time", "iter_time", "epoch"} <= set(train[0])
    assert train[0]["head_lr"] == pytest.approx(10 * train[0]["lr"], rel=0.05)
    assert train[-1]["loss"] < 0.7 * train[0]["loss"]  # overfits 4 images
    val = [ln for ln in lines if "val_mIoU" in ln]
    assert len(val) == 1 and val[0]["iter"] == 12 and 0 <= val[0]["val_mIoU"] <= 1
    assert summary["iter"] == 12 and summary["mIoU"] == val[0]["val_mIoU"]
    assert (tmp_path / "last.pt").exists()

    # the book's plots read this log
    import matplotlib

    matplotlib.use("Agg")
    from setr_edu.viz.plots import plot_segmentation_grid, plot_training_curves

    fig = plot_training_curves({"tiny": tmp_path}, loss_keys=("loss", "loss_main"))
    loss_ax, val_ax = fig.axes
    assert [list(line.get_xdata()) for line in loss_ax.lines] == [[4, 8, 12]] * 2
    assert list(val_ax.lines[0].get_ydata()) == [100 * val[0]["val_mIoU"]]
    images, labels = map(torch.stack, zip(*[trainer.val_set[i] for i in range(2)]))
    with torch.no_grad():
        logits = trainer.model.eval()(images)
    fig = plot_segmentation_grid(images, labels, logits, trainer.val_set.palette, trainer.val_set.class_names)
    assert len(fig.axes) == 2 * 3
    matplotlib.pyplot.close("all")


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    """Same global batch, no BatchNorm: 1 x 4 and 2 micro-batches x 2 give the same weights (float tolerance)."""
    ds = SyntheticContextDataset(8, img_size=32, seed=0), SyntheticContextDataset(2, img_size=32, split="val")
    out = []
    with one_thread():
        for accum in (1, 2):
            torch.manual_seed(0)
            t = Trainer(tiny_recipe(grad_accum_steps=accum, max_iters=3), tmp_path / str(accum),
                        model=PointwiseNet(ds[0].num_classes),
                        datasets=ds, progress=False, log=None)
            t.fit()
            out.append(t.model)
    for a, b in zip(out[0].parameters(), out[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_with_the_iteration(tmp_path):
    class NaNAfter(PointwiseNet):
        calls = 0

        def forward(self, x, with_aux=False):
            NaNAfter.calls += 1
            out, aux = super().forward(x, with_aux=True)
            return (out * float("nan"), aux) if NaNAfter.calls == 3 else (out, aux)

    with one_thread():
        t = Trainer(tiny_recipe(), tmp_path, model=NaNAfter(num_classes=3), progress=False, log=None)
        with pytest.raises(FloatingPointError, match=r"iteration 3 .*lower learning rate"):
            t.fit()
    assert t.iter == 2


def test_bf16_autocast_and_grad_checkpointing_train_on_cpu(tmp_path):
    with one_thread():
        t = Trainer(tiny_recipe(amp="bf16", grad_checkpointing=True, max_iters=2, eval_every=2), tmp_path,
                    progress=False, log=None)
        assert t.model.encoder.grad_checkpointing
        summary = t.fit()
    assert math.isfinite(json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["loss"])
    assert 0 <= summary["mIoU"] <= 1


def test_cnn_baseline_trains_with_the_same_loop(tmp_path):
    with one_thread():
        t = Trainer(tiny_recipe(model="cnn", cnn_width=16, max_iters=2, eval_every=2), tmp_path, progress=False,
                    log=None)
        assert isinstance(t.model, LocalCNN)
        assert 0 <= t.fit()["mIoU"] <= 1


def test_cnn_receptive_field_is_local():
    cnn = LocalCNN(num_classes=3, width=16, depth=2).eval()
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    cnn(x)[0, :, 48, 48].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()  # input rows that influence output pixel (48, 48)
    extent = int(rows.max() - rows.min() + 1)
    assert extent <= cnn.receptive_field == 55 < 96


def test_bad_settings_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        Trainer(tiny_recipe(batch_size=4, grad_accum_steps=3), tmp_path, progress=False, log=None)
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        Trainer(tiny_recipe(amp="fp16"), tmp_path, progress=False, log=None)
    with one_thread():
        Trainer(tiny_recipe(max_iters=1), tmp_path, progress=False, log=None).fit()
        with pytest.raises(FileExistsError, match="--resume"):  # never silently overwrite a run
            Trainer(tiny_recipe(), tmp_path, progress=False, log=None)
        Trainer(tiny_recipe(max_iters=1, log_every=1), tmp_path, overwrite=True, progress=False, log=None).fit()
    assert [json.loads(s)["iter"] for s in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 1]  # a new log


def test_real_dataset_layout_trains_with_paper_augmentation_and_slide_eval(tmp_path):
    """A folder dataset (images of different sizes) through the paper's pipeline and sliding-window validation."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, sizes in (("train", [(40, 50), (36, 64), (48, 48)]), ("val", [(40, 70), (30, 30)])):
        for d in ("images", "annotations"):
            (tmp_path / "data" / d / split).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"data/images/{split}/{i}.png")
            mask = rng.integers(0, 3, (h, w)).astype(np.uint8)
            mask[:2] = 255
            Image.fromarray(mask).save(tmp_path / f"data/annotations/{split}/{i}.png")
    r = tiny_recipe(dataset="folder", data_root=str(tmp_path / "data"), train_scale=(64, 48), max_iters=2,
                    eval_every=2, eval_mode="slide", slide_stride=20, batch_size=2)
    t = Trainer(r, tmp_path / "run", progress=False, log=None)
    assert t.num_classes == 3 and len(t.val_set) == 2
    assert 0 <= t.fit()["mIoU"] <= 1


def test_fp16_loss_scale_and_skipped_steps_are_logged_and_a_warning_given(tmp_path):
    """Issue 19: with an overflowing scale every fp16 step was skipped and the log showed nothing. On CPU: a
    GradScaler and gradients that are inf at every step, as in an fp16 run that overflows."""
    messages = []
    t = Trainer(tiny_recipe(max_iters=6, log_every=2, eval_every=100), tmp_path, progress=False,
                log=messages.append)
    t.scaler = torch.amp.GradScaler("cpu")  # what amp=fp16 builds on a GPU (its default scale 2^16)
    next(t.model.parameters()).register_hook(lambda g: g * float("inf"))  # every step's gradients overflow
    before = {k: v.detach().clone() for k, v in t.model.named_parameters()}
    t.fit()
    recs = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines() if "loss" in ln]
    assert [r["skipped_steps"] for r in recs] == [2, 4, 6]
    assert [r["loss_scale"] for r in recs] == [2.0 ** 14, 2.0 ** 12, 2.0 ** 10]  # halved at each skipped step
    assert all(torch.equal(before[k], v) for k, v in t.model.named_parameters())  # nothing was trained
    warnings = [m for m in messages if m.startswith("warning: the fp16 GradScaler skipped")]
    assert len(warnings) == 1 and "6 of 6 steps" in warnings[0] and "amp=bf16" in warnings[0]
    assert load_checkpoint(tmp_path / "last.pt")["meta"]["skipped_steps"] == 6


def test_no_scaler_fields_without_fp16(tmp_path):
    Trainer(tiny_recipe(max_iters=2, log_every=1, eval_every=100), tmp_path, progress=False, log=None).fit()
    assert "loss_scale" not in (tmp_path / "log.jsonl").read_text()
