"""The rendered book, opened page by page in headless Chromium (issue 7).

A build that passes can still show a reader broken pages: missing figures, raw LaTeX, notebooks committed without
outputs, dead navigation, a Colab button pointing nowhere, empty widget boxes. These tests serve ``_build/html`` on
127.0.0.1, open the root page and every page of ``_toc.yml`` (new chapters are covered without editing this file),
and check them with ``browser_check.py`` (the book's side in ``browser_book.py``, server and Chromium in
``browser_site.py``). A full-page screenshot of each page is saved to ``_build/screenshots/<page>.png`` as a build
artefact. The book is (re)built first if ``_build/html`` is missing or older than its sources.

Needs Debian's ``chromium``, ``chromium-driver`` and ``libjs-mathjax`` (``.ci/run`` installs them) and ``selenium``.
Without them the tests skip with the reason, except in CI (``CI=true``), where they fail: CI must prove the pages.
``SETR_EDU_BOOK_ROOT=/path/to/a/book/copy`` checks another copy of the book (used while developing the checks).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import browser_book as book
import browser_check as bc
import browser_site as web

ROOT = Path(os.environ.get("SETR_EDU_BOOK_ROOT", book.ROOT)).resolve()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHOTS = ROOT / "_build" / "screenshots"

try:
    PAGES, TOC_ERROR = book.toc_pages(ROOT), None
except Exception as err:  # a half-added chapter must fail one test, not stop the whole suite from collecting
    PAGES, TOC_ERROR = [], err


def test_toc_lists_existing_pages():
    assert TOC_ERROR is None, f"_toc.yml cannot be read into pages: {TOC_ERROR}"
    assert PAGES and PAGES[0].source.is_file()


@pytest.fixture(scope="module")
def browser():
    reason = web.missing_browser()
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run the browser test, but {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    driver = web.start_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(browser) -> Path:
    """``_build/html``, built first when missing or stale (needs the browser fixture: skip before building)."""
    reason = book.stale_reason(ROOT)
    if reason:
        print(f"building the book: {reason}")
        try:
            book.build_book(ROOT)
        except RuntimeError as err:
            pytest.fail(str(err))
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    return ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def checker(browser, site):
    with web.serve(site) as base:
        yield bc.BookChecker(browser, base, site, PAGES, ROOT)


@pytest.mark.parametrize("page", PAGES, ids=[p.docname for p in PAGES])
def test_page_renders_cleanly(checker, page):
    problems = checker.check(page, screenshot_dir=SHOTS)
    assert not problems, "the rendered page is broken:\n  " + "\n  ".join(problems)
    from PIL import Image

    with Image.open(SHOTS / page.shot_name) as shot:
        low, high = shot.convert("L").getextrema()
        assert shot.height >= 300 and high - low > 100, f"screenshot of {page.docname} is blank ({shot.size})"


def test_report_code_that_scrolls_sideways(checker):
    """Per page, how many code inputs and text outputs scroll sideways (the check above fails beyond the limits of
    browser_check.WIDE_LIMITS); written to _build/screenshots/wide_code.txt for the build's readers."""
    if not checker.wide:
        pytest.skip("no page was checked in this session")
    lines = [f"{doc}: " + ", ".join(f"{kind} {n}/{total}" for kind, (n, total) in w.items())
             for doc, w in checker.wide.items()]
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "wide_code.txt").write_text("\n".join(lines) + "\n")
    print("code that scrolls sideways (scrolling/all):\n  " + "\n  ".join(lines))


def test_site_index_opens_the_root_page(checker):
    checker.driver.get(checker.base + "index.html")  # Jupyter Book writes a redirect to the root page here
    from selenium.webdriver.support.ui import WebDriverWait

    want = checker.url(PAGES[0])
    WebDriverWait(checker.driver, 10).until(lambda d: d.current_url == want, f"index.html did not open {want}")


