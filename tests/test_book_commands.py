"""Every shell command the book quotes (`python -m setr_edu ...`, `torchrun ... -m setr_edu ...`) parses.

Commands are collected from all notebooks and Markdown files under book/ and from README.md: fenced code blocks
and inline code in Markdown; shell lines (``!...``), string literals and the printed text outputs in code cells
(a template such as ``f"... --root {DATA}"`` is checked where the reader sees it: in the cell's output). Each one goes through the
parser that would read it (the CLI's, or that of the module it delegates to: ``bench``, ``bench data``,
``grade``); commands that name a recipe must name an existing one with valid ``key=value`` overrides. A bare
``python -m setr_edu COMMAND`` (a mention in prose) only has to name an existing command. Usage lines may mark
optional flags as ``[--flag]``; both variants must parse.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
START = re.compile(r"(python -m setr_edu(?=\s|$)|torchrun\s)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _sources() -> list[tuple[str, str, str]]:
    """``(where, kind, text)`` for every Markdown file, notebook cell and README.md."""
    files = sorted(p for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb")
                   and not any(part.startswith((".", "_")) for part in p.relative_to(ROOT).parts))
    out = []
    for path in files + [ROOT / "README.md"]:
        rel = path.relative_to(ROOT)
        if path.suffix == ".md":
            out.append((str(rel), "markdown", path.read_text()))
            continue
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            out.append((f"{rel} cell {i}", cell["cell_type"], "".join(cell["source"])))
            for o in cell.get("outputs", []):
                text = o.get("text") or o.get("data", {}).get("text/plain", "")
                out.append((f"{rel} cell {i} output", "output", "".join(text)))
    return out


def _markdown_candidates(text: str) -> list[str]:
    candidates, fenced, lines = [], False, text.splitlines()
    logical = []
    for line in lines:  # join backslash continuations
        if logical and logical[-1].endswith("\\"):
            logical[-1] = logical[-1][:-1] + " " + line.strip()
        else:
            logical.append(line)
    for line in logical:
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):  # code block lines
            if not line.strip().startswith(":prog:"):  # a Sphinx directive's option naming the program
                candidates.append(line.strip())
        else:
            candidates += re.findall(r"`([^`]+)`", line)
    return candidates


def _code_candidates(text: str) -> list[str]:
    candidates = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("!"):
            candidates.append(stripped[1:])
        candidates += re.findall(r"""["']([^"'\n]*python -m setr_edu[^"'\n]*)["']""", line)
    return [c.replace("\\n", "") for c in candidates if "{" not in c]  # templates: see their outputs


def book_commands() -> list[tuple[str, str]]:
    """``(where, command)`` for every quoted command."""
    found = []
    for where, kind, text in _sources():
        if kind == "output":
            candidates = [line.strip().lstrip("!$ ") for line in text.splitlines()]
        else:
            candidates = _markdown_candidates(text) if kind in ("markdown", "raw") else _code_candidates(text)
        for c in candidates:
            m = START.search(c)
            if m:
                found.append((where, c[m.start():].strip()))
    return found


def _variants(command: str) -> list[str]:
    """``[--flag]`` marks an optional flag in a usage line: the command with and without it."""
    optional = re.findall(r"\[(-[^\]]*)\]", command)
    out = []
    for keep in itertools.product((True, False), repeat=len(optional)):
        c = command
        for flag, k in zip(optional, keep):
            c = c.replace(f"[{flag}]", flag if k else "", 1)
        out.append(c)
    return out


class _Parsed(Exception):
    pass


