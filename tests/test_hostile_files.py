"""Files from elsewhere are data, never code: every reader refuses a checkpoint or recipe that would run code.

Each test plants a real attack (a pickle that names a function to call, a recipe whose ``base`` is a Python file)
and checks two things: the file is refused with one line, and the attack's side effect (a marker file) never
happens. Gadgets: ``numpy.testing._private.utils.runstring`` (numpy's own ``exec``), ``builtins.exec``,
``os.system``, ``torch.hub``-style helpers, and a numpy-prefixed name that does not exist.
"""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import setr_edu
from setr_edu.convert import load_mmseg_setr, load_official_setr, official_stand_ins, read_checkpoint
from setr_edu.engine.checkpoint import CheckpointError, load_checkpoint
from setr_edu.io import UnsafeCheckpointError, load_checkpoint_file

FIX = official_stand_ins()  # tiny checkpoints written by the official code, shipped with the package


class _Gadget:
    """Pickles as ``module.name(*args)``: what an attacker writes into a checkpoint."""

    def __init__(self, module: str, name: str, args: tuple):
        self.module, self.name, self.args = module, name, args

    def __reduce__(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.name), self.args


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


GADGETS = {
    "numpy-runstring": lambda m: _Gadget("numpy.testing._private.utils", "runstring", (_code(m), {})),
    "builtins-exec": lambda m: _Gadget("builtins", "exec", (_code(m),)),
    "os-system": lambda m: _Gadget("os", "system", (f"touch {m}",)),
}


def _plant(path: Path, gadget, marker: Path, wrapper: str = "state_dict") -> Path:
    """A checkpoint in torch's zip format: real tensors, and the gadget hidden in ``meta``."""
    sd, meta = read_checkpoint(FIX / "naive.pth")
    torch.save({"meta": {**meta, "seed": gadget(marker)}, wrapper: sd}, path)
    return path


@pytest.mark.parametrize("gadget", sorted(GADGETS))
@pytest.mark.parametrize("reader", ["read_checkpoint", "load_official_setr", "load_mmseg_setr", "load_file"])
def test_converters_refuse_code_in_a_checkpoint(tmp_path, gadget, reader):
    marker = tmp_path / "pwned"
    path = _plant(tmp_path / "evil.pth", GADGETS[gadget], marker)
    call = {"read_checkpoint": read_checkpoint, "load_file": load_checkpoint_file,
            "load_official_setr": lambda p: load_official_setr(p, "naive"),
            "load_mmseg_setr": lambda p: load_mmseg_setr(p, "naive")}[reader]
    with pytest.raises(UnsafeCheckpointError, match="refused, nothing in it was run") as err:
        call(path)
    assert "\n" not in str(err.value)
    assert not marker.exists(), "the checkpoint ran code"


def test_a_numpy_prefix_is_not_enough(tmp_path):
    """The old reader allowed any global whose name starts with ``numpy.``: a made-up numpy name is refused too."""
    path = tmp_path / "fake.pth"
    data = (b"\x80\x02cnumpy.lib.npyio\nNotAllowed\nq\x00)\x81q\x01.")
    import zipfile

    with zipfile.ZipFile(path, "w") as z:  # torch's zip layout: <name>/data.pkl, <name>/version
        z.writestr("fake/data.pkl", data)
        z.writestr("fake/byteorder", "little")
        z.writestr("fake/version", "3\n")
    with pytest.raises(UnsafeCheckpointError, match="numpy.lib.npyio.NotAllowed"):
        load_checkpoint_file(path)


def test_numpy_values_in_meta_still_load(tmp_path):
    """What mmcv really writes (numpy scalars, arrays, dtypes) is data and loads."""
    sd, meta = read_checkpoint(FIX / "naive.pth")
    path = tmp_path / "np.pth"
    torch.save({"meta": {"seed": np.int64(3), "palette": np.array([[1, 2, 3]], np.uint8), "lr": np.float32(0.5),
                         "flag": np.bool_(True)}, "state_dict": sd}, path)
    sd2, meta2 = read_checkpoint(path)
    assert int(meta2["seed"]) == 3 and meta2["palette"].tolist() == [[1, 2, 3]] and float(meta2["lr"]) == 0.5
    assert sd2.keys() == sd.keys()


