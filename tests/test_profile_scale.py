"""A notebook's gpu profile must be a scale a Colab GPU finishes (issue 20, item 2).

The ``gpu`` profile is the paper's T-Large at 512 x 512 with 160k iterations: right for chapter 12's real runs, wrong
for the small models that chapters 4-6 train only to draw their feature maps ("trained for about a minute"). Those
models use :func:`setr_edu.toy_profile`, which keeps ``ci`` and ``cpu`` as they are and gives ``gpu`` the ``cpu`` toy.
"""
import ast
from pathlib import Path

import nbformat
import pytest

import setr_edu
from setr_edu.profile import PROFILES, toy_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if "_build" not in p.parts)


@pytest.mark.parametrize("name, expected", [("ci", "ci"), ("cpu", "cpu"), ("gpu", "cpu")])
def test_toy_profile_keeps_the_small_profiles_and_shrinks_gpu(name, expected, monkeypatch):
    assert toy_profile(name) is PROFILES[expected]
    assert toy_profile(PROFILES[name]) is PROFILES[expected]
    monkeypatch.setenv("SETR_EDU_PROFILE", name)
    assert setr_edu.toy_profile() is PROFILES[expected]


def test_the_toy_trains_in_minutes_where_gpu_would_take_the_paper_schedule():
    gpu, toy = PROFILES["gpu"], toy_profile("gpu")
    assert gpu.train_iters == 160_000 and gpu.encoder == "large"  # what a chapter would otherwise train
    assert toy.train_iters <= 1_000 and toy.img_size <= 128 and toy.encoder_overrides["depth"] <= 4


def _trains_at_the_active_profile(source: str) -> list[str]:
    """Calls of ``synthetic_recipe(P, ...)``: P is the active profile, the paper's scale under gpu."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: not a training cell
        return []
    return [ast.unparse(node)[:80] for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
            == "synthetic_recipe" and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "P"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_trains_the_synthetic_task_at_the_gpu_profiles_scale(path):
    found = [f"cell {i}: {call}" for i, c in enumerate(nbformat.read(path, as_version=4).cells)
             if c.cell_type == "code" for call in _trains_at_the_active_profile(c.source)]
    assert not found, ("trains T-Large at 512 for the paper's 160k iterations under the gpu profile; use "
                       "setr_edu.toy_profile(P):\n" + "\n".join(found))


def test_the_check_finds_a_training_at_the_active_profile():
    assert _trains_at_the_active_profile("r = synthetic_recipe(\n    P, decoder='pup', max_iters=3)")
    assert not _trains_at_the_active_profile("r = synthetic_recipe(S, decoder='pup')")