def parse_command(command: str) -> None:
    """Raise (``SystemExit`` from argparse, or a recipe error) unless ``command`` parses."""
    from setr_edu import cli

    argv = shlex.split(command, comments=True)
    if argv[0] == "torchrun":
        if "-m" not in argv or argv[argv.index("-m") + 1] != "setr_edu":
            raise ValueError(f"torchrun command does not run `-m setr_edu`: {command}")
        argv = argv[argv.index("-m") + 2:]
    else:
        argv = argv[3:]  # python -m setr_edu
    if not argv:
        raise ValueError("no command after `python -m setr_edu`")
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    if argv[0] not in commands:
        raise ValueError(f"unknown command {argv[0]!r}; the CLI has {sorted(commands)}")
    if len(argv) == 1 and argv[0] != "recipes":  # a mention of the command in prose
        return
    if argv[0] == "bench":
        from setr_edu.perf import bench, data_bench

        if argv[1] == "data":
            data_bench.build_parser().parse_args(argv[2:])
        else:
            bench.build_parser().parse_args(argv[1:])
        return
    if argv[0] == "grade":  # grade builds its parser inside main(): stop right after parsing
        from setr_edu.checks import grade

        real = argparse.ArgumentParser.parse_args

        def parse_then_stop(self, args=None, namespace=None):
            real(self, args, namespace)
            raise _Parsed

        with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop), \
                pytest.raises(_Parsed):
            grade.main(argv[1:])
        return
    args = cli._parse(cli.build_parser(), argv)
    config = getattr(args, "config", None)
    if config and not re.search(r"[/.]", config):  # a named recipe (not a file): it exists, overrides are valid
        from setr_edu.recipes import get_recipe

        get_recipe(config, list(getattr(args, "overrides", None) or []))


COMMANDS = book_commands()


def test_the_book_quotes_commands():
    """The collector finds the commands the book is known to quote (so the test below cannot pass empty)."""
    where = {w.split(" cell")[0] for w, _ in COMMANDS}
    assert {"README.md", "book/ch12_gpu_training.ipynb", "book/ch15_performance.ipynb"} <= where
    assert any(c.startswith("torchrun") for _, c in COMMANDS) and len(COMMANDS) >= 15


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w}: {c[:60]}" for w, c in COMMANDS])
def test_book_command_parses(where, command, capsys):
    for variant in _variants(command):
        try:
            parse_command(variant)
        except SystemExit as e:
            if e.code:  # argparse's error (--help would exit 0)
                pytest.fail(f"{where}: `{variant}` does not parse: {capsys.readouterr().err.strip()}")
        except (ValueError, KeyError, TypeError) as e:
            pytest.fail(f"{where}: `{variant}`: {e}")


@pytest.mark.parametrize("command,ok", [
    ("python -m setr_edu train --config synthetic_cpu max_iters=200", True),
    ("python -m setr_edu train synthetic_cpu max_iters=200", False),  # --config is required
    ("python -m setr_edu train --config synthetic_cpu max_itters=200", False),  # no such recipe key
    ("python -m setr_edu train --config no_such_recipe", False),
    ("torchrun --nproc_per_node=8 -m setr_edu train --config ade20k_pup --work-dir runs/x", True),
    ("python -m setr_edu data ade20k --root data/ade20k", True),
    ("python -m setr_edu data coco --root data/coco", False),
    ("python -m setr_edu bench data --workers 0 2 --seconds 5", True),
    ("python -m setr_edu bench setr ... --batch-size B", False),
    ("python -m setr_edu grade submissions/ --out scores.csv", True),
    ("python -m setr_edu grade --out scores.csv", False),
    ("python -m setr_edu data", True),  # a mention in prose
    ("python -m setr_edu fly", False),
])
def test_the_checker_itself(command, ok):
    try:
        parse_command(command)
        parsed = True
    except (SystemExit, ValueError, KeyError, TypeError):
        parsed = False
    assert parsed == ok


def test_collectors_find_inline_fenced_shell_and_string_commands():
    md = "Run `python -m setr_edu recipes` first.\n```bash\npython -m setr_edu train \\\n  --config x\n```\n"
    assert _markdown_candidates(md) == ["python -m setr_edu recipes", "python -m setr_edu train  --config x"]
    code = "!python -m setr_edu data ade20k --root d\nprint('python -m setr_edu bench setr --amp bf16\\n')\n"
    assert _code_candidates(code) == ["python -m setr_edu data ade20k --root d",
                                      "python -m setr_edu bench setr --amp bf16"]
    assert _variants("python -m setr_edu eval --checkpoint c.pt [--ms]") == [
        "python -m setr_edu eval --checkpoint c.pt --ms", "python -m setr_edu eval --checkpoint c.pt "]
