"""Chapter 14's saved widgets, in a form that ipywidgets 7 (Colab ships 7.7.1) and 8 front ends both draw.

A front end draws a saved widget from the notebook's widget state only if it knows every model the state names;
ipywidgets 8's ``Stack`` and ``HTML`` widgets bring ``StackModel`` and ``HTMLStyleModel``, which 7 lacks. The
explorers therefore use a hidden-bar ``Tab`` and ``Output`` notes (setr_edu/viz/widgets.py), checked here on the
widgets themselves and on the state stored in book/ch14_inside_setr.ipynb.

The stored module versions and attribute names matter too (public sources, github.com/jupyter-widgets/ipywidgets):

* JupyterLab 3 with ipywidgets 7.7 registers ``@jupyter-widgets/base`` 1.2.0, ``controls`` 1.5.0 and ``output``
  1.0.0 (jupyterlab_widgets/src/plugin.ts at tag 7.7.1); JupyterLab 4 / Notebook 7 with ipywidgets 8.1 registers
  2.0.0, 2.0.0 and 1.0.0 (python/jupyterlab_widgets/src/plugin.ts at 8.1.8). Both managers' ``loadClass``
  (jupyterlab_widgets/src/manager.ts; python/jupyterlab_widgets/src/manager.ts) turn a plain base/controls version
  ``v`` into ``^v`` and pick semver's ``maxSatisfying`` among the registered versions, so the "2.0.0" that
  ipywidgets 8 writes finds nothing in a 7 front end, and 7's "1.5.0" nothing in an 8 one.
* The attribute names come from each version's model specification (packages/schema/jupyterwidgetmodels.latest.md
  at 7.7.1, jupyterwidgetmodels.latest.json at 8.1.8: tests/ipywidgets_models.py); 8 renamed ``description_tooltip``
  to ``tooltip``, a Tab's ``_titles`` to ``titles`` and Layout's ``border`` to four sides (8's
  docs/source/user_migration_guides.md). A front end reads its own names only.
* @jupyter-widgets/html-manager (the static book; MyST-NB 1.x loads 1.0.6) ignores the version up to 1.0.11 and
  from 1.0.12 (ipywidgets 8.1.4, PR #3932) bundles 7's and 8's models and picks by version
  (packages/html-manager/src/htmlmanager.ts).

``book/_scripts/notebook_transforms.py``'s ``widget_state_for_both`` writes every core model with a version range
both registries satisfy and each renamed attribute under both names; the checks below emulate the two JupyterLab
managers' resolution and compare every stored model with both specifications.

Measured once in real front ends (headless Chromium, trusted notebooks holding ch14's two widget outputs,
2026-12-07): JupyterLab 3.6.8 with ipywidgets 7.7.1 / jupyterlab_widgets 1.1.1 left the state as ipywidgets 8
saved it at "Loading widget..." ("Module @jupyter-widgets/controls, semver range ^2.0.0 is not registered") and
draws the rewritten state; JupyterLab 4.4.10 with ipywidgets 8.1.8 draws both, and refuses a state in 7's form
("version ^1.5.0 is not registered, however, 2.0.0 is"), so 7's form alone would not do. tests/test_widget_render.py
draws the state with three html-manager releases. Colab did not restore saved widget state when opening a
notebook (googlecolab/colabtools#516, 2019; not checked since): there a reader sees the widgets once the cell runs.
"""
from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from setr_edu.viz.widgets import SHARED_MODELS, AttentionExplorer

ipywidgets = pytest.importorskip("ipywidgets")
from ipywidgets.embed import dependency_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_scripts"))
sys.path.insert(0, str(Path(__file__).parent))
import notebook_transforms as T  # noqa: E402
from ipywidgets_models import MODELS_7, MODELS_8  # noqa: E402

CH14 = ROOT / "book" / "ch14_inside_setr.ipynb"
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