def _png_data_uri(width: int, height: int) -> str:
    """A plain PNG of ``width`` x ``height`` pixels as a data: URI (a planted figure)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _site_copy(site: Path, dest: Path) -> Path:
    """A copy of the built site, hard-linked where possible (plant_breakage replaces files, never edits them)."""
    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    return Path(shutil.copytree(site, dest / "html", copy_function=link_or_copy))


def test_checker_reports_exactly_a_planted_broken_image_and_link(browser, site, tmp_path):
    root_page = PAGES[0]
    copy = _site_copy(site, tmp_path)
    bc.plant_breakage(copy, root_page, '<p><img src="../_images/planted-missing.png" alt="planted"> '
                                       '<a href="planted-missing-page.html">planted link</a></p>')
    with web.serve(copy) as base:
        problems = bc.BookChecker(browser, base, copy, PAGES, ROOT).check(root_page)
    assert problems == [f"{root_page.docname}: image does not load: _images/planted-missing.png",
                        f"{root_page.docname}: broken article link 'planted-missing-page.html' -> HTTP 404"]
    assert (site / root_page.html).read_text().count("planted") == 0, "planting touched the real build"


def test_checker_reports_other_planted_breakage(browser, site, tmp_path):
    """Each remaining check, fed breaks it must see: error box, raw LaTeX, TeX errors, dead anchor, placeholder,
    a markdown table left as text, a visible nbval marker, a code cell and a code block of the text wider than the
    page, a figure shrunk to 3/8 of its width, a table wider than the column; on a notebook page a lost cell output
    and a wrong Colab link; on a widget page the widget state left out."""
    root_page = PAGES[0]
    copy = _site_copy(site, tmp_path)
    wide_cell = ('<div class="cell docutils container"><div class="cell_input docutils container">'
                 '<div class="highlight-ipython3 notranslate"><div class="highlight"><pre># NBVAL_CHECK_OUTPUT\n'
                 f'planted = "{"x" * 300}"</pre></div></div></div></div>')
    wide_text_code = ('<div class="highlight-python notranslate"><div class="highlight"><pre>'
                      f'planted_in_text = "{"y" * 300}"</pre></div></div>')
    shrunk_figure = f'<p><img alt="planted figure" src="{_png_data_uri(800, 40)}" style="width: 300px"></p>'
    wide_table = ('<table class="table"><tr><td>planted_table</td>'
                  '<td style="min-width: 1400px">a column far to the right</td></tr></table>')
    twice = '<script>const plantedTwice = 1;</script>' * 2
    bc.plant_breakage(copy, root_page, '<div class="system-message"><p>Unknown directive type "planted".</p></div>'
                                       '<p>raw $$x^2$$ text <span class="math">\\(\\frac{a}{b\\)</span> and '
                                       '<span class="math">\\(\\plantedmacro x\\)</span></p>'
                                       '<a href="#planted-no-such-anchor">anchor</a><p><b>FIG_PLACEHOLDER</b></p>'
                                       '<p>| planted | IoU object|red |\n|---|---|\n| a | 1 |</p>' + wide_cell
                      + wide_text_code + shrunk_figure + wide_table + twice)
    expected = {root_page: ["Sphinx error box: 'Unknown directive type \"planted\".'",
                            "unrendered LaTeX in text: 'raw $$x^2$$ text'", "TeX error in '\\\\frac{a}{b'",
                            "TeX error in '\\\\plantedmacro x': Undefined control sequence",
                            f"no #planted-no-such-anchor on {root_page.html}",
                            "placeholder text left for the reader: 'FIG_PLACEHOLDER'",
                            "markdown table left as text (a '|' inside a cell ends it: escape it as '\\|'): "
                            "'| planted | IoU object|red | |---|---| | a | 1 |'",
                            "test markers visible to the reader (1x): ['NBVAL_CHECK_OUTPUT']",
                            "code cell inputs scroll sideways (keep lines within ~88 columns), "
                            "e.g. '# NBVAL_CHECK_OUTPUT'",
                            "code blocks in the text scroll sideways (keep lines within ~88 columns), "
                            "e.g. 'planted_in_text = ",
                            "figures are shown below 90% of their natural width", ": 300 of 800 px",
                            "tables are wider than the column (split or transpose them), e.g. ",
                            " px: 'planted_table",
                            "inline script emitted twice: 'const plantedTwice = 1;'"]}
    notebooks = [p for p in PAGES if p.is_notebook and book.source_facts(p).cells_with_output]
    if notebooks:  # the book's first executed chapter loses an output and gets a badge to the wrong place
        nb = notebooks[0]
        bc.edit_page(copy, nb, lambda html: html.replace('<div class="cell_output', '<div class="planted_output', 1))
        bc.plant_breakage(copy, nb, '<a href="https://colab.research.google.com/github/x/y/blob/master/z.ipynb">x</a>')
        expected[nb] = ["cell outputs: ", "Colab link 'https://colab.research.google.com/github/x/y/blob/master/"]
    widgets = [p for p in PAGES if p.is_notebook and book.source_facts(p).widget_models]
    if widgets:  # a widget chapter whose state did not make it into the page
        bc.edit_page(copy, widgets[0], lambda html: html.replace(book.WIDGET_STATE, "application/x-planted"))
        expected.setdefault(widgets[0], []).append("expected one embedded widget-state script, found 0")
    with web.serve(copy) as base:
        checker = bc.BookChecker(browser, base, copy, PAGES, ROOT)
        found = {page: "\n".join(checker.check(page)) for page in expected}
    missing = [(page.docname, e) for page, want in expected.items() for e in want if e not in found[page]]
    assert not missing, f"the checker missed {missing}; it reported:\n" + "\n".join(found.values())
