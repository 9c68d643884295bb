"""Idempotent rewrites that make a book notebook read well in Jupyter, Colab, GitHub and the built book.

``sync_notebooks.py`` applies :func:`apply` to every notebook after writing its badge and setup cell; running it
again changes nothing. Each transform edits an ``nbformat`` notebook in place:

* :func:`nbval_tags`: ``# NBVAL_CHECK_OUTPUT`` (and nbval's other comment markers) become nbval's cell tags
  (``nbval-check-output``...), so the pages show no test markers and nbval checks exactly the same cells.
* :func:`exercises`: sphinx-exercise's ``{exercise}`` / ``{solution}`` directives, which only the built book
  renders, become plain markdown: **Exercise N.k.** (N the chapter number from the file name, k the order in the
  chapter; existing numbers are kept in order) and the solution inside a collapsed ``<details>`` block, with blank
  lines around its content so that code blocks and math render inside it. ``{ref}`` links to an exercise become
  the text "Exercise N.k". The directive's label survives as an invisible ``<a id="...">`` anchor.
* :func:`hide_setup`: the setup cell is tagged ``remove-cell``: it runs in every notebook, the website hides it.
* :func:`colab_gpu`: chapters in :data:`GPU_CHAPTERS` carry Colab's notebook metadata for a GPU runtime, so
  "Open in Colab" starts one; other notebooks carry none.
* :func:`widget_state_for_both`: the saved widget state (``metadata.widgets``) is rewritten so that ipywidgets 7
  and 8 front ends both draw it: module versions become a semver range both match, and each attribute renamed
  between 7 and 8 is stored under both names. ``execute_notebooks.py`` applies it again after execution.
"""
from __future__ import annotations

import re
from pathlib import Path

# Chapters that need a GPU to do what they teach (GPU training recipes; GPU benchmarks; T-Large released weights
# evaluated on ADE20K).
GPU_CHAPTERS = ("ch12_gpu_training", "ch15_performance", "ch16_released_weights")
COLAB_GPU = {"accelerator": "GPU", "colab": {"gpuType": "T4"}}

# nbval's comment markers and the tag that replaces each; "kind" is the option it sets (one per kind and cell).
NBVAL_MARKERS = {"NBVAL_CHECK_OUTPUT": "nbval-check-output", "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
                 "PYTEST_VALIDATE_IGNORE_OUTPUT": "nbval-ignore-output",
                 "NBVAL_RAISES_EXCEPTION": "nbval-raises-exception", "NBVAL_SKIP": "nbval-skip"}
NBVAL_KIND = {"nbval-check-output": "check", "nbval-ignore-output": "check", "pytest-validate-ignore-output": "check",
              "nbval-raises-exception": "raises", "raises-exception": "raises", "nbval-skip": "skip"}

DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})\{(?P<kind>exercise|solution)\}[ \t]*(?P<arg>\S*)[ \t]*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
EXERCISE = re.compile(r'^(?:<a id="(?P<label>[^"]+)"></a>)?\*\*Exercise (?P<n>\d+)\.(?P<k>\d+)\.\*\*', re.M)
REF = re.compile(r"\{ref\}`(?:[^`<]*<(?P<l1>[^`>]+)>|(?P<l2>[^`<]+))`")
BLOCK_START = re.compile(r"^(\s{4}|```|~~~|\$\$|[-*+] |\d+[.)] |#|>|\||<)")  # not a paragraph: no lead-in there


class ExerciseError(ValueError):
    pass


def tags(cell) -> list:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


