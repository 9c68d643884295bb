"""Chapter 14's saved widgets name only models that both ipywidgets 7 (Colab ships 7.7.1) and 8 define.

A front end draws a saved widget from the notebook's widget state only if it knows every model the state names;
ipywidgets 8's ``Stack`` and ``HTML`` widgets bring ``StackModel`` and ``HTMLStyleModel``, which 7 lacks. The
explorers therefore use a hidden-bar ``Tab`` and ``Output`` notes (setr_edu/viz/widgets.py), checked here on the
widgets themselves and on the state stored in book/ch14_inside_setr.ipynb.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from setr_edu.viz.widgets import SHARED_MODELS, AttentionExplorer

ipywidgets = pytest.importorskip("ipywidgets")
from ipywidgets.embed import dependency_state  # noqa: E402

CH14 = Path(__file__).resolve().parents[1] / "book" / "ch14_inside_setr.ipynb"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def models_defined_by(W) -> set[str]:
    names = set()

    def walk(cls):
        for sub in cls.__subclasses__():
            trait = sub.class_traits().get("_model_name")
            if trait is not None and trait.default_value:
                names.add(trait.default_value)
            walk(sub)

    walk(W.Widget)
    return names


def test_the_shared_models_exist_in_the_installed_ipywidgets():
    assert SHARED_MODELS <= models_defined_by(ipywidgets)
    assert "StackModel" not in SHARED_MODELS and "HTMLStyleModel" not in SHARED_MODELS  # 8 only


def test_both_explorers_name_only_shared_models():
    grid = (2, 2)
    attn = [torch.full((1, 2, 4, 4), 0.25) for _ in range(2)]
    ex = AttentionExplorer(attn, np.zeros((8, 8, 3), np.uint8), grid)
    static = ex.static_widget([(0, 0), (1, 1)])
    state = dependency_state([static, *static.links, ex.live_widget()], drop_defaults=False)
    names = {m["model_name"] for m in state.values()}
    assert {"TabModel", "LinkModel", "ImageModel", "OutputModel"} <= names
    assert names <= SHARED_MODELS, f"ipywidgets 7 front ends cannot draw {sorted(names - SHARED_MODELS)}"


def test_the_planted_8_only_widget_is_caught():
    state = dependency_state([ipywidgets.VBox([ipywidgets.HTML("x")])], drop_defaults=False)
    assert "HTMLStyleModel" in {m["model_name"] for m in state.values()} - SHARED_MODELS


@pytest.mark.xfail(strict=True, reason="ch14 not yet re-executed with these widgets (its kernel died twice on the "
                   "loaded helper machine): python book/_scripts/execute_notebooks.py book/ch14_inside_setr.ipynb, "
                   "then delete this marker")
def test_ch14_stored_state_is_drawable_by_ipywidgets_7_and_8():
    nb = json.loads(CH14.read_text())
    state = nb["metadata"]["widgets"][STATE_MIME]["state"]
    names = {m["model_name"] for m in state.values()}
    assert names <= SHARED_MODELS, f"ch14 stores {sorted(names - SHARED_MODELS)}: re-execute the chapter"
    views = [o["data"][VIEW_MIME]["model_id"] for c in nb["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if VIEW_MIME in o.get("data", {})]
    assert len(views) >= 2 and all(v in state for v in views)  # both explorers, saved with their state
    assert {"TabModel", "LinkModel"} <= names  # the kernel-free explorer is among them