def test_object_arrays_are_refused(tmp_path):
    """An object-dtype array holds pickled Python objects: never allowed, even of harmless ones."""
    sd, _ = read_checkpoint(FIX / "naive.pth")
    arr = np.empty(1, dtype=object)
    arr[0] = _Gadget("builtins", "exec", (_code(tmp_path / "pwned"),))
    path = tmp_path / "obj.pth"
    torch.save({"meta": {"x": arr}, "state_dict": sd}, path)
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_training_checkpoint_reader_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "last.pt"
    torch.save({"format": "setr-edu/1", "model": {}, "x": GADGETS["numpy-runstring"](marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_pretrained_file_reader_refuses_code(tmp_path):
    """``pretrained=<file>`` (engine.build) reads the file through the same reader."""
    from setr_edu.engine.build import load_pretrained
    from setr_edu.recipes import get_recipe

    marker = tmp_path / "pwned"
    path = tmp_path / "vit.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 8), "x": GADGETS["numpy-runstring"](marker)}, path)
    recipe = get_recipe("synthetic_ci", [f"pretrained={path}"])
    model = setr_edu.build_setr("naive", encoder="tiny", num_classes=3, img_size=32, depth=2, embed_dim=8,
                                num_heads=2)
    with pytest.raises(UnsafeCheckpointError):
        load_pretrained(model, recipe, log=lambda *_: None)
    assert not marker.exists()


def test_cli_eval_of_a_planted_released_file_runs_nothing(tmp_path):
    """The file placed where the download error tells users to put it (``~/.cache/setr_edu``) is refused by
    ``python -m setr_edu eval --checkpoint official:ade20k_pup`` with one line and exit status 2."""
    home = tmp_path / "home"
    cache = home / ".cache" / "setr_edu"
    cache.mkdir(parents=True)
    marker = tmp_path / "pwned"
    _plant(cache / "setr_official_ade20k_pup.pth", GADGETS["numpy-runstring"], marker)
    out = subprocess.run([sys.executable, "-m", "setr_edu", "eval", "--checkpoint", "official:ade20k_pup",
                          "--data-root", str(tmp_path / "none"), "--device", "cpu"],
                         env={**_env(), "HOME": str(home)}, capture_output=True, text=True, timeout=120)
    assert not marker.exists(), "the planted checkpoint ran code"
    assert out.returncode == 2, out.stderr
    assert "refused, nothing in it was run" in out.stderr and "Traceback" not in out.stderr


def test_stored_recipe_base_cannot_run_a_file(tmp_path):
    """A checkpoint's recipe naming a Python file as ``base`` (eval/predict without --config) runs nothing."""
    from setr_edu.recipes import Recipe

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.py"
    evil.write_text(f"{_code(marker)}\nRECIPE = {{}}\n")
    with pytest.raises((ValueError, KeyError)) as err:
        Recipe.from_dict({"base": str(evil), "lr": 0.1})
    assert not marker.exists()
    assert "\n" not in str(err.value)


def test_recipe_py_files_are_read_as_data(tmp_path):
    """``--config r.py`` reads ``RECIPE = {...}`` / ``dict(...)`` / ``Recipe(...)`` literals; code is refused."""
    from setr_edu.recipes import get_recipe

    (tmp_path / "ok.py").write_text("# a recipe\nRECIPE = dict(base='synthetic_ci', lr=0.05, max_iters=7)\n")
    r = get_recipe(str(tmp_path / "ok.py"))
    assert (r.lr, r.max_iters, r.dataset) == (0.05, 7, get_recipe("synthetic_ci").dataset)
    marker = tmp_path / "pwned"
    for i, body in enumerate([f"import os\nos.system('touch {marker}')\nRECIPE = {{}}\n",
                              f"RECIPE = {{'lr': __import__('os').system('touch {marker}')}}\n",
                              f"RECIPE = {{'base': {str(tmp_path / 'ok.py')!r}}}\n"]):
        path = tmp_path / f"bad{i}.py"
        path.write_text(body)
        with pytest.raises(ValueError):
            get_recipe(str(path))
    assert not marker.exists()


def test_cli_eval_with_a_planted_recipe_base(tmp_path):
    """End to end: a setr-edu checkpoint whose stored recipe names a .py as base; eval without --config."""
    from setr_edu.engine.build import build_model
    from setr_edu.engine.checkpoint import save_checkpoint
    from setr_edu.recipes import get_recipe

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.py"
    evil.write_text(f"{_code(marker)}\nRECIPE = {{}}\n")
    recipe = get_recipe("synthetic_ci")
    model = build_model(recipe, 4)
    stored = dict(recipe.to_dict(), base=str(evil))
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": model.state_dict(), "iter": 1, "recipe": stored, "meta": {"num_classes": 4}})
    out = subprocess.run([sys.executable, "-m", "setr_edu", "eval", "--checkpoint", str(path), "--device", "cpu"],
                         env=_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert not marker.exists(), "the stored recipe ran a file"
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr


def _env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(Path(setr_edu.__file__).parents[1])}


def test_pickle_protocol_fallback_is_refused_too(tmp_path):
    """A legacy (non-zip) pickle checkpoint goes through the same unpickler."""
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "x": GADGETS["builtins-exec"](marker)}, f, protocol=2)
    with pytest.raises((UnsafeCheckpointError, ValueError)):
        load_checkpoint_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"PK" + bytes(range(200)), b"\x80" + bytes(200), b"<html>not found</html>"])
def test_unreadable_files_get_one_line_and_never_the_advice_to_disable_the_check(tmp_path, content):
    """torch's own message suggests ``weights_only=False``, which would run code: never passed on to users."""
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_checkpoint_file(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert "download it again" in str(err.value)