# --- nbval --------------------------------------------------------------------------------------------------------
def nbval_tags(nb) -> None:
    """Replace nbval comment markers (a line ``# NBVAL_...``) by the equivalent cell tags."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines, kept = cell.source.split("\n"), []
        for line in lines:
            marker = line.strip().lstrip("#").strip() if line.strip().startswith("#") else None
            if marker in NBVAL_MARKERS:
                tag = NBVAL_MARKERS[marker]
                cell_tags = tags(cell)
                # a comment overrides a tag of the same kind in nbval: keep only the comment's
                cell_tags[:] = [t for t in cell_tags if NBVAL_KIND.get(t) != NBVAL_KIND[tag]] + [tag]
            else:
                kept.append(line)
        if len(kept) != len(lines):
            cell.source = "\n".join(kept)


# --- exercises ----------------------------------------------------------------------------------------------------
def chapter_number(nb_path: Path) -> int | None:
    m = re.match(r"ch(\d+)_", Path(nb_path).name)
    return int(m.group(1)) if m else None


def read_directive(lines: list[str], i: int, where: str) -> tuple[str, str, dict, list[str], int]:
    """Parse the directive opening at ``lines[i]``: ``(kind, argument, options, body, index after it)``."""
    m = DIRECTIVE.match(lines[i])
    fence = m.group("fence")
    closing = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    j, options = i + 1, {}
    while j < len(lines) and OPTION.match(lines[j]):
        options[OPTION.match(lines[j]).group("key")] = OPTION.match(lines[j]).group("value").strip()
        j += 1
    end = next((e for e in range(j, len(lines)) if closing.match(lines[e])), None)
    if end is None:
        raise ExerciseError(f"{where}: the {{{m.group('kind')}}} opened by {fence} is never closed")
    body = lines[j:end]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return m.group("kind"), m.group("arg"), options, body, end + 1


def exercise_markdown(number: str, label: str | None, body: list[str]) -> list[str]:
    lead = (f'<a id="{label}"></a>' if label else "") + f"**Exercise {number}.**"
    if body and not BLOCK_START.match(body[0]):
        return [f"{lead} {body[0]}", *body[1:]]
    return [lead, "", *body]


def solution_markdown(body: list[str]) -> list[str]:
    return ["<details>", "<summary>Solution</summary>", "", *body, "", "</details>"]


def exercises(nb, nb_path: Path, other_labels: dict[str, str] | None = None) -> dict[str, str]:
    """Convert exercise/solution directives and renumber exercises; return ``{label: "N.k"}`` of this notebook.

    ``other_labels`` resolves ``{ref}`` links to exercises of other chapters."""
    chapter, k, labels = chapter_number(nb_path), 0, {}
    for ci, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        lines, out, i = cell.source.split("\n"), [], 0
        while i < len(lines):
            line, where = lines[i], f"{Path(nb_path).name}, cell {ci}"
            if DIRECTIVE.match(line) or EXERCISE.match(line):
                if chapter is None:
                    raise ExerciseError(f"{where}: exercises are numbered by chapter; name the file chNN_...")
            if DIRECTIVE.match(line):
                kind, arg, options, body, i = read_directive(lines, i, where)
                if kind == "exercise":
                    k += 1
                    label = options.get("label")
                    if label:
                        labels[label] = f"{chapter}.{k}"
                    out += exercise_markdown(f"{chapter}.{k}", label, body)
                else:
                    out += solution_markdown(body)
                continue
            m = EXERCISE.match(line)
            if m:
                k += 1
                if m.group("label"):
                    labels[m.group("label")] = f"{chapter}.{k}"
                line = EXERCISE.sub(lambda m: (f'<a id="{m.group("label")}"></a>' if m.group("label") else "")
                                    + f"**Exercise {chapter}.{k}.**", line, count=1)
            out.append(line)
            i += 1
        source = "\n".join(out)
        if source != cell.source:
            cell.source = source
    known = {**(other_labels or {}), **labels}
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "{ref}" in cell.source:
            cell.source = REF.sub(lambda m: f"Exercise {known[m.group('l1') or m.group('l2')]}"
                                  if (m.group("l1") or m.group("l2")) in known else m.group(0), cell.source)
    return labels


def exercise_labels(nb, nb_path: Path) -> dict[str, str]:
    """``{label: "N.k"}`` of a notebook's exercises, converted or not (the notebook is not changed)."""
    import copy

    return exercises(copy.deepcopy(nb), nb_path)


# --- setup cell and Colab -----------------------------------------------------------------------------------------
def hide_setup(cell) -> None:
    """The setup cell runs in every notebook; the website does not show it."""
    if "remove-cell" not in tags(cell):
        tags(cell).append("remove-cell")


