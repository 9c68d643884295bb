"""The API page (book/api.md) documents every ``setr_edu`` name that a chapter, an assignment or the README uses.

The uses are read from the sources: dotted names (``setr_edu.engine.inference.evaluate``, in code or prose),
``from setr_edu.x import a, b as c`` and, where such an import brings in a module (``from setr_edu import checks``),
that module's attributes as the file uses them (``checks.check_attention``). The page's entries are read from its
autodoc directives (``.. autofunction:: NAME``, ``.. autoclass:: NAME`` with ``:members:``, ``.. automodule::``,
``.. py:data:: NAME`` with ``:module:``). A use and an entry match when they are the same Python object, so a name
re-exported by a package (``setr_edu.data.train_pipeline``) is covered by its entry under the defining module.
When the book is built (CI builds it before pytest), the built page's ``objects.inv`` and HTML are checked too:
an autodoc entry that rendered nothing (a listed member without a docstring) and every command-line option.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import posixpath
import re
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "book" / "api.md"
SITE = ROOT / "_build" / "html"


def sources() -> list[Path]:
    book = ROOT / "book"
    files = sorted(book.glob("*.ipynb")) + sorted((book / "assignments").glob("*.ipynb"))
    files += [ROOT / "README.md"] + sorted(p for p in book.glob("*.md") if p != API)
    return files + sorted((book / "assignments").glob("*.md"))


def text_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells)
    return path.read_text(encoding="utf-8")


def _member(owner, name: str):
    """``owner.name`` as stored (``getattr_static`` for classes: a classmethod is one object, not a new bound one)."""
    if inspect.isclass(owner):
        return inspect.getattr_static(owner, name)
    try:
        return getattr(owner, name)
    except AttributeError:
        return importlib.import_module(f"{owner.__name__}.{name}")


def resolve(dotted: str) -> tuple[object, str] | None:
    """The object a used name refers to, and the part of the name that is setr_edu's: ``setr_edu.X.items`` stops at
    ``X`` when ``X`` is data (a dict's ``items`` is not ours); a class's attribute counts when it is a function,
    property, classmethod or staticmethod. None when the name does not exist."""
    parts = dotted.split(".")
    obj, kept = importlib.import_module(parts[0]), [parts[0]]
    for i, part in enumerate(parts[1:], 2):
        if part.startswith("_"):
            break
        if isinstance(obj, types.ModuleType):
            try:
                attr = _member(obj, part)
            except ImportError:
                return None
            if i < len(parts) and not isinstance(attr, types.ModuleType) and not hasattr(attr, parts[i]):
                try:  # a package attribute that shadows its submodule: setr_edu.data.prepare.prepare
                    attr = importlib.import_module(f"{obj.__name__}.{part}")
                except ImportError:
                    pass
            obj = attr
        elif inspect.isclass(obj):
            try:
                attr = _member(obj, part)
            except AttributeError:
                return None
            if not (inspect.isfunction(attr) or isinstance(attr, (property, classmethod, staticmethod))):
                break
            obj = attr
        else:
            break
        kept.append(part)
    return obj, ".".join(kept)


IMPORT = re.compile(r"from\s+(setr_edu[\w.]*)\s+import\s+(\([^)]*\)|[^\n]*)")
DOTTED = re.compile(r"(?<![\w.])setr_edu(?:\.\w+)+")


def used_names(text: str) -> set[str]:
    """Every ``setr_edu`` name ``text`` (a file's code and prose) uses."""
    names = set(DOTTED.findall(text))
    for m in IMPORT.finditer(text):
        for part in m.group(2).strip("()").split(","):
            part = re.sub(r"#.*", "", part).strip()
            if not part or part == "*":
                continue
            name, _, alias = part.partition(" as ")
            full = f"{m.group(1)}.{name.strip()}"
            names.add(full)
            found = resolve(full)
            if found and isinstance(found[0], types.ModuleType):  # module attributes used as alias.attr
                alias = alias.strip() or name.strip()
                for a in re.finditer(rf"(?<![\w.]){re.escape(alias)}\.([A-Za-z]\w*)", text):
                    names.add(f"{full}.{a.group(1)}")  # one that does not exist is reported as such
    return names


DIRECTIVE = re.compile(r"^\.\. (?:py:|auto)(module|function|class|exception|data|method|attribute|property)::"
                       r"\s*(\S+)\n((?:[ \t]+:[\w-]+:.*\n)*)", re.M)


def entries(page: str) -> list[tuple[str, str, list[str]]]:
    """``(kind, full name, listed members)`` of every directive on the page."""
    out = []
    for kind, name, options in DIRECTIVE.findall(page):
        opts = dict(re.findall(r":([\w-]+):\s*(.*)", options))
        if "module" in opts and kind != "module":
            name = f"{opts['module']}.{name}"
        members = [m.strip() for m in opts.get("members", "").split(",") if m.strip()]
        out.append((kind, name, members))
    return out


def documented(page: str) -> tuple[dict[int, str], list[str]]:
    """``{id(object): entry name}`` of everything the page documents, and the problems found reading it (an entry
    whose name does not resolve, an object documented twice, a listed member without a docstring)."""
    objs, problems = {}, []

    def add(obj, name):
        if id(obj) in objs:
            problems.append(f"{name} is documented twice (also as {objs[id(obj)]}): Sphinx warns, -W fails")
        objs[id(obj)] = name

    for kind, name, members in entries(page):
        found = (importlib.import_module(name), name) if kind == "module" else resolve(name)
        if found is None or found[1] != name:
            problems.append(f"the page documents {name}, which does not exist")
            continue
        add(found[0], name)
        for member in members:
            attr = inspect.getattr_static(found[0], member, None)
            if attr is None:
                problems.append(f"{name} has no member {member!r} (listed in :members:)")
                continue
            doc = getattr(attr.fget if isinstance(attr, property) else attr, "__doc__", None)
            if not (doc or "").strip():  # autodoc skips undocumented members: the entry would render nothing
                problems.append(f"{name}.{member} is listed in :members: but has no docstring, so nothing renders")
            add(attr, f"{name}.{member}")
    return objs, problems


def missing(page: str, uses: dict[str, set[str]]) -> list[str]:
    """The used names that the page lacks (or that do not exist), each with the files that use it."""
    objs, _ = documented(page)
    out = []
    for name in sorted(uses):
        found = resolve(name)
        where = ", ".join(sorted(uses[name]))
        if found is None:
            out.append(f"{name} (used in {where}) does not exist: fix the book or keep the import path working")
        elif id(found[0]) not in objs:
            out.append(f"{found[1]} (used in {where}) has no entry on book/api.md")
    return out


def book_uses() -> dict[str, set[str]]:
    uses: dict[str, set[str]] = {}
    for path in sources():
        for name in used_names(text_of(path)):
            uses.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return uses


def test_every_name_the_book_uses_has_an_entry():
    uses = book_uses()
    assert len(uses) > 100, f"only {len(uses)} names found: is the scan still reading the notebooks?"
    problems = missing(API.read_text(encoding="utf-8"), uses)
    assert not problems, "\n".join(problems)


def test_the_page_documents_real_objects_once_and_every_listed_member_renders():
    objs, problems = documented(API.read_text(encoding="utf-8"))
    assert len(objs) > 150
    assert not problems, "\n".join(problems)


def test_a_planted_gap_is_caught():
    page = API.read_text(encoding="utf-8")
    assert ".. autofunction:: setr_edu.engine.inference.evaluate\n" in page
    uses = {"setr_edu.engine.evaluate": {"ch.ipynb"}, "setr_edu.engine.inference.slide_inference": {"ch.ipynb"}}
    assert missing(page, uses) == []  # a re-export is covered by its entry under the defining module
    gap = page.replace(".. autofunction:: setr_edu.engine.inference.evaluate\n", "")
    assert missing(gap, uses) == ["setr_edu.engine.evaluate (used in ch.ipynb) has no entry on book/api.md"]
    assert "does not exist" in missing(page, {"setr_edu.engine.no_such_name": {"x.md"}})[0]
    # a member autodoc would skip (no docstring) and a name documented twice
    _, problems = documented(".. autoclass:: setr_edu.MLP\n   :members: forward\n\n"
                             ".. autofunction:: setr_edu.build_setr\n.. autofunction:: setr_edu.model.setr.build_setr\n")
    assert any("MLP.forward is listed" in p for p in problems) and any("twice" in p for p in problems)


def test_the_scan_reads_every_form_of_use():
    text = ("import setr_edu\nm = setr_edu.build_setr()\nfrom setr_edu.engine.inference import (\n    evaluate,\n"
            "    predict as run,  # comment\n)\nfrom setr_edu import checks\nchecks.check_attention(X)\n"
            "Prose: see `setr_edu.ENCODER_PRESETS.items()` and setr_edu.ViTEncoder.to_map.\n")
    names = used_names(text)
    assert {"setr_edu.build_setr", "setr_edu.engine.inference.evaluate", "setr_edu.engine.inference.predict",
            "setr_edu.checks", "setr_edu.checks.check_attention", "setr_edu.ViTEncoder.to_map"} <= names
    assert resolve("setr_edu.ENCODER_PRESETS.items")[1] == "setr_edu.ENCODER_PRESETS"  # a dict's method is not ours
    assert resolve("setr_edu.ViTEncoder.to_map")[1] == "setr_edu.ViTEncoder.to_map"


# --- the command line ------------------------------------------------------------------------------------------
def grade_parser() -> argparse.ArgumentParser:
    """The parser ``python -m setr_edu grade`` builds inside its ``main`` (caught before it parses anything)."""
    from setr_edu.checks import grade

    class Caught(Exception):
        pass

    def catch(self, *args, **kwargs):
        raise Caught(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        grade.main([])
    except Caught as e:
        return e.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError("setr_edu.checks.grade.main no longer calls parse_args")


def options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string, positional name and subcommand of ``parser`` and its subparsers."""
    out = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out |= {name} | options(sub)
        elif action.option_strings:
            out |= {o for o in action.option_strings if o not in ("-h", "--help")}
        else:
            out.add(action.metavar if isinstance(action.metavar, str) else action.dest)
    return out


def test_grade_options_are_listed_on_the_page():
    page = API.read_text(encoding="utf-8")
    absent = [o for o in sorted(options(grade_parser())) if f"`{o}" not in page]
    assert not absent, f"python -m setr_edu grade options missing from book/api.md's table: {absent}"


PARSERS = {"setr_edu.cli": "python -m setr_edu", "setr_edu.perf.bench": "python -m setr_edu bench",
           "setr_edu.perf.data_bench": "python -m setr_edu bench data"}


def test_every_parser_has_an_argparse_directive():
    page = API.read_text(encoding="utf-8")
    for module, prog in PARSERS.items():
        assert f".. argparse::\n   :module: {module}\n   :func: build_parser\n   :prog: {prog}\n" in page, module


def test_replaced_help_texts_match_the_parser():
    """``--protocol``'s help is restated on the page (as reST, its ``*_MS.py`` would start emphasis): same words."""
    from setr_edu.cli import build_parser

    page = API.read_text(encoding="utf-8")
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    replaced = re.findall(r"^      (\S+) : @replace\n((?:         .*\n|\n)+)", page, re.M)
    assert len(replaced) == 2
    for option, text in replaced:
        command = page[:page.index(f"      {option} : @replace\n" + text)].rstrip().splitlines()[-1].strip()
        action = next(a for a in subparsers.choices[command]._actions if option in a.option_strings)
        words = " ".join(text.replace("``", "").split())
        assert words == f"Possible choices: {', '.join(action.choices)} {' '.join(action.help.split())}", command


# --- the built page (CI builds the book before pytest) ------------------------------------------------------
def built() -> Path:
    inv = SITE / "objects.inv"
    if not inv.exists() or inv.stat().st_mtime < API.stat().st_mtime:
        pytest.skip("the book is not built (or older than book/api.md): jupyter-book build . -W -n --keep-going")
    return inv


def test_every_entry_rendered_into_the_built_inventory():
    from sphinx.util.inventory import InventoryFile

    with built().open("rb") as f:
        inventory = InventoryFile.load(f, "", posixpath.join)
    names = {name for kind, items in inventory.items() if kind.startswith("py:") for name in items}
    expected = [name for _, name, _ in entries(API.read_text(encoding="utf-8"))]
    expected += [f"{name}.{m}" for _, name, members in entries(API.read_text(encoding="utf-8")) for m in members]
    absent = [n for n in expected if n not in names]
    assert not absent, f"entries of book/api.md that rendered nothing in the built book: {absent}"


def test_no_docstring_example_renders_as_reflowed_prose():
    """An indented block after a paragraph that does not end in ``::`` is a block quote in reST: a command example
    then renders as one reflowed paragraph with ``--`` turned into a dash."""
    built()
    html = (SITE / "book" / "api.html").read_text(encoding="utf-8")
    quotes = [re.sub(r"<[^>]+>", "", q).strip()[:80] for q in re.findall(r"<blockquote>(.*?)</blockquote>", html, re.S)]
    assert not quotes, f"docstring blocks rendered as reflowed quotes (end the paragraph before with ::): {quotes}"


def test_every_command_line_option_is_on_the_built_page():
    built()
    html = (SITE / "book" / "api.html").read_text(encoding="utf-8")
    html = re.sub(r"<[^>]+>", "", html).replace("&#8212;", "--").replace("\u2014", "--").replace("\u2013", "--")
    for module in PARSERS:
        parser = importlib.import_module(module).build_parser()
        absent = [o for o in sorted(options(parser)) if o not in html]
        assert not absent, f"{module}'s options missing from the built API page: {absent}"
