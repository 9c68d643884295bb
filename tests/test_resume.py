"""Checkpoints: an interrupted run resumes bitwise-exactly; bad checkpoints are refused before any work is lost."""
import json
import os

import pytest
import torch
from engine_helpers import crash_at_iteration, one_thread, params_equal, tiny_recipe

from setr_edu.engine import checkpoint as ckpt
from setr_edu.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from setr_edu.engine.trainer import Trainer

# 8 iterations over 12 images with batch 4: crosses epoch boundaries; eval at 4, 8; checkpoints at 3, 6 and before
# each validation (4, 8).
RECIPE = dict(max_iters=8, checkpoint_every=3, eval_every=4, log_every=1)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():  # bitwise-reproducible and fast on a busy 2-core machine
        yield


def _trainer(work_dir, resume=False, **kw):
    return Trainer(tiny_recipe(**{**RECIPE, **kw}), work_dir, resume=resume, progress=False, log=None)


def _optimizer_equal(a, b) -> bool:
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]) for k in sa)


def test_interrupted_run_resumes_bitwise_equal(tmp_path):
    with one_thread():
        straight = _trainer(tmp_path / "straight")
        straight.fit()

        crashed = _trainer(tmp_path / "crashed")
        with crash_at_iteration(6, "simulated crash (Colab disconnected)"):
            with pytest.raises(RuntimeError, match="simulated crash"):
                crashed.fit()
        assert load_checkpoint(tmp_path / "crashed" / "last.pt")["iter"] == 4  # iteration 5 is lost, 1-4 are not

        torch.manual_seed(1234)  # disturb the global RNGs: the checkpoint must restore them
        resumed = _trainer(tmp_path / "crashed", resume=True)
        assert resumed.iter == 4
        saved = load_checkpoint(tmp_path / "crashed" / "last.pt")["rng"]
        assert torch.equal(torch.get_rng_state(), saved["torch"])
        resumed.fit()

    assert resumed.iter == straight.iter == 8
    assert params_equal(resumed.model, straight.model)  # weights *and* BatchNorm running statistics
    assert _optimizer_equal(resumed.optimizer, straight.optimizer)
    timing = {"time", "iter_time", "images_per_s", "data_time"}
    logs = [[{k: v for k, v in json.loads(s).items() if k not in timing}
             for s in (tmp_path / d / "log.jsonl").read_text().splitlines()] for d in ("straight", "crashed")]
    assert logs[0] == logs[1]  # the same log lines (timings aside): nothing lost, iteration 4 not duplicated


def test_training_in_chunks_equals_one_run(tmp_path):
    kw = dict(max_iters=4, eval_every=100, optimizer="adamw", lr=1e-3, warmup_iters=2)  # AdamW state resumes too
    with one_thread():
        whole = _trainer(tmp_path / "whole", **kw)
        whole.fit()
        part = _trainer(tmp_path / "part", **kw)
        part.fit(until=2)  # e.g. a notebook cell that trains a bit, then another cell that continues
        again = _trainer(tmp_path / "part", resume=True, **kw)
        again.fit()
    assert params_equal(whole.model, again.model)


def test_checkpoint_holds_everything_to_resume(tmp_path):
    with one_thread():
        t = _trainer(tmp_path, max_iters=3)
        t.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert {"iter", "model", "optimizer", "scaler", "rng", "sampler", "recipe", "meta", "elapsed"} <= set(state)
    assert state["sampler"] == dict(seed=0, position=12, epoch=1)  # 3 steps x batch 4 of 12 images
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    assert state["recipe"]["max_iters"] == 3
    assert state["meta"]["num_classes"] == t.num_classes == len(state["meta"]["class_names"])
    assert not any(k.startswith("module.") for k in state["model"])


def test_save_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"iter": 1, "model": {}, "recipe": {}})

    def dies_mid_write(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"iter": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["iter"] == 1  # the previous checkpoint is intact
    assert os.listdir(tmp_path) == ["last.pt"]  # and no temporary file is left behind


def test_truncated_and_foreign_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "good.pt", {"iter": 1, "model": {"w": torch.zeros(100)}})
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a setr-edu training checkpoint"):
        load_checkpoint(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_from_another_model_is_refused_before_loading(tmp_path):
    with one_thread():
        _trainer(tmp_path, max_iters=1).fit()
        with pytest.raises(CheckpointError, match=r"decoder: checkpoint 'naive' vs now 'pup'"):
            _trainer(tmp_path, resume=True, decoder="pup")
        with pytest.raises(CheckpointError, match="embed_dim"):
            _trainer(tmp_path, resume=True, encoder_overrides=dict(embed_dim=64, depth=2, num_heads=2, patch_size=8))
        # a model passed in directly (no recipe difference) is still checked key by key and shape by shape
        with pytest.raises(CheckpointError, match="shape mismatches"):
            ckpt.check_compatible(load_checkpoint(tmp_path / "last.pt"),
                                  _trainer(tmp_path / "b", num_classes=5).model, path="last.pt")


@pytest.mark.parametrize("stop_at", [4, 8])  # a middle validation, the final one
def test_a_validation_stopped_by_a_signal_is_run_again_on_resume(tmp_path, monkeypatch, stop_at):
    """Issue 21: SIGINT during the final validation, then resume, reported the previous validation's mIoU."""
    import signal

    from setr_edu.engine import trainer as trainer_mod

    straight = _trainer(tmp_path / "straight").fit()
    real_evaluate = trainer_mod.evaluate
    calls = []

    def ctrl_c_in_one_validation(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at // 4:
            os.kill(os.getpid(), signal.SIGINT)  # stops at once: the checkpoint of this iteration is written
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate", ctrl_c_in_one_validation)
    with pytest.raises(trainer_mod.TrainingInterrupted, match=f"saved iteration {stop_at} of 8"):
        _trainer(tmp_path / "run").fit()
    monkeypatch.setattr(trainer_mod, "evaluate", real_evaluate)
    resumed = _trainer(tmp_path / "run", resume=True).fit()
    assert resumed["mIoU"] == straight["mIoU"] and resumed["aAcc"] == straight["aAcc"]
    vals = [json.loads(ln) for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in vals if "val_mIoU" in r] == [4, 8]  # each validation once, none lost
    meta = load_checkpoint(tmp_path / "run" / "last.pt")["meta"]
    assert meta["last_val"]["mIoU"] == straight["mIoU"] and meta["val_iter"] == 8


def test_a_finished_validation_is_not_run_again(tmp_path, monkeypatch):
    _trainer(tmp_path, max_iters=6).fit(until=4)  # validated at 4 after its checkpoint; last.pt is from before
    from setr_edu.engine import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "evaluate", lambda *a, **k: 1 / 0)
    t = _trainer(tmp_path, resume=True, max_iters=6)
    assert t.iter == 4 and t.last_val is not None and not t._validation_missing()
