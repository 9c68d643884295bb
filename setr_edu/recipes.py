"""Training recipes: one flat dataclass per run, the paper's settings by name, and ``key=value`` overrides.

    >>> r = get_recipe("ade20k_pup", ["max_iters=1000", "amp=bf16"])
    >>> r.crop_size, r.batch_size, r.lr, r.head_lr_mult, r.max_iters, r.amp
    (512, 16, 0.001, 10.0, 1000, 'bf16')

This file is the look-up (:func:`get_recipe`: a name or a recipe file); the :class:`Recipe` dataclass and the
``key=value`` overrides are in ``setr_edu/recipe_schema.py``, re-exported here. The named recipes themselves
are in ``setr_edu/named_recipes.py`` (re-exported here): the paper's (paper §4 "Implementation details", following the **official configs** ``configs/SETR/*.py`` of
github.com/fudan-zvg/SETR where they differ from the paper's text; each such recipe says so in ``notes``), the
-DeiT rows, the synthetic task's, and the ``*_colab`` cuts of the paper's runs to one Colab session
(:func:`colab_recipe`).

``batch_size`` is always the *global* batch (the paper's 16 or 8): a run splits it as
``batch_size = world_size x grad_accum_steps x per-device batch``, so one 16 GB GPU trains the paper's recipe with
``grad_accum_steps=8`` (and ``grad_checkpointing=true``; the GPU recipes' ``amp=auto`` picks bf16 or fp16) and sees
the same batches as 8 V100s.

A recipe file (``.json``, ``.yaml``/``.yml`` or ``.py`` defining ``RECIPE = {...}`` or ``RECIPE = Recipe(...)``)
holds any subset of the fields, plus an optional ``"base": "<named recipe>"`` to start from. Recipe files, and the
recipes stored in checkpoints, are read as data: a ``.py`` file is parsed, never run, and ``base`` names a named
recipe, never a file.
"""
from __future__ import annotations

import ast
import difflib
import json
import typing
from pathlib import Path

from .recipe_schema import (  # noqa: F401  (re-exported: the documented setr_edu.recipes names)
    CHOICES,
    DATASETS,
    Recipe,
    apply_overrides,
    field_names,
)
from .named_recipes import (  # noqa: F401  (re-exported: from setr_edu.recipes import paper_recipe)
    NAMED_RECIPES,
    colab_recipe,
    official_ms_ratios,
    paper_recipe,
    synthetic_recipe,
)


def list_recipes() -> list[str]:
    """The names of the named recipes, sorted."""
    return sorted(NAMED_RECIPES)


def load_recipe_file(path: str | Path) -> Recipe:
    """Read a recipe from ``.json``, ``.yaml``/``.yml`` or ``.py`` (a module defining ``RECIPE``)."""
    path = Path(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
    elif path.suffix in (".yaml", ".yml"):
        import yaml  # pyyaml is in requirements.txt; imported lazily so the library does not need it

        data = yaml.safe_load(path.read_text()) or {}
    elif path.suffix == ".py":
        data = _literal_recipe(path)
    else:
        raise ValueError(f"recipe file {path} must end in .json, .yaml, .yml or .py")
    if isinstance(data, Recipe):
        return data.validate()
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of recipe keys, got {type(data).__name__}")
    data = dict(data)
    base = named_recipe(data.pop("base")) if "base" in data else None
    return Recipe.from_dict(data, base)


def named_recipe(name) -> Recipe:
    """The named recipe ``name`` (what ``"base"`` in a recipe file or a stored recipe may name: never a file)."""
    if not isinstance(name, str) or name not in NAMED_RECIPES:
        close = difflib.get_close_matches(str(name), list_recipes(), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"'base' must name a named recipe (python -m setr_edu recipes), not {str(name)[:80]!r}; "
                         f"files are never loaded from inside a recipe.{hint}")
    return NAMED_RECIPES[name]()


def _literal_recipe(path: Path) -> dict:
    """``RECIPE = {...}``, ``dict(...)`` or ``Recipe(...)`` of a ``.py`` recipe file, read as data with
    ``ast.literal_eval``: nothing in the file is run, so it may hold only literal values."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"{path}: not valid Python ({err.msg}, line {err.lineno})") from None
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["RECIPE"]:
            found.append(node.value)
        elif not isinstance(node, (ast.Import, ast.ImportFrom)) and not (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # imports, docstrings
            raise ValueError(f"{path}, line {node.lineno}: a recipe file may hold only RECIPE = {{...}} (and imports, "
                             f"comments); it is read as data, never run")
    if not found:
        raise ValueError(f"{path} must define RECIPE = {{...}}, dict(...) or Recipe(...)")
    value = found[-1]
    try:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("dict", "Recipe") \
                and not value.args and all(kw.arg for kw in value.keywords):
            return {kw.arg: ast.literal_eval(kw.value) for kw in value.keywords}
        return ast.literal_eval(value)
    except ValueError:
        raise ValueError(f"{path}: RECIPE must hold literal values only (numbers, strings, lists, tuples, dicts, "
                         f"True/False/None; line {value.lineno}); recipe files are read as data, never run") from None


def get_recipe(name_or_path: str | Recipe, overrides: typing.Iterable[str] = ()) -> Recipe:
    """A named recipe (see ``list_recipes``) or a recipe file, with ``key=value`` overrides applied."""
    if isinstance(name_or_path, Recipe):
        recipe = name_or_path
    elif name_or_path in NAMED_RECIPES:
        recipe = NAMED_RECIPES[name_or_path]()
    elif Path(name_or_path).suffix in (".json", ".yaml", ".yml", ".py"):
        if not Path(name_or_path).is_file():
            raise FileNotFoundError(f"recipe file {name_or_path} does not exist")
        recipe = load_recipe_file(name_or_path)
    else:
        close = difflib.get_close_matches(str(name_or_path), list_recipes(), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown recipe {name_or_path!r}.{hint} Named recipes: {', '.join(list_recipes())}; "
                       f"or pass a .json/.yaml/.py file")
    overrides = list(overrides)
    return apply_overrides(recipe, overrides) if overrides else recipe
