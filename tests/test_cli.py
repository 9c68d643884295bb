"""``python -m setr_edu train|eval|predict|recipes``: the happy path and the refusals (setr_edu/cli.py, recipes.py)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from engine_helpers import TINY_ARGS, one_thread
from PIL import Image

from setr_edu.cli import main
from setr_edu.engine.checkpoint import load_checkpoint
from setr_edu.recipes import Recipe, apply_overrides, get_recipe, list_recipes

@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-iteration run through the CLI, shared by the eval / predict tests."""
    work = tmp_path_factory.mktemp("run")
    with one_thread():
        assert main(["train", "--config", "synthetic_ci", "--max-iters", "2", "--work-dir", str(work),
                     "--no-progress", *TINY_ARGS]) == 0
    return work


def test_train_writes_checkpoint_log_and_summary(trained, capsys):
    assert (trained / "last.pt").exists() and (trained / "log.jsonl").exists()
    # --resume on a finished run trains nothing more and reports the stored metrics
    assert main(["train", "--config", "synthetic_ci", "--max-iters", "2", "--work-dir", str(trained), "--resume",
                 "--no-progress", *TINY_ARGS]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["iter"] == 2 and 0 <= summary["mIoU"] <= 1


def test_eval_prints_per_class_report(trained, capsys, tmp_path):
    assert main(["eval", "--checkpoint", str(trained / "last.pt"), "--flip", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "background" in out and "mIoU" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= metrics["mIoU"] <= 1 and len(metrics["IoU"]) == 3


def test_predict_writes_colourised_pngs(trained, tmp_path):
    img = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(img)
    assert main(["predict", "--checkpoint", str(trained / "last.pt"), str(img), "--out", str(tmp_path / "out"),
                 "--overlay", "0.5"]) == 0
    pred = np.asarray(Image.open(tmp_path / "out" / "photo_pred.png"))
    assert pred.shape == (40, 56, 3) and (tmp_path / "out" / "photo_overlay.png").exists()


def test_incompatible_checkpoint_is_refused_with_advice(trained, capsys):
    code = main(["eval", "--checkpoint", str(trained / "last.pt"), "--config", "synthetic_ci", *TINY_ARGS,
                 "decoder=pup"])
    err = capsys.readouterr().err
    assert code == 2 and "decoder: checkpoint 'naive' vs now 'pup'" in err and "Use the recipe" in err


def test_missing_data_folder_says_how_to_get_it(tmp_path, capsys):
    code = main(["train", "--config", "ade20k_pup", "--data-root", str(tmp_path / "nope"), "--work-dir",
                 str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "ADEChallengeData2016" in err


def test_unknown_key_suggests_the_right_one(capsys):
    assert main(["train", "--config", "synthetic_ci", "max_iter=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe key 'max_iter'" in err and "Did you mean 'max_iters'" in err and "Valid keys:" in err
    assert main(["train", "--config", "synthetic_cpus"]) == 2
    assert "Did you mean 'synthetic_cpu'" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    out = subprocess.run([sys.executable, "-m", "setr_edu", "train", "--help"], capture_output=True, text=True,
                         check=True).stdout  # through __main__.py, as a reader types it
    for option in ("--config", "--max-iters", "--work-dir", "--resume", "key=value", "torchrun"):
        assert option in out
    for argv in (["--help"], ["eval", "--help"], ["predict", "--help"], ["grade", "--help"]):  # grade: delegated
        with pytest.raises(SystemExit):
            main(argv)
    out = capsys.readouterr().out
    assert all(c in out for c in ("train", "eval", "predict", "recipes", "bench", "grade", "--ms", "--overlay"))


# --- recipes ----------------------------------------------------------------------------------------------------------
def test_paper_recipes_follow_the_official_configs():
    names = list_recipes()
    assert {"ade20k_pup", "cityscapes_mla_80k", "pascal_context_naive", "synthetic_cpu", "synthetic_ci"} <= set(names)
    ade, city, pc = get_recipe("ade20k_naive"), get_recipe("cityscapes_mla_40k"), get_recipe("pascal_context_pup")
    assert (ade.crop_size, ade.batch_size, ade.max_iters, ade.stride, ade.lr) == (512, 16, 160_000, 341, 0.01)
    assert "paper's text says 0.001" in ade.notes
    assert (city.crop_size, city.batch_size, city.max_iters, city.stride, city.lr) == (768, 8, 40_000, 512, 0.002)
    assert (pc.crop_size, pc.num_classes, pc.max_iters, pc.stride, pc.lr) == (480, 60, 80_000, 320, 0.001)
    for r in (ade, city, pc):
        assert (r.momentum, r.weight_decay, r.min_lr, r.power, r.head_lr_mult, r.aux_weight) == (0.9, 0, 1e-4, 0.9, 10, 0.4)
    assert get_recipe("cityscapes_pup_base_80k").encoder == "base"
    for r in (ade, city, pc):
        assert r.optimizer == "sgd" and r.pretrained == "paper" and r.eval_mode == "slide"
    syn = get_recipe("synthetic_cpu")  # from scratch: AdamW (see its notes), at the cpu profile's scale
    assert (syn.optimizer, syn.crop_size, syn.max_iters, syn.pretrained) == ("adamw", 96, 600, "")
    assert get_recipe("synthetic_cpu_cnn").to_dict() == {**syn.to_dict(), "name": "synthetic_cpu_cnn", "model": "cnn"}


def test_overrides_are_type_checked(tmp_path):
    r = apply_overrides(Recipe(), ["max_iters=2k", "lr=1e-3", "aux=false", "train_scale=1024,512",
                                   "encoder_overrides.depth=6"])
    assert (r.max_iters, r.lr, r.aux, r.train_scale, r.encoder_overrides) == (2000, 1e-3, False, (1024, 512), {"depth": 6})
    with pytest.raises(TypeError, match="max_iters.*expects int"):
        apply_overrides(Recipe(), ["max_iters=1.5"])
    with pytest.raises(ValueError, match="choose one of"):
        apply_overrides(Recipe(), ["decoder=unet"])
    (tmp_path / "r.json").write_text(json.dumps({"base": "synthetic_ci", "lr": 0.05, "max_iters": 7}))
    (tmp_path / "r.yaml").write_text("base: synthetic_ci\nlr: 0.05\nmax_iters: 7\n")
    (tmp_path / "r.py").write_text("RECIPE = {'base': 'synthetic_ci', 'lr': 0.05, 'max_iters': 7}\n")
    for ext in ("json", "yaml", "py"):
        r = get_recipe(str(tmp_path / f"r.{ext}"), ["seed=3"])
        assert (r.name, r.lr, r.max_iters, r.seed) == ("synthetic_ci", 0.05, 7, 3)
    (tmp_path / "bad.json").write_text(json.dumps({"lr": 0.1, "batchsize": 4}))
    with pytest.raises(KeyError, match="batch_size"):
        get_recipe(str(tmp_path / "bad.json"))


# --- faults and bad input end in one line (issue 16) ---------------------------------------------------------------
def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[0]


def test_overrides_may_follow_options_and_bad_values_name_their_key(tmp_path, capsys):
    assert main(["train", "--config", "synthetic_ci", "seed=1", "--work-dir", str(tmp_path), "--max-iters", "1",
                 "--no-progress", *TINY_ARGS[:4], "--threads", "1", *TINY_ARGS[4:], "eval_every=1"]) == 0
    assert load_checkpoint(tmp_path / "last.pt")["recipe"]["seed"] == 1
    assert main(["train", "--config", "synthetic_ci", "--max-iters", "0", "--work-dir", str(tmp_path / "z")]) == 2
    assert "max_iters must be >= 1, got 0" in _error_line(capsys)
    assert main(["train", "--config", "synthetic_ci", "encoder_overrides.depth=abc"]) == 2
    assert "encoder_overrides.depth expects int, got 'abc'" in _error_line(capsys)
    assert main(["recipes", "synthetic_ci", "encoder_overrides.depht=3"]) == 2
    assert "encoder_overrides.depht does not exist" in _error_line(capsys)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_one_line(trained, tmp_path, capsys):
    assert main(["train", "--config", "synthetic_ci", "--device", "cuda", "--work-dir", str(tmp_path)]) == 2
    assert "device=cuda but PyTorch sees no CUDA GPU" in _error_line(capsys)
    assert main(["eval", "--checkpoint", str(trained / "last.pt"), "--device", "cuda"]) == 2
    assert "device=cpu" in _error_line(capsys)


def test_bad_scales_and_non_checkpoints_are_refused(trained, tmp_path, capsys):
    for scales in ("0", "-1,1", "1,,2", "abc"):
        assert main(["eval", "--checkpoint", str(trained / "last.pt"), f"--scales={scales}"]) == 2
        assert f"--scales {scales} is not valid" in _error_line(capsys)
    (tmp_path / "notes.pt").write_text("train loss 0.3\n")
    assert main(["eval", "--checkpoint", str(tmp_path / "notes.pt")]) == 2
    assert "is not a PyTorch checkpoint (it looks like a text file" in _error_line(capsys)


def test_predict_takes_folders_keeps_same_stems_apart_and_skips_unreadable_files(trained, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("a/x.png", "a/x.jpg", "b/x.png", "a/y.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG" + bytes(100))  # unreadable, sorted first
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(trained / "last.pt"), str(tmp_path / "a"), "--out", str(out),
                 str(tmp_path / "b" / "x.png")])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["x_jpg_pred.png", "x_png_2_pred.png", "x_png_pred.png",
                                                     "y_pred.png"]  # 4 images, 4 predictions
    err = capsys.readouterr().err
    assert "Traceback" not in err and "broken.png is not a readable image" in err
    assert "1 of 5 images could not be read and were skipped" in err.strip().splitlines()[-1]
    assert main(["predict", "--checkpoint", str(trained / "last.pt"), str(tmp_path / "nope.png")]) == 2
    assert "no such image file or folder" in _error_line(capsys)


def test_eval_names_a_bad_validation_file_in_one_message(trained, tmp_path, capsys):
    root = tmp_path / "data"
    for split in ("train", "val"):
        for d in ("images", "annotations"):
            (root / d / split).mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / f"images/{split}/0.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / f"annotations/{split}/0.png")
    (root / "classes.txt").write_text("background\na\nb\n")
    (root / "images/val/1.png").write_bytes(b"GIF89a" + bytes(10))
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "annotations/val/1.png")
    assert main(["eval", "--checkpoint", str(trained / "last.pt"), "dataset=folder", f"data_root={root}"]) == 2
    assert "1 problem(s)" in _error_line(capsys)


def test_ctrl_c_before_training_starts_is_one_line(tmp_path, capsys, monkeypatch):
    from setr_edu.engine import trainer

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "__init__", interrupted)  # e.g. while the dataset files are checked
    assert main(["train", "--config", "synthetic_ci", "--work-dir", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip() == "interrupted (Ctrl-C) during `train` before anything needed saving"


def test_an_error_from_a_data_loader_worker_is_its_last_line(capsys, monkeypatch):
    from setr_edu import cli
    from setr_edu.data.datasets import BadFileError

    def worker_error(args):  # how DataLoader re-raises a worker's exception: the worker's traceback as message
        raise BadFileError("Caught BadFileError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                           "call last):\n  File \"x.py\", line 1\nsetr_edu.data.datasets.BadFileError: val/3.png is "
                           "not a readable image (truncated)")

    monkeypatch.setattr(cli, "cmd_eval", worker_error)
    assert main(["eval", "--checkpoint", "x.pt"]) == 2
    assert _error_line(capsys) == "error: val/3.png is not a readable image (truncated)"


# --- issue 21: every mistake and every damaged file is one line that says what to do ------------------------------
@pytest.mark.parametrize("override, says", [
    ("max_iters=1e400", "recipe key 'max_iters' expects int"),
    ("num_classes=-1", "num_classes must be >= 0"),
    ("decoder_channels=0", "decoder_channels must be >= 1"),
    ("encoder_overrides.embed_dim=0", "encoder_overrides.embed_dim must be > 0"),
    ("encoder_overrides.patch_size=0", "encoder_overrides.patch_size must be > 0"),
    ("checkpoint_minutes=nan", "checkpoint_minutes must be a number >= 0"),
    ("num_val=0", "num_val must be >= 1"),
    ("slide_stride=-5", "slide_stride must be >= 0"),
    ("warmup_iters=-3", "warmup_iters must be >= 0"),
    ("ratio_range=(-1,2)", "ratio_range must be two numbers 0 < low <= high"),
    ("num_workers=-7", "num_workers must be >= -1"),
    ("synthetic.num_keys=three", "recipe key synthetic.num_keys expects int, got 'three'"),
    ("synthetic={'num_keys': 'x'}", "recipe key synthetic.num_keys expects int"),
    ("synthetic.nm_keys=2", "recipe key synthetic.nm_keys does not exist; synthetic takes num_keys"),
])
def test_bad_override_values_are_one_line_naming_the_key(override, says, capsys):
    assert main(["recipes", "synthetic_ci", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: ") and says in err[0], err


def test_synthetic_options_match_the_dataset():
    import inspect

    from setr_edu.data.synthetic import SyntheticContextDataset
    from setr_edu.recipe_schema import SYNTHETIC_OPTIONS

    params = set(inspect.signature(SyntheticContextDataset).parameters)
    assert set(SYNTHETIC_OPTIONS) == params - {"num_samples", "img_size", "seed", "split", "transforms"}


def test_an_unknown_timm_tag_is_one_line(tmp_path, capsys):
    argv = ["train", "--config", "synthetic_ci", "--work-dir", str(tmp_path), "--no-progress", *TINY_ARGS,
            "max_iters=1", "pretrained=timm:no_such_model"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "pretrained='timm:no_such_model': timm could not load it" in err[0], err


def _damaged(trained, tmp_path, how):
    import torch

    from setr_edu.engine.checkpoint import save_checkpoint

    path = tmp_path / "last.pt"
    if how == "zeroed":  # bytes zeroed inside a tensor (a disk or a sync tool): the zip still reads
        data = bytearray((trained / "last.pt").read_bytes())
        start = data.index(b"archive/data/0") + 200
        data[start:start + 64] = bytes(64)
        path.write_bytes(bytes(data))
        return path
    state = torch.load(trained / "last.pt", weights_only=True)
    if how == "no model":
        del state["model"]
    elif how == "iter x":
        state["iter"] = "x"
    elif how == "nan":
        next(iter(state["model"].values())).fill_(float("nan"))
    save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})
    return path


@pytest.mark.parametrize("how, says", [
    ("zeroed", "is corrupt: archive/data/"),
    ("no model", "lacks 'model', which it needs"),
    ("iter x", "is damaged or was edited: iter is 'x', not a whole number"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(trained, tmp_path, capsys, how, says):
    path = _damaged(trained, tmp_path, how)
    assert main(["eval", "--checkpoint", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and says in err[0] and str(path) in err[0], err


def test_nan_weights_are_evaluated_with_a_warning(trained, tmp_path, capsys):
    path = _damaged(trained, tmp_path, "nan")
    assert main(["eval", "--checkpoint", str(path), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 weight tensor(s) of" in err and "hold NaN or inf" in err and "diverged" in err


def test_log_jsonl_that_is_a_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "log.jsonl").mkdir()
    assert main(["train", "--config", "synthetic_ci", "--work-dir", str(tmp_path), "--no-progress", *TINY_ARGS,
                 "max_iters=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "log.jsonl is not a file" in err[0], err


def test_decoder_settings_pass_through_encoder_overrides():
    """build_setr takes the decoder's taps and widths through encoder_overrides too (chapter 14's MLA run)."""
    r = get_recipe("synthetic_ci", ["encoder_overrides.mla_channels=16", "encoder_overrides.aux_taps=(1,2)"])
    assert r.encoder_overrides == {**get_recipe("synthetic_ci").encoder_overrides, "mla_channels": 16,
                                   "aux_taps": (1, 2)}
