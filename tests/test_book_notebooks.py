"""The book's notebooks: in the toc, badge + setup cell generated from _config.yml, committed executed without
errors, no trailing ';', modest size (nbval re-runs them; this checks what nbval cannot). And the setup cell does
the right thing on Colab and elsewhere (run here with a fake Colab and a fake pip)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_scripts"))
from sync_notebooks import badge, package_version, repository, setup_source  # noqa: E402

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


# Runs the setup cell (argv[1]) with site folder argv[3] first on sys.path, holding a fake, already imported
# package and setr-edu's metadata at some version. argv[2]: "colab..." fakes Colab; "missing" hides setr_edu.
# The fake pip installs the wanted setr-edu and, for "colab-bumps", a new version of the imported package.
HARNESS = """
import pathlib, subprocess, sys, types
cell, scenario, site = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
sys.path.insert(0, str(site))
import fakepkg
if scenario.startswith("colab"):
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: print("widget manager on"))
    sys.modules["google"] = types.ModuleType("google")
    sys.modules["google.colab"] = types.SimpleNamespace(output=output)
if scenario == "missing":
    sys.modules["setr_edu"] = None

def fake_pip(cmd, check=False, **kw):
    print("PIP", *cmd[1:])
    for d in site.glob("setr_edu-*.dist-info"):
        d.rename(site / "setr_edu-WANTED.dist-info")
    if scenario == "colab-bumps":
        info = site / "fakepkg-1.0.dist-info"
        (info / "METADATA").write_text((info / "METADATA").read_text().replace("1.0", "2.0"))
    return subprocess.CompletedProcess(cmd, 0)

subprocess.run = fake_pip
exec(compile(open(cell).read(), "<setup cell>", "exec"), {})
"""


def run_setup(tmp_path, scenario: str, installed: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    for name, version, top in (("fakepkg", "1.0", "fakepkg"), ("setr-edu", installed, "setr_edu")):
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "top_level.txt").write_text(top + "\n")
    (site / "fakepkg").mkdir()
    (site / "fakepkg" / "__init__.py").write_text("")
    (tmp_path / "cell.py").write_text(setup_source())
    harness = HARNESS.replace("WANTED", package_version())
    return subprocess.run([sys.executable, "-c", harness, str(tmp_path / "cell.py"), scenario, str(site)],
                          capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ,
                                                                         "SETR_EDU_PROFILE": "ci"})


SPEC = f"setr-edu @ git+{repository()[0]}@{repository()[1]}"
RESTART = "Runtime > Restart session"


@pytest.mark.parametrize("scenario, installed, pip, restart", [
    ("colab", package_version(), False, False),  # the wanted version is there: no pip at all
    ("colab", "0.0.1", True, False),  # another version: pip installs, nothing imported changed
    ("colab-bumps", "0.0.1", True, True),  # pip changed an imported package: say to restart
    ("plain", "0.0.1", False, False),  # outside Colab: never pip
])
def test_setup_cell(tmp_path, scenario, installed, pip, restart):
    r = run_setup(tmp_path, scenario, installed)
    assert r.returncode == 0, r.stderr
    assert ("PIP -m pip install -q " + SPEC in r.stdout) == pip, r.stdout
    restart_lines = [ln for ln in r.stdout.splitlines() if RESTART in ln]
    assert restart_lines == (["pip updated fakepkg, already imported: Runtime > Restart session, then run this "
                              "cell again"] if restart else [])
    assert ("widget manager on" in r.stdout) == scenario.startswith("colab")
    assert r.stdout.strip().endswith("profile: ci")


def test_setup_cell_without_setr_edu_says_how_to_install(tmp_path):
    r = run_setup(tmp_path, "missing", package_version())
    assert r.returncode == 1 and "PIP" not in r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: setr_edu is missing: ") and f'pip install "{SPEC}"' in last
    assert "requirements.txt" in last


def test_setup_cell_lines_fit():
    assert max(len(ln) for ln in setup_source().splitlines()) <= 88
