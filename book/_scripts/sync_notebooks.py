"""Write the Colab badge and the setup cell of every book notebook from ``_config.yml``.

The repository address lives once, in ``_config.yml`` (``repository.url`` and ``repository.branch``). This script
rewrites, in each notebook under ``book/``:

* the "Open in Colab" badge in the first markdown cell (inserted under the title if missing);
* the first code cell, the setup cell (inserted after the first markdown cell if missing). On Colab only, it
  installs ``setr_edu`` from the repository (never reinstalling torch or numpy), enables the custom widget manager,
  then seeds everything and reads the run profile.

Usage: ``python book/_scripts/sync_notebooks.py [NOTEBOOK ...]`` (default: every notebook under book/).
``--check`` exits 1 if any notebook is out of date (used by the tests).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
SETUP_MARKER = "# setr-edu setup"
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repository() -> tuple[str, str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_url(nb_path: Path) -> str:
    url, branch = repository()
    owner_repo = url.split("github.com/")[-1]
    rel = nb_path.resolve().relative_to(ROOT).as_posix()
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{rel}"


def badge(nb_path: Path) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(nb_path)})"


def setup_source(extra: str = "") -> str:
    url, branch = repository()
    lines = [
        f"{SETUP_MARKER} (generated from _config.yml by book/_scripts/sync_notebooks.py; edit it there)",
        "import sys",
        'if "google.colab" in sys.modules:  # on Colab only: install setr_edu, keep Colab\'s own torch and numpy',
        "    import subprocess",
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "setr-edu @ git+{url}@{branch}"], check=True)',
        "    from google.colab import output",
        "    output.enable_custom_widget_manager()",
        "import setr_edu",
        "",
        "setr_edu.seed_everything(0)",
        "P = setr_edu.get_profile()  # SETR_EDU_PROFILE = ci | cpu | gpu: changes the scale, never the code",
        'print(f"profile: {P.name}")',
    ]
    return "\n".join(lines)


def sync(nb_path: Path) -> bool:
    """Update one notebook in place; return True if it changed."""
    nb = nbformat.read(nb_path, as_version=4)
    before = nbformat.writes(nb)
    md_idx = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    if md_idx is None:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {nb_path.stem}"))
        md_idx = 0
    md = nb.cells[md_idx]
    if BADGE_RE.search(md.source):
        md.source = BADGE_RE.sub(badge(nb_path), md.source)
    else:
        lines = md.source.split("\n")
        lines.insert(1, "\n" + badge(nb_path) + "\n")
        md.source = "\n".join(lines)
    code_idx = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
    if code_idx is not None and nb.cells[code_idx].source.startswith(SETUP_MARKER):
        if nb.cells[code_idx].source != setup_source():
            nb.cells[code_idx].source = setup_source()
    else:
        nb.cells.insert(md_idx + 1, nbformat.v4.new_code_cell(setup_source()))
    after = nbformat.writes(nb)
    if after != before:
        nbformat.write(nb, nb_path)
        return True
    return False


def book_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb")
                  if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or book_notebooks()
    stale = []
    for p in paths:
        if args.check:
            nb = nbformat.read(p, as_version=4)
            first_md = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
            first_code = next((c.source for c in nb.cells if c.cell_type == "code"), "")
            if badge(p) not in first_md or first_code != setup_source():
                stale.append(p)
        elif sync(p):
            print(f"updated {p.relative_to(ROOT)}")
    if stale:
        print("out of date (run book/_scripts/sync_notebooks.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
