"""Chapter 14's saved widgets drawn by the real widget managers of ipywidgets 7 and 8, in headless Chromium.

tests/test_widget_state.py checks the stored state against what each front end registers; this test draws it.
@jupyter-widgets/html-manager is the manager that draws saved state without a kernel (the static book, nbconvert,
classic notebook embeds). Three releases, from npm (github.com/jupyter-widgets/ipywidgets, packages/html-manager):

* 1.0.6: the one MyST-NB 1.x puts on the book's pages; ipywidgets 8's models whatever the stored version;
* 0.20.9: ipywidgets 7.7's models (the newest html-manager for ``__html_manager_version__ = '^0.20.1'``);
* 1.0.15: both, chosen by the stored module version (PR #3932, html-manager 1.0.12 / ipywidgets 8.1.4).

Each page holds ch14's widget state and its two views, as MyST-NB writes them. Checked: both views are drawn
with their images and no error, the Tab bars that stand in for ``Stack`` stay hidden, and clicking a query
button of the kernel-free explorer shows another picture (the ``jslink``-ed ``selected_index``). A planted
ipywidgets-8-only ``StackModel`` must fail to draw under 7's models. The tarballs come from the npm registry
(``npm pack``), or from ``SETR_EDU_HTML_MANAGER_DIR`` (a folder holding the ``.tgz`` files); the test skips
where neither works, or without Chromium.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import browser_site as web

ROOT = Path(__file__).resolve().parents[1]
CH14 = ROOT / "book" / "ch14_inside_setr.ipynb"
STATE = "application/vnd.jupyter.widget-state+json"
VIEW = "application/vnd.jupyter.widget-view+json"
MANAGERS = {"1.0.6": "ipywidgets 8 models (the book's)", "0.20.9": "ipywidgets 7 models",
            "1.0.15": "7 and 8 models, by version"}
REQUIREJS = "requirejs-2.3.4.tgz"  # the require.js release MyST-NB loads before the manager


def _tarball(spec: str, folder: Path) -> Path:
    name = spec.lstrip("@").replace("/", "-").replace("@", "-") + ".tgz"
    local = os.environ.get("SETR_EDU_HTML_MANAGER_DIR")
    if local and (Path(local) / name).is_file():
        return Path(local) / name
    if not (folder / name).is_file():
        if not shutil.which("npm"):
            pytest.skip("npm not found and SETR_EDU_HTML_MANAGER_DIR not set: no widget manager to draw with")
        r = subprocess.run(["npm", "pack", spec, "--pack-destination", str(folder)], capture_output=True,
                           text=True, timeout=180)
        if r.returncode != 0 or not (folder / name).is_file():
            pytest.skip(f"npm pack {spec} failed (offline?): {(r.stderr or r.stdout).strip()[-300:]}")
    return folder / name


@pytest.fixture(scope="module")
def managers(tmp_path_factory) -> dict[str, Path]:
    """{version: folder with that html-manager's dist/ files and require.js}."""
    reason = web.missing_browser()
    if reason:
        pytest.skip(f"widget render test skipped: {reason}")
    tmp = tmp_path_factory.mktemp("html-manager")
    with tarfile.open(_tarball("requirejs@2.3.4", tmp)) as t:
        require_js = t.extractfile("package/require.js").read()
    out = {}
    for version in MANAGERS:
        d = tmp / version
        with tarfile.open(_tarball(f"@jupyter-widgets/html-manager@{version}", tmp)) as t:
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
            t.extractall(d, members=[m for m in t.getmembers() if m.name.startswith("package/dist/")], **safe)
        (d / "package" / "dist" / "require.js").write_bytes(require_js)
        out[version] = d / "package" / "dist"
    return out


@pytest.fixture(scope="module")
def browser(managers):
    driver = web.start_browser(1280, 1600)
    yield driver
    driver.quit()


def page(nb: dict) -> str:
    """The widget part of a MyST-NB page: require.js, the manager, the saved state and one view per output."""
    views = [o["data"][VIEW] for c in nb["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if VIEW in o.get("data", {})]
    state = json.dumps(nb["metadata"]["widgets"][STATE]).replace("</", "<\\/")
    cells = "".join(f'<div class="cell" id="view{i}"><script type="{VIEW}">{json.dumps(v)}</script></div>'
                    for i, v in enumerate(views))
    return (f'<!doctype html><html><head><script src="require.js"></script><script src="embed-amd.js" '
            f'data-jupyter-widgets-cdn="http://127.0.0.1:9/"></script></head><body>'
            f'<script type="{STATE}">{state}</script>{cells}</body></html>')


COLLECT = """
const shown = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
return [...document.querySelectorAll('.cell')].map(cell => {
  const imgs = [...cell.querySelectorAll('img')];
  return {widgets: cell.querySelectorAll('.jupyter-widgets').length,
          images: imgs.length,
          shown_images: imgs.map((im, k) => shown(im) && im.naturalWidth > 0 ? k : -1).filter(k => k >= 0),
          shown_tab_bars: [...cell.querySelectorAll('.lm-TabBar, .p-TabBar')].filter(shown).length,
          errors: cell.querySelectorAll('.jupyter-widgets-error-widget').length,
          text: cell.innerText.slice(0, 200)};
});
"""


def draw(driver, folder: Path, nb: dict, click: str | None = None) -> tuple[list, list]:
    """Views as drawn (and again after clicking the explorer's query button labelled ``click``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (folder / "index.html").write_text(page(nb), encoding="utf-8")
    with web.serve(folder) as base:
        driver.get(base + "index.html")
        try:  # drawn when every view holds an image, or shows an error
            WebDriverWait(driver, 40).until(lambda d: all(v["images"] or v["errors"] or "rror" in v["text"]
                                                          for v in d.execute_script(COLLECT)))
        except Exception:
            pass
        before = driver.execute_script(COLLECT)
        after = before
        buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, "#view0 .widget-toggle-buttons button")
                   if b.text.strip() == click]
        if buttons:
            buttons[0].click()
            WebDriverWait(driver, 10).until(lambda d: d.execute_script(COLLECT)[0]["shown_images"]
                                            != before[0]["shown_images"])
            after = driver.execute_script(COLLECT)
    return before, after


@pytest.mark.parametrize("version", list(MANAGERS), ids=lambda v: f"html-manager-{v}")
def test_ch14_widgets_are_drawn_and_switch_in_the_browser(version, managers, browser):
    nb = json.loads(CH14.read_text())
    query = next(m["state"]["_options_labels"][1] for m in nb["metadata"]["widgets"][STATE]["state"].values()
                 if m["model_name"] == "ToggleButtonsModel" and m["state"]["description"] == "query")
    before, after = draw(browser, managers[version], nb, click=query)
    assert len(before) == 2, "ch14 saves two widget views: the kernel-free explorer and the live one"
    for i, view in enumerate(before):
        assert view["errors"] == 0 and view["widgets"] > 0, f"view {i}: {view}"
        assert len(view["shown_images"]) == 1, f"view {i} shows {view['shown_images']} of {view['images']} images"
        assert view["shown_tab_bars"] == 0, f"view {i}: a Tab bar of the hidden-bar stacks is visible"
    assert before[0]["images"] > 10  # every (layer, head, query) picture is saved
    assert after[0]["shown_images"] != before[0]["shown_images"], f"clicking {query!r} changed nothing"


def test_a_planted_ipywidgets_8_only_model_is_not_drawn_by_7s_manager(managers, browser):
    nb = json.loads(CH14.read_text())
    for m in nb["metadata"]["widgets"][STATE]["state"].values():
        if m["model_name"] == "TabModel":  # what ipywidgets 8's Stack would have saved
            m["model_name"], m["state"]["_model_name"], m["state"]["_view_name"] = "StackModel", "StackModel", \
                "StackView"
    before, _ = draw(browser, managers["0.20.9"], nb)
    assert not before[0]["shown_images"], f"7's manager drew a StackModel: {before[0]}"
