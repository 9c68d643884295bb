"""Installing setr-edu never fights the runtime (Colab): it changes none of the torch, torchvision, numpy or
ipywidgets already there, however new (or, for ipywidgets, old: Colab ships 7.7).

Offline and in seconds, without downloading torch: a throwaway venv holds metadata-only stand-ins of what Colab
ships (torch 2.99, newer than anything released), a local folder offers "bait" releases pip could switch to (an
older torch, a newer ipywidgets...), and ``pip install --dry-run --report`` of the project's wheel says what pip
would install there.
"""
import ast
import email
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# What a Colab runtime already has (newer than any release pip could pick, except ipywidgets: Colab's 7.7.1).
RUNTIME = {"torch": "2.99.0", "torchvision": "0.99.0", "numpy": "2.99.0", "ipywidgets": "7.7.1"}
# Releases pip could move to if the project's requirements asked for them (a downgrade or an upgrade).
BAIT = {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": "1.26.4", "ipywidgets": "8.1.5"}
IMPORT_NAMES = {"pillow": "PIL", "opencv-python-headless": "cv2", "opencv-python": "cv2"}


def clean_pip_env() -> dict:
    """No pip configuration (this machine's caps torch), no user site: only what the test sets up counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def metadata(name: str, version: str, requires=()) -> str:
    return "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *(f"Requires-Dist: {r}\n" for r in requires)])


def stand_in_wheel(folder: Path, name: str, version: str, requires=()) -> Path:
    """A wheel with nothing but metadata (pip installs and resolves it like the real thing)."""
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    path = folder / f"{stem}-py3-none-any.whl"
    info = f"{stem}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{info}/METADATA", metadata(name, version, requires))
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


def install_stand_in(site: Path, name: str, version: str) -> None:
    """An installed distribution with metadata only (a ``.dist-info`` folder in site-packages)."""
    info = site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(metadata(name, version))
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


def project_wheel(tmp: Path) -> Path:
    """The project's wheel, built from its real pyproject.toml (the package itself replaced by an empty one)."""
    src = tmp / "src"
    (src / "setr_edu").mkdir(parents=True)
    (src / "setr_edu" / "__init__.py").write_text("")
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp / "dist"), str(src)], check=True, env=clean_pip_env(), capture_output=True)
    return next((tmp / "dist").glob("setr_edu-*.whl"))


def requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.message_from_bytes(z.read(meta))
    return [Requirement(r) for r in msg.get_all("Requires-Dist") or []]


def satisfying_version(req: Requirement) -> str:
    for v in ["99.0", *(s.version for s in req.specifier)]:
        if req.specifier.contains(v):
            return v
    raise AssertionError(f"cannot pick a version for {req}")


def dry_run(tmp: Path, wheel: Path) -> set[str]:
    """Names pip would install into a Colab-like venv (RUNTIME installed, BAIT and every other dependency offered)."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for name, version in RUNTIME.items():
        install_stand_in(site, name, version)
    links = tmp / "links"
    links.mkdir()
    for name, version in BAIT.items():
        stand_in_wheel(links, name, version)
    for req in requires(wheel):
        if canonicalize_name(req.name) not in RUNTIME:
            stand_in_wheel(links, req.name, satisfying_version(req))
    report = tmp / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--dry-run", "--report",
                    str(report), "--no-index", "--find-links", str(links), str(wheel)],
                   check=True, env=clean_pip_env(), capture_output=True, text=True)
    return {canonicalize_name(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}


def test_installing_the_project_keeps_the_runtime_packages(tmp_path):
    installs = dry_run(tmp_path, project_wheel(tmp_path))
    assert "setr-edu" in installs  # the dry run did resolve the project
    changed = installs & set(RUNTIME)
    assert not changed, f"installing setr-edu would reinstall {sorted(changed)}: drop their upper bounds"


def test_the_dry_run_catches_a_capped_requirement(tmp_path):
    """The harness itself: a project that caps torch (as setr-edu once did) would downgrade it."""
    (tmp_path / "dist").mkdir()
    capped = stand_in_wheel(tmp_path / "dist", "capped", "1.0", ["torch>=2.1,<=2.14.1", "ipywidgets>=8"])
    assert dry_run(tmp_path, capped) == {"capped", "torch", "ipywidgets"}


def declared() -> list[Requirement]:
    import tomllib

    return [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]


def test_requirements_txt_repeats_the_library_dependencies():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    listed = {canonicalize_name(r.name): r for r in (Requirement(ln) for ln in lines if ln and not ln.startswith("-"))}
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in listed and listed[name].specifier == req.specifier, \
            f"requirements.txt lists {listed.get(name)}, pyproject.toml {req}: keep them the same"
    assert "torchvision" not in listed


def test_every_dependency_is_imported_by_the_library():
    imported = set()
    for f in (ROOT / "setr_edu").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    for req in declared():
        module = IMPORT_NAMES.get(canonicalize_name(req.name), req.name.replace("-", "_"))
        assert module in imported, f"{req.name} is declared but setr_edu never imports {module}: drop it"


@pytest.mark.parametrize("name", sorted(RUNTIME))
def test_no_upper_bound_on_runtime_packages(name):
    for req in declared():
        if canonicalize_name(req.name) == name:
            assert all(s.operator in (">=", ">", "!=") for s in req.specifier), f"{req}: lower bounds only"
