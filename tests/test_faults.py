"""Never lose a run: signals, validation failures, bad files, full disks, missing GPUs, torn logs (issue 16).

Each test names the fault it plants; each failed on the code before the fix (a traceback, a lost run or silence).
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from engine_helpers import TINY_ARGS, crash_at_iteration, one_thread, tiny_recipe
from PIL import Image

from setr_edu.data.datasets import BadFileError, FolderDataset
from setr_edu.engine import trainer as trainer_mod
from setr_edu.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from setr_edu.engine.trainer import Trainer
from setr_edu.recipes import get_recipe, list_recipes


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _trainer(work_dir, **kw):
    return Trainer(tiny_recipe(**kw), work_dir, progress=False, log=None)


def _folder(root, classes=True):
    """A folder dataset: 3 training and 2 validation pairs of different sizes, labels 0-2 and 255."""
    rng = np.random.default_rng(0)
    for split, sizes in (("train", [(40, 50), (36, 64), (48, 48)]), ("val", [(40, 70), (30, 30)])):
        for d in ("images", "annotations"):
            (root / d / split).mkdir(parents=True, exist_ok=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"images/{split}/{i}.png")
            mask = (np.arange(h * w).reshape(h, w) % 3).astype(np.uint8)
            mask[:2] = 255
            Image.fromarray(mask).save(root / f"annotations/{split}/{i}.png")
    if classes:
        (root / "classes.txt").write_text("sky\nroad\ncar\n")
    return root


def _folder_recipe(root, **kw):
    return tiny_recipe(dataset="folder", data_root=str(root), train_scale=(64, 48), eval_mode="slide",
                       slide_stride=20, batch_size=2, **kw)


# --- 1. every recipe saves on time; SIGINT / SIGTERM save and say how to resume ------------------------------------
def test_every_named_recipe_checkpoints_at_least_every_ten_minutes():
    for name in list_recipes():  # README: "--resume continues an interrupted run"; at most minutes are lost
        assert 0 < get_recipe(name).checkpoint_minutes <= 10, name
    assert get_recipe("synthetic_cpu").checkpoint_minutes <= 2  # the README's CPU recipe (600 iterations)


def test_time_based_checkpoint_without_an_iteration_checkpoint(tmp_path):
    t = _trainer(tmp_path, max_iters=6, checkpoint_every=100, eval_every=100, checkpoint_minutes=1e-6)
    with crash_at_iteration(4), pytest.raises(RuntimeError, match="simulated crash"):
        t.fit()
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 3  # saved on time, though no iteration was due


def test_sigint_saves_the_current_iteration_and_a_second_one_stops_at_once(tmp_path, monkeypatch):
    t = _trainer(tmp_path, max_iters=50, checkpoint_every=100, eval_every=100, checkpoint_minutes=0)
    real_step = Trainer.train_step

    def ctrl_c_in_iteration_3(self, batches):
        if self.iter == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the step
        return real_step(self, batches)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_in_iteration_3)
    with pytest.raises(trainer_mod.TrainingInterrupted, match=r"SIGINT: saved iteration 3 of 50 .*resume with: ") as e:
        t.fit()
    assert e.value.signal == signal.SIGINT and t.iter == 3
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back

    def two_signals(self, batches):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the second one stops at once, without saving
        return real_step(self, batches)

    monkeypatch.setattr(Trainer, "train_step", two_signals)
    with pytest.raises(trainer_mod.TrainingInterrupted, match=r"SIGTERM: stopped during iteration 1, before the "
                                                              r"first checkpoint; there is nothing to resume"):
        _trainer(tmp_path / "b", max_iters=50, checkpoint_minutes=0).fit()
    assert not (tmp_path / "b" / "last.pt").exists()


def test_ctrl_c_during_validation_stops_at_once_keeping_the_checkpoint_written_before_it(tmp_path, monkeypatch):
    real_evaluate = trainer_mod.evaluate

    def ctrl_c_then_evaluate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate", ctrl_c_then_evaluate)
    t = _trainer(tmp_path, max_iters=6, eval_every=2, checkpoint_every=100, checkpoint_minutes=0)
    with pytest.raises(trainer_mod.TrainingInterrupted, match="SIGINT: saved iteration 2 of 6"):
        t.fit()
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 2 and "val_mIoU" not in (tmp_path / "log.jsonl").read_text()


def _wait_for_log(log, more_than: int, proc, timeout=180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and sum(1 for ln in log.read_text().splitlines() if ln.endswith("}")) > more_than:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("training wrote no log lines in time")


def test_ctrl_c_and_sigterm_on_the_command_line_then_resume(tmp_path):
    """A real `python -m setr_edu train` process: Ctrl-C as a terminal sends it (to the whole process group, data
    loader workers included), resume with the printed command, then SIGTERM (``kill``) to the main process."""
    work = tmp_path / "run"
    argv = ["train", "--config", "synthetic_ci", "--work-dir", str(work), "--threads", "1",  # with a progress bar
            *TINY_ARGS, "max_iters=100000", "eval_every=100000", "checkpoint_every=100000", "log_every=1",
            "num_workers=2"]
    proc = subprocess.Popen([sys.executable, "-m", "setr_edu", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_log(work / "log.jsonl", 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    saved = load_checkpoint(work / "last.pt")["iter"]
    assert last.startswith(f"SIGINT: saved iteration {saved} of 100000 to {work / 'last.pt'}; resume with: python -m "
                           f"setr_edu train") and last.endswith("--resume") and saved >= 3

    command = shlex.split(last.split("resume with: ")[1])
    assert command[:3] == ["python", "-m", "setr_edu"]
    proc = subprocess.Popen([sys.executable, *command[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for_log(work / "log.jsonl", saved + 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert f"resumed from {work / 'last.pt'} at iteration {saved}" in out
    final = load_checkpoint(work / "last.pt")["iter"]
    assert final > saved + 2 and f"SIGTERM: saved iteration {final} of 100000" in err
    iters = [json.loads(ln)["iter"] for ln in (work / "log.jsonl").read_text().splitlines()]
    assert iters == list(range(1, final + 1))  # continued from the saved iteration: no gap, no repeat


# --- 2. checkpoint before validating; every file checked before the first iteration ------------------------------
def test_failing_validation_names_the_file_and_keeps_the_checkpoint(tmp_path):
    root = _folder(tmp_path / "data")
    t = Trainer(_folder_recipe(root, max_iters=4, eval_every=2, checkpoint_every=100, checkpoint_minutes=0),
                tmp_path / "run", progress=False, log=None)
    (root / "images/val/1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))  # breaks after the start check
    with pytest.raises(trainer_mod.TrainingError, match=r"validation at iteration 2 failed: .*val/1\.png.*"
                                                        r"checkpoint of iteration 2 is saved"):
        t.fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iter"] == 2


def test_out_of_memory_in_validation_keeps_the_checkpoint_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def oom(self):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")

    monkeypatch.setattr(Trainer, "validate", oom)
    t = _trainer(tmp_path, max_iters=4, eval_every=2, checkpoint_every=100, checkpoint_minutes=0)
    with pytest.raises(trainer_mod.TrainingError, match=r"validation at iteration 2 failed: CUDA out of memory\. "
                                                        r"Tried to allocate 2\.00 GiB; the checkpoint of iteration 2"):
        t.fit()
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 2

    monkeypatch.setattr(Trainer, "validate", lambda self: 1 / 0)
    with pytest.raises(ZeroDivisionError) as e:  # a bug in the code: the traceback stays, with a note
        _trainer(tmp_path / "b", max_iters=4, eval_every=2, checkpoint_minutes=0).fit()
    assert "the checkpoint of iteration 2 is saved" in e.value.__notes__[0]


def test_a_file_broken_during_training_is_named_in_one_line(tmp_path):
    root = _folder(tmp_path / "data")
    t = Trainer(_folder_recipe(root, max_iters=4, checkpoint_every=1, eval_every=100, num_workers=2),
                tmp_path / "run", progress=False, log=None)
    for i in range(3):  # broken after the start check: found when a worker loads it
        (root / f"images/train/{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(trainer_mod.TrainingError) as e:
        t.fit()
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)
    assert "could not read its data: " in str(e.value) and "train/" in str(e.value) and "resume with" in str(e.value)


def test_bad_files_in_both_splits_are_named_together_before_training(tmp_path):
    root = _folder(tmp_path / "data")
    jpg = root / "images/train/1.jpg"  # a JPEG cut short (a partial copy): its header still reads
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (36, 64, 3), dtype=np.uint8)).save(jpg, quality=90)
    jpg.write_bytes(jpg.read_bytes()[:-500])
    (root / "images/train/1.png").unlink()
    (root / "images/val/0.png").write_bytes(os.urandom(300))  # random bytes named .png
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "annotations/train/2.png")  # wrong size
    Image.fromarray(np.full((30, 30), 9, np.uint8)).save(root / "annotations/val/1.png")  # not a class
    with pytest.raises(BadFileError) as e:
        Trainer(_folder_recipe(root), tmp_path / "run", progress=False, log=None)
    msg = str(e.value)
    assert msg.startswith("4 bad file(s)") and "nothing was trained" in msg
    for needle in ("[train]", "train/1.jpg is truncated", "val/0.png is not a readable image",
                   "train/2.png is 10x10 but its image", "val/1.png holds values [9]"):
        assert needle in msg, needle
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_clean_check_is_remembered_until_a_file_changes(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data")
    calls = []
    real = FolderDataset.bad_files
    monkeypatch.setattr(FolderDataset, "bad_files", lambda self: calls.append(self) or real(self))
    for _ in range(2):  # e.g. a run and its resume
        Trainer(_folder_recipe(root), tmp_path / "run", overwrite=True, progress=False, log=None)
    assert len(calls) == 2  # train + val, once
    (root / "annotations/val/1.png").write_bytes(b"broken")
    with pytest.raises(BadFileError, match=r"\[val\] label file .*val/1\.png is not a readable image"):
        Trainer(_folder_recipe(root), tmp_path / "run", overwrite=True, progress=False, log=None)


def test_folder_dataset_without_classes_txt_refuses_a_stray_label_value(tmp_path):
    root = _folder(tmp_path / "data", classes=False)
    assert FolderDataset(root, split="train").num_classes == 3  # inferred from the values 0-2
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(root / "annotations/train/2.png")
    with pytest.raises(BadFileError, match=r"no classes.txt.*\[3, 4, 5, 6\] never occur while \[7\] do .*"
                                           r"train/2\.png.*classes\.txt"):
        FolderDataset(root, split="train")


# --- 4. work dir, disk, device ---------------------------------------------------------------------------------
def test_unwritable_work_dir_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(trainer_mod.TrainingError, match="cannot write to the work dir .*--work-dir"):
        _trainer(tmp_path / "file" / "run")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(trainer_mod.TrainingError, match="Permission denied"):
            _trainer(tmp_path / "ro")


def test_full_disk_is_found_before_training_and_at_a_save(tmp_path, monkeypatch):
    class Usage:
        free = 2 ** 20

    monkeypatch.setattr("setr_edu.engine.preflight.shutil.disk_usage", lambda path: Usage)
    with pytest.raises(trainer_mod.TrainingError, match=r"has 1.0 MiB free but a checkpoint .* --work-dir"):
        _trainer(tmp_path)
    monkeypatch.undo()

    t = _trainer(tmp_path, max_iters=4, checkpoint_every=2, eval_every=100, checkpoint_minutes=0)
    t.fit(until=2)
    real_save = torch.save

    def disk_full(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("setr_edu.engine.checkpoint.torch.save", disk_full)
    with pytest.raises(CheckpointError, match=r"No space left on device\); the previous checkpoint .* is intact"):
        t.fit()
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 2 and sorted(os.listdir(tmp_path)) == [".lock", "last.pt",
                                                                                                    "log.jsonl"]

    def zip_writer_fails(obj, f, *a, **k):  # what a really full disk gives (checked on a 4.6 MB tmpfs)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1887872 vs 1887764")

    monkeypatch.setattr("setr_edu.engine.checkpoint.torch.save", zip_writer_fails)
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with free space: a real error, kept as it is
        save_checkpoint(tmp_path / "last.pt", {"iter": 3})
    Usage.free = 0
    monkeypatch.setattr("setr_edu.engine.checkpoint.shutil.disk_usage", lambda path: Usage)
    with pytest.raises(CheckpointError, match=r"\(the disk is full\); the previous checkpoint .* is intact"):
        save_checkpoint(tmp_path / "last.pt", {"iter": 3})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["iter"] == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_mod, "build_datasets", lambda r: pytest.fail("datasets built before the check"))
    with pytest.raises(ValueError, match="device=cuda but PyTorch sees no CUDA GPU.*device=cpu"):
        _trainer(tmp_path, device="cuda")


# --- 5-6. stale temporary checkpoints, torn log line -----------------------------------------------------------
def test_stale_temporary_checkpoints_are_removed_on_start(tmp_path):
    tmp_path.joinpath(".last.pt.k2j3h.tmp").write_bytes(b"\0" * 4096)  # a save killed with kill -9
    tmp_path.joinpath("notes.tmp").write_text("not ours")
    _trainer(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "notes.tmp"]  # .lock: the work-dir lock


def test_resume_drops_a_torn_last_log_line(tmp_path):
    _trainer(tmp_path, max_iters=2, log_every=1).fit()
    log = tmp_path / "log.jsonl"
    log.write_text(log.read_text() + '{"iter": 3, "loss": 0.7')  # killed while writing
    messages = []
    t = Trainer(tiny_recipe(max_iters=3, log_every=1), tmp_path, resume=True, progress=False, log=messages.append)
    assert any("dropped its torn last line" in m and str(log) in m for m in messages)
    t.fit()
    assert [json.loads(ln)["iter"] for ln in log.read_text().splitlines() if "loss" in ln] == [1, 2, 3]
    log.write_text('{"iter": 1}\nnot json\n{"iter": 2}\n')  # a broken line in the middle is not guessed at
    with pytest.raises(trainer_mod.TrainingError, match=r"log.jsonl line 2 is not JSON"):
        Trainer(tiny_recipe(max_iters=3), tmp_path, resume=True, progress=False, log=None)


# --- 7. not a checkpoint ---------------------------------------------------------------------------------------
def test_a_text_file_as_checkpoint_says_so(tmp_path):
    (tmp_path / "notes.pt").write_text("epoch 10: loss 0.3\n")
    with pytest.raises(CheckpointError, match=r"not a PyTorch checkpoint \(it looks like a text file"):
        load_checkpoint(tmp_path / "notes.pt")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that takes any bytes as a name")
def test_a_file_name_that_is_not_utf8_trains(tmp_path):
    """Issue 21: a name like b"a\\xff.png" (copied from an old Latin-1 system) failed with a codec error naming no
    file, in the digest of the start check."""
    root = _folder(tmp_path / "data")
    for d in ("images", "annotations"):
        os.rename(root / d / "train" / "0.png", root / d / "train" / os.fsdecode(b"caf\xe9.png"))
    t = Trainer(_folder_recipe(root, max_iters=1, eval_every=100), tmp_path / "run", progress=False, log=None)
    t.fit()
    assert (tmp_path / "run" / ".files-checked").is_file()
