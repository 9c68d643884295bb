"""The book as its sources describe it: pages of ``_toc.yml`` in reading order, what each page must show, the
Colab address from ``_config.yml``, and building ``_build/html`` when it is older than its sources.

Part of the browser test (``tests/test_book_browser.py``); the rendered pages are checked in ``browser_check.py``.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
BUILD_COMMAND = ["jupyter-book", "build", ".", "-W", "-n", "--keep-going"]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Page:
    """One page of the book: ``docname`` as in ``_toc.yml`` (e.g. ``book/ch01_x``) and its source file."""

    docname: str
    source: Path

    @property
    def html(self) -> str:
        return f"{self.docname}.html"

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @property
    def shot_name(self) -> str:
        return self.docname.replace("/", "-") + ".png"


def toc_pages(root: Path = ROOT) -> list[Page]:
    """Pages of ``_toc.yml`` in reading order (depth first, as Sphinx orders prev/next); URLs are skipped."""
    from sphinx_external_toc.api import GlobItem, UrlItem
    from sphinx_external_toc.parsing import parse_toc_yaml

    site = parse_toc_yaml(root / "_toc.yml")
    order: list[str] = []

    def visit(docname: str) -> None:
        if docname in order:
            return
        order.append(docname)
        for tree in site[docname].subtrees:
            for item in tree.items:
                if isinstance(item, UrlItem):
                    continue
                if isinstance(item, GlobItem):
                    for name in sorted(_expand_glob(root, str(item))):
                        visit(name)
                else:
                    visit(str(item))

    visit(site.root.docname)
    return [Page(name, _source_of(root, name)) for name in order]


def _expand_glob(root: Path, pattern: str) -> list[str]:
    return [p.relative_to(root).with_suffix("").as_posix() for suffix in SOURCE_SUFFIXES
            for p in root.glob(pattern + suffix)]


def _source_of(root: Path, docname: str) -> Path:
    for suffix in SOURCE_SUFFIXES:
        if (root / (docname + suffix)).is_file():
            return root / (docname + suffix)
    raise FileNotFoundError(f"_toc.yml lists {docname!r} but no {docname}{{{','.join(SOURCE_SUFFIXES)}}} exists")


def colab_url(page: Page, root: Path = ROOT) -> str:
    """The address the Colab launch button must have, derived from ``_config.yml`` like the theme does."""
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    repo, launch = cfg.get("repository", {}), cfg.get("launch_buttons", {})
    owner_repo = repo["url"].rstrip("/").split("github.com/")[-1]
    base = launch.get("colab_url", "https://colab.research.google.com").rstrip("/")
    path = "/".join(p for p in (repo.get("path_to_book", "").strip("/"), page.source.relative_to(root).as_posix()) if p)
    return f"{base}/github/{owner_repo}/blob/{repo.get('branch', 'master')}/{path}"


@dataclass(frozen=True)
class SourceFacts:
    """What the source says the page must show."""

    title: str
    code_cells: int = 0            # rendered code cells (tag remove-cell drops one)
    cells_with_output: int = 0     # of those, the ones that keep at least one output
    widget_models: frozenset = frozenset()   # model ids of the saved widget state
    widget_views: frozenset = frozenset()    # model ids that outputs display


def _kept(output: dict, tags: set) -> bool:
    """MyST-NB drops a stream output whose cell has the tag remove-stdout / remove-stderr."""
    return output.get("output_type") != "stream" or f"remove-{output.get('name', 'stdout')}" not in tags


def source_facts(page: Page) -> SourceFacts:
    if not page.is_notebook:
        return SourceFacts(title=_first_heading(page.source.read_text()))
    nb = nbformat.read(page.source, as_version=4)
    first_md = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    code, with_out, views = 0, 0, set()
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type != "code" or "remove-cell" in tags:
            continue
        code += 1
        if any(_kept(o, tags) for o in cell.get("outputs", [])) and "remove-output" not in tags:
            with_out += 1
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                views.add(view["model_id"])
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return SourceFacts(_first_heading(first_md), code, with_out, frozenset(state), frozenset(views))


def _first_heading(markdown: str) -> str:
    m = re.search(r"^#\s+(.+?)\s*$", markdown, re.M)
    return m.group(1) if m else ""


def words(text: str) -> list[str]:
    """Compare titles by their words: markdown marks, code ticks and the heading's '#' link do not count."""
    return re.findall(r"[^\W_]+", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).lower())


def stale_reason(root: Path = ROOT) -> str | None:
    """Why ``_build/html`` must be (re)built, or None when it is up to date.

    Each page must be newer than its source; ``_config.yml``, ``_toc.yml``, ``book/figures`` and the site's own
    ``_static`` (CSS) must be older than the last build (the newest page). ``_build/html/index.html`` is no clock: Jupyter Book writes it only once.
    """
    site = root / "_build" / "html"
    if not (site / "index.html").is_file():
        return "_build/html/index.html does not exist"
    pages = toc_pages(root)
    for page in pages:
        if not (site / page.html).is_file():
            return f"_build/html/{page.html} does not exist"
        if page.source.stat().st_mtime > (site / page.html).stat().st_mtime:
            return f"{page.source.relative_to(root)} is newer than its page"
    last_build = max((site / page.html).stat().st_mtime for page in pages)
    inputs = [root / "_config.yml", root / "_toc.yml"]
    inputs += [p for d in ("book/figures", "_static") for p in (root / d).rglob("*") if p.is_file()]
    newer = [p for p in inputs if p.stat().st_mtime > last_build]
    return f"{newer[0].relative_to(root)} is newer than the built book" if newer else None


def build_book(root: Path = ROOT, timeout: int = 1200) -> None:
    proc = subprocess.run(BUILD_COMMAND, cwd=root, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(BUILD_COMMAND)}` failed (exit {proc.returncode}); fix the build first:\n"
                           + (proc.stdout + proc.stderr)[-4000:])