def test_ch14_stored_state_is_drawable_by_ipywidgets_7_and_8():
    nb = json.loads(CH14.read_text())
    state = nb["metadata"]["widgets"][STATE_MIME]["state"]
    names = {m["model_name"] for m in state.values()}
    assert names <= SHARED_MODELS, f"ch14 stores {sorted(names - SHARED_MODELS)}: re-execute the chapter"
    views = [o["data"][VIEW_MIME]["model_id"] for c in nb["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if VIEW_MIME in o.get("data", {})]
    assert len(views) >= 2 and all(v in state for v in views)  # both explorers, saved with their state
    assert {"TabModel", "LinkModel"} <= names  # the kernel-free explorer is among them


# --- module versions and attribute names: what each front end needs --------------------------------------------------
# The versions each JupyterLab manager registers (plugin.ts at 7.7.1 and 8.1.8).
REGISTERED = {
    "JupyterLab 3, ipywidgets 7.7": {"@jupyter-widgets/base": "1.2.0", "@jupyter-widgets/controls": "1.5.0",
                                     "@jupyter-widgets/output": "1.0.0"},
    "JupyterLab 4 / Notebook 7, ipywidgets 8.1": {"@jupyter-widgets/base": "2.0.0",
                                                  "@jupyter-widgets/controls": "2.0.0",
                                                  "@jupyter-widgets/output": "1.0.0"},
}
SPECS = {"ipywidgets 7.7.1": MODELS_7, "ipywidgets 8.1.8": MODELS_8}
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def satisfies(version: str, semver_range: str) -> bool:
    """npm semver for the forms these states use: ``a || b``, each an exact ``X.Y.Z`` or a caret ``^X.Y.Z``
    (X >= 1: ``>= X.Y.Z, < X+1``). Anything else raises, so an unexpected form fails the test."""
    v = tuple(map(int, VERSION.match(version).groups()))
    for alternative in semver_range.split("||"):
        alternative = alternative.strip()
        caret = alternative.startswith("^")
        m = VERSION.match(alternative.lstrip("^"))
        if m is None or (caret and m.group(1) == "0"):
            raise ValueError(f"unsupported semver range {semver_range!r}")
        low = tuple(map(int, m.groups()))
        if (low <= v < (low[0] + 1, 0, 0)) if caret else v == low:
            return True
    return False


def jupyterlab_finds(registered: dict, module: str, version: str) -> bool:
    """The JupyterLab managers' ``loadClass``: a plain base/controls version becomes ``^version``; a module is
    found when a registered version satisfies the range (semver ``maxSatisfying``)."""
    if module not in registered:
        return False
    if module in ("@jupyter-widgets/base", "@jupyter-widgets/controls") and VERSION.match(version):
        version = "^" + version
    return satisfies(registered[module], version)


def drawing_problems(state: dict) -> list[str]:
    """What keeps a 7 or an 8 front end from drawing a saved widget state exactly as stored."""
    out = []
    for model_id, m in state.items():
        name, attrs = m["model_name"], m["state"]
        for front_end, registered in REGISTERED.items():
            for module, version in ((m["model_module"], m["model_module_version"]),
                                    (attrs.get("_view_module"), attrs.get("_view_module_version"))):
                if module is not None and not jupyterlab_finds(registered, module, version):
                    out.append(f"{front_end} finds no {module} {version!r} ({name})")
        for spec_name, spec in SPECS.items():
            if name not in spec:
                out.append(f"{spec_name} has no {name}")
                continue
            stored = set(attrs) | {b["path"][0] for b in m.get("buffers", ())}  # binary values: buffers
            missing = set(spec[name][2].split()) - stored
            if missing:
                out.append(f"{name} lacks {spec_name}'s {sorted(missing)}")
        if "titles" in attrs and "_titles" in attrs:
            if {int(k): t for k, t in attrs["_titles"].items()} != {i: t for i, t in enumerate(attrs["titles"]) if t}:
                out.append(f"{name}: _titles {attrs['_titles']} and titles {attrs['titles']} differ")
        if "description_tooltip" in attrs and attrs["description_tooltip"] != attrs.get("tooltip"):
            out.append(f"{name}: description_tooltip and tooltip differ")
        if name == "LayoutModel" and "border" in attrs:
            sides = {attrs.get(k) for k in T.BORDERS_8}
            if attrs["border"] != (sides.pop() if len(sides) == 1 else None):
                out.append(f"{name}: border {attrs['border']!r} and the four sides differ")
    return sorted(set(out))


def test_the_range_resolves_in_both_jupyterlab_managers_and_plain_versions_do_not():
    seven, eight = REGISTERED.values()
    assert jupyterlab_finds(seven, "@jupyter-widgets/controls", "1.5.0")
    assert not jupyterlab_finds(seven, "@jupyter-widgets/controls", "2.0.0")  # what ipywidgets 8 writes
    assert not jupyterlab_finds(eight, "@jupyter-widgets/controls", "1.5.0")  # what ipywidgets 7 writes
    for registered in (seven, eight):
        for module, both in T.BOTH_MAJORS.items():
            assert jupyterlab_finds(registered, module, both)
    with pytest.raises(ValueError):
        satisfies("1.5.0", ">=1.5.0")


def kernel_state():
    """A saved state as the installed ipywidgets writes it: a titled Tab, a tooltip, a bordered Layout, a link."""
    W = ipywidgets
    tab = W.Tab([W.IntSlider(tooltip="layer"), W.Output()], layout=W.Layout(border="1px solid red"))
    tab.set_title(0, "slider")
    sel = W.ToggleButtons(options=["a", "b"])
    link = W.jslink((sel, "index"), (tab, "selected_index"))
    return {"version_major": 2, "version_minor": 0,
            "state": dependency_state([W.VBox([sel, tab]), link], drop_defaults=False)}


def test_the_transform_makes_the_installed_ipywidgets_state_drawable_by_both_and_is_idempotent():
    nb = {"metadata": {"widgets": {STATE_MIME: kernel_state()}}}
    before = drawing_problems(nb["metadata"]["widgets"][STATE_MIME]["state"])
    assert before  # as written, one major's front ends cannot draw it
    T.widget_state_for_both(nb)
    state = nb["metadata"]["widgets"][STATE_MIME]["state"]
    assert drawing_problems(state) == []
    tab = next(m["state"] for m in state.values() if m["model_name"] == "TabModel")
    assert tab["_titles"] == {"0": "slider"}
    slider = next(m["state"] for m in state.values() if m["model_name"] == "IntSliderModel")
    assert slider["description_tooltip"] == slider["tooltip"] == "layer"
    assert any(m["state"].get("border") == "1px solid red" for m in state.values())
    again = copy.deepcopy(nb)
    T.widget_state_for_both(again)
    assert again == nb


def test_a_state_saved_by_ipywidgets_7_gains_8s_names():
    seven = {"model_name": "TabModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "1.5.0",
             "state": {"_model_module_version": "1.5.0", "_view_module": "@jupyter-widgets/controls",
                       "_view_module_version": "1.5.0", "_titles": {"1": "second"}, "children": ["a", "b"]}}
    layout = {"model_name": "LayoutModel", "model_module": "@jupyter-widgets/base", "model_module_version": "1.2.0",
              "state": {"border": "2px dotted", "_view_module": "@jupyter-widgets/base"}}
    nb = {"metadata": {"widgets": {STATE_MIME: {"state": {"t": seven, "l": layout}}}}}
    T.widget_state_for_both(nb)
    assert seven["state"]["titles"] == ["", "second"]
    assert seven["model_module_version"] == seven["state"]["_view_module_version"] == "1.5.0 || 2.0.0"
    assert layout["state"]["border_left"] == "2px dotted" and layout["model_module_version"] == "1.2.0 || 2.0.0"


@pytest.mark.parametrize("model, message", [("StackModel", "only one of ipywidgets 7 and 8"),
                                            ("FileUploadModel", "different shapes")])
def test_a_widget_no_state_can_serve_to_both_is_refused(model, message):
    state = {"x": {"model_name": model, "model_module": "@jupyter-widgets/controls",
                   "model_module_version": "2.0.0", "state": {}}}
    with pytest.raises(T.WidgetStateError, match=message):
        T.widget_state_for_both({"metadata": {"widgets": {STATE_MIME: {"state": state}}}})


def test_ch14_stored_state_resolves_and_has_both_majors_attribute_names():
    state = json.loads(CH14.read_text())["metadata"]["widgets"][STATE_MIME]["state"]
    assert drawing_problems(state) == [], "run: python book/_scripts/sync_notebooks.py book/ch14_inside_setr.ipynb"
