"""The library reads bottom-up: each file imports only what lies in its own layer or below, and no import circles.

``LAYERS`` is the one place the order is written (the README's layout table follows it). The graph is built from
the source with ``ast`` (imports inside functions included), so a lazy import cannot hide an upward dependency.
Two plants check that the test can fail: an upward import hidden in a function, and a circle of two files.
"""
from __future__ import annotations

import ast
import shutil
from fnmatch import fnmatch
from pathlib import Path

import setr_edu

PACKAGE = Path(setr_edu.__file__).parent

# Bottom to top. A module may import modules of its own layer (without circles) and of the layers below.
LAYERS = [
    ("config", ["setr_edu.config", "setr_edu.profile", "setr_edu.recipe_schema", "setr_edu.named_recipes",
                "setr_edu.recipes"]),
    ("io", ["setr_edu.io"]),
    ("model", ["setr_edu.model", "setr_edu.model.*"]),
    ("data", ["setr_edu.data", "setr_edu.data.*"]),
    ("engine", ["setr_edu.engine", "setr_edu.engine.*"]),
    ("viz, perf, convert, checks", ["setr_edu.viz", "setr_edu.viz.*", "setr_edu.perf", "setr_edu.perf.*",
                                    "setr_edu.convert", "setr_edu.convert.*", "setr_edu.checks",
                                    "setr_edu.checks.*", "setr_edu.released"]),
    ("cli", ["setr_edu.cli", "setr_edu.cli_commands", "setr_edu.__main__", "setr_edu"]),
]


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(module, p) for p in patterns):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")


def import_graph(package: Path) -> dict[str, set[str]]:
    """``module -> {setr_edu modules it imports}``, from every ``import`` statement anywhere in each file."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for module, path in modules.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "setr_edu"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != "setr_edu":
                    continue
                for alias in node.names:  # `from . import x` imports the module x
                    deps.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[module] = {d for d in deps if d != module and d in modules}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if layer_of(dep) > layer_of(module):
                found.append(f"upward: {module} ({LAYERS[layer_of(module)][0]}) imports {dep} "
                             f"({LAYERS[layer_of(dep)][0]})")
    found += [f"circle: {' -> '.join(c)}" for c in circles(graph)]
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per import circle, found by depth-first search (a package importing its own modules through
    ``__init__`` is not a circle: the package is the parent, not a peer)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if dep == node.rsplit(".", 1)[0] and node.startswith(dep + "."):
                continue  # a module importing its own package's __init__ (e.g. `from . import x`)
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_upward_imports_and_no_circles():
    assert violations(import_graph(PACKAGE)) == []


def test_every_module_has_a_layer():
    for module in import_graph(PACKAGE):
        layer_of(module)


def _planted_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "setr_edu"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_planted_upward_import_inside_a_function_is_caught(tmp_path):
    copy = _planted_copy(tmp_path)
    with open(copy / "model" / "attention.py", "a") as f:
        f.write("\n\ndef _sneaky():\n    from ..engine.trainer import Trainer\n    return Trainer\n")
    found = violations(import_graph(copy))
    assert found[0] == "upward: setr_edu.model.attention (model) imports setr_edu.engine.trainer (engine)"
    assert all(f.startswith("circle:") for f in found[1:])  # the trainer reaches the model back: circles too


def test_a_planted_circle_is_caught(tmp_path):
    copy = _planted_copy(tmp_path)
    with open(copy / "data" / "transforms.py", "a") as f:
        f.write("\n\ndef _late():\n    from .fast_transforms import FastCompose\n    return FastCompose\n")
    found = violations(import_graph(copy))
    assert len(found) == 1 and found[0].startswith("circle:")
    assert "setr_edu.data.transforms" in found[0] and "setr_edu.data.fast_transforms" in found[0]