def colab_gpu(nb, nb_path: Path) -> None:
    """Colab opens a notebook whose metadata says ``accelerator: GPU`` on a GPU runtime."""
    if Path(nb_path).stem in GPU_CHAPTERS:
        nb.metadata["accelerator"] = COLAB_GPU["accelerator"]
        nb.metadata.setdefault("colab", {}).update(COLAB_GPU["colab"])
    else:
        nb.metadata.pop("accelerator", None)
        colab = nb.metadata.get("colab", {})
        colab.pop("gpuType", None)
        if "colab" in nb.metadata and not colab:
            del nb.metadata["colab"]


# --- saved widget state -------------------------------------------------------------------------------------------
# A notebook's saved widget state names, for every model, a JavaScript module and a version. The front ends resolve
# them differently (public sources, jupyter-widgets/ipywidgets):
# * JupyterLab 3 / ipywidgets 7.7 (jupyterlab_widgets/src/manager.ts ``loadClass`` at tag 7.7.1) and JupyterLab 4 /
#   Notebook 7 / ipywidgets 8.1 (python/jupyterlab_widgets/src/manager.ts at 8.1.8) register only their own
#   versions (7: base 1.2.0, controls 1.5.0; 8: base 2.0.0, controls 2.0.0; output 1.0.0 in both) and turn a plain
#   version ``v`` into ``^v``: a 7 front end finds no module for "2.0.0", an 8 one none for "1.5.0". A range is
#   passed to semver's ``maxSatisfying`` as it is, so "1.5.0 || 2.0.0" resolves to each front end's own module.
# * @jupyter-widgets/html-manager (the static book: MyST-NB loads 1.0.6; classic notebook's widgetsnbextension)
#   ignores the version up to 1.0.11; from 1.0.12 (ipywidgets 8.1.4, PR #3932) it bundles both and picks the
#   newest one the version allows.
# The model attributes renamed in 8 (packages/schema/jupyterwidgetmodels.latest.md at 7.7.1 against
# jupyterwidgetmodels.latest.json at 8.1.8; docs/source/user_migration_guides.md): ``description_tooltip`` ->
# ``tooltip``, a Tab's or Accordion's ``_titles`` ({"0": title}) -> ``titles`` (a list), Layout ``border`` ->
# ``border_top/right/bottom/left``, Play ``_playing``/``_repeat`` -> ``playing``/``repeat``; Layout's
# ``overflow_x``/``overflow_y`` are gone (``overflow`` remains). Each front end reads its own names and ignores
# the others, so both are stored.
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VERSIONS = {"@jupyter-widgets/base": {7: "1.2.0", 8: "2.0.0"},
                   "@jupyter-widgets/controls": {7: "1.5.0", 8: "2.0.0"},
                   "@jupyter-widgets/output": {7: "1.0.0", 8: "1.0.0"}}
BOTH_MAJORS = {module: " || ".join(dict.fromkeys(v.values())) for module, v in WIDGET_VERSIONS.items()}
# ipywidgets 7.7's models with a ``description_tooltip`` (8: ``tooltip``); 7's Button and ToggleButton also have a
# ``tooltip`` of their own.
DESCRIPTION_TOOLTIP_7 = frozenset(
    "BoundedFloatTextModel BoundedIntTextModel CheckboxModel ColorPickerModel ComboboxModel DatePickerModel "
    "DropdownModel FileUploadModel FloatLogSliderModel FloatProgressModel FloatRangeSliderModel FloatSliderModel "
    "FloatTextModel HTMLMathModel HTMLModel IntProgressModel IntRangeSliderModel IntSliderModel IntTextModel "
    "LabelModel PasswordModel PlayModel RadioButtonsModel SelectModel SelectMultipleModel SelectionRangeSliderModel "
    "SelectionSliderModel TextModel TextareaModel ToggleButtonModel ToggleButtonsModel ValidModel".split())
BORDERS_8 = ("border_top", "border_right", "border_bottom", "border_left")


