"""The book's notebooks: in the toc, badge + setup cell generated from _config.yml, committed executed without
errors, no trailing ';', modest size (nbval re-runs them; this checks what nbval cannot). (What the setup cell does on
Colab and elsewhere: tests/test_colab_branches.py.)"""
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_scripts"))
from sync_notebooks import badge, setup_source  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("ch*.ipynb"))
INSTRUCTOR = sorted((ROOT / "book" / "assignments").glob("*.ipynb"))


def toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc.get("parts", []):
        for ch in part.get("chapters", []):
            files.add(ch["file"])
            files.update(s["file"] for s in ch.get("sections", []))
    return files


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    listed = toc_files()
    for nb in CHAPTERS:
        assert nb.relative_to(ROOT).with_suffix("").as_posix() in listed, f"{nb.name} is not in _toc.yml"
    for f in listed:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f"_toc.yml lists missing {f}"
    numbers = [int(re.match(r"ch(\d+)_", nb.name).group(1)) for nb in CHAPTERS]
    assert numbers == list(range(1, len(numbers) + 1)), f"chapter numbers have gaps: {numbers}"


@pytest.mark.parametrize("nb_path", CHAPTERS + INSTRUCTOR, ids=lambda p: p.name)
def test_notebook_conventions(nb_path):
    nb = json.loads(nb_path.read_text())
    cells = nb["cells"]
    first_md = next(c for c in cells if c["cell_type"] == "markdown")
    assert badge(nb_path) in "".join(first_md["source"]), "Colab badge missing or stale: run book/_scripts/sync_notebooks.py"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "".join(code[0]["source"]) == setup_source(), "setup cell missing or stale: run book/_scripts/sync_notebooks.py"
    for i, c in enumerate(code):
        src = "".join(c["source"])
        if not src.strip():
            continue
        assert c.get("execution_count") is not None, f"code cell {i} was not executed: commit notebooks executed"
        errors = [o for o in c.get("outputs", []) if o.get("output_type") == "error"]
        meant = bool({"raises-exception", "nbval-raises-exception"} & set(c.get("metadata", {}).get("tags", [])))
        assert meant or not errors, f"code cell {i} stored an error: {errors[0].get('ename')}"
        last = [ln for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        assert not (last and last[-1].rstrip().endswith(";")), f"code cell {i} ends with ';' (nbval compares it anyway)"
    assert nb_path.stat().st_size < 3_000_000, f"{nb_path.name} is {nb_path.stat().st_size // 1000} kB: shrink figures"


def test_setup_cell_lines_fit():
    assert max(len(ln) for ln in setup_source().splitlines()) <= 88