class WidgetStateError(ValueError):
    pass


def _both_names(name: str, state: dict) -> None:
    """Store each attribute that 7 and 8 name differently under both names (from whichever is there)."""
    if name in ("TabModel", "AccordionModel"):
        if "titles" in state and "_titles" not in state:
            state["_titles"] = {str(i): t for i, t in enumerate(state["titles"]) if t}
        elif "_titles" in state and "titles" not in state:
            n = len(state.get("children", ()))
            state["titles"] = [state["_titles"].get(str(i), "") for i in range(n)]
    if name in DESCRIPTION_TOOLTIP_7:
        if "tooltip" in state and "description_tooltip" not in state:
            state["description_tooltip"] = state["tooltip"]
        elif "description_tooltip" in state and "tooltip" not in state:
            state["tooltip"] = state["description_tooltip"]
    if name == "LayoutModel":
        if "border" not in state and any(k in state for k in BORDERS_8):
            sides = {state.get(k) for k in BORDERS_8}
            state["border"] = sides.pop() if len(sides) == 1 else None  # 7 has one border for all sides
        elif "border" in state and not any(k in state for k in BORDERS_8):
            state.update(dict.fromkeys(BORDERS_8, state["border"]))
        for k in ("overflow_x", "overflow_y"):  # gone in 8; 7's default
            state.setdefault(k, None)
    if name == "PlayModel":
        for new, old in (("playing", "_playing"), ("repeat", "_repeat")):
            if new in state and old not in state:
                state[old] = state[new]
            elif old in state and new not in state:
                state[new] = state[old]
    if name == "FileUploadModel":
        raise WidgetStateError("FileUpload's value has different shapes in ipywidgets 7 and 8 (8's migration "
                               "guide); no saved state can serve both: leave it out of saved widgets")


def widget_state_for_both(nb) -> None:
    """Rewrite ``nb``'s saved widget state so that ipywidgets 7 and 8 front ends both draw it (idempotent).

    Core models (``@jupyter-widgets/base``, ``controls``, ``output``) get a module version range that both majors'
    registered versions satisfy (:data:`BOTH_MAJORS`, e.g. ``"1.5.0 || 2.0.0"``), in ``model_module_version`` and
    in the state's ``_model_module_version`` / ``_view_module_version``; renamed attributes are stored under both
    names. A model that one major lacks (ipywidgets 8's ``StackModel``, ``HTMLStyleModel``...) cannot be drawn by
    the other: :class:`WidgetStateError`. Models of other modules are left as they are."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state")
    if not state:
        return
    from setr_edu.viz.widgets import SHARED_MODELS

    for model_id, model in state.items():
        module, attrs = model.get("model_module"), model.setdefault("state", {})
        if module not in WIDGET_VERSIONS:
            continue
        name = model.get("model_name")
        if name not in SHARED_MODELS:
            raise WidgetStateError(f"saved widget {model_id[:8]} is a {name}, which only one of ipywidgets 7 and 8 "
                                   f"defines: the other's front ends cannot draw it (use setr_edu.viz.widgets' "
                                   f"shared models)")
        version = model.get("model_module_version")
        if version not in {BOTH_MAJORS[module], *WIDGET_VERSIONS[module].values()}:
            raise WidgetStateError(f"saved widget {model_id[:8]} ({name}) has {module} version {version!r}, which "
                                   f"is neither ipywidgets 7's nor 8's")
        model["model_module_version"] = BOTH_MAJORS[module]
        for key in ("_model_module", "_view_module"):
            if attrs.get(key) in WIDGET_VERSIONS:
                attrs[key + "_version"] = BOTH_MAJORS[attrs[key]]
        _both_names(name, attrs)


def apply(nb, nb_path: Path, setup_cell=None, other_labels: dict[str, str] | None = None) -> None:
    """All transforms, in place (idempotent)."""
    nbval_tags(nb)
    exercises(nb, nb_path, other_labels)
    if setup_cell is not None:
        hide_setup(setup_cell)
    colab_gpu(nb, nb_path)
    widget_state_for_both(nb)
