"""Check the rendered book the way a reader meets it: pages opened in a real, headless Chromium.

Used by ``tests/test_book_browser.py``. The pages come from ``_toc.yml`` (reading order), so a chapter added
to the table of contents is checked without touching this file. For every page the checker looks at what a
build that "passed" can still get wrong:

* a title (one ``h1``) that matches the source's title, and sections (``h2``) on chapter notebooks;
* no Sphinx error boxes (``.system-message``, ``.problematic``), no LaTeX left as raw text, no TODO/PLACEHOLDER;
* every formula typeset by MathJax, without a TeX error;
* every same-site ``<img>`` loaded (``naturalWidth > 0``);
* notebook pages: one ``div.cell`` per code cell and one ``div.cell_output`` per cell that has outputs;
* every same-site link (sidebar, prev/next, article) answers HTTP 200, with its ``#anchor`` present;
  prev/next follow the table of contents and the sidebar lists every page;
* the Colab launch button (and badge) of a notebook targets ``<colab>/github/<owner>/<repo>/blob/<branch>/<path>``
  as configured in ``_config.yml``;
* widget state is embedded where the notebook saved it, and every widget view refers to a saved model;
* no markdown table left as raw ``| ... |`` text, no nbval marker (``NBVAL_...``) visible to the reader, no inline
  script emitted twice (its ``const`` declarations would fail in the console);
* no ``<pre>`` scrolls sideways: code cell inputs, text outputs, library listings (``show_source``) and code
  written in the text (exercise solutions, commands), measured in Chromium (scroll width against client width)
  with every toggle opened; limits in ``WIDE_LIMITS``;
* every figure is shown at >= ``FIGURE_MIN_RATIO`` of its natural width (a figure drawn wider than the column is
  shrunk, and its 9-pt labels with it), and no table is wider than its box (the columns on the right are hidden);
  limits in ``FIGURE_LIMITS`` and ``TABLE_LIMITS``.

The book side (pages, source facts, building) is ``browser_book.py``; the server and Chromium ``browser_site.py``.
The widget manager comes from a CDN and has no Debian package: for widgets the checks look at the state MyST-NB
embeds, not at rendered widgets.
"""
from __future__ import annotations

import html.parser
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from browser_book import ROOT, Page, SourceFacts, colab_url, source_facts, words
from browser_site import full_page_screenshot


# How many boxes of a page may scroll sideways at the 1280-px window of browser_site.start_browser, by docname
# ("*": any page; None: counted, never a failure). _static/cells.css sets all code (cells and code written in the
# text) in 12-px type, which fits 90 columns (the theme's 14 px fitted 77), and wraps text outputs as Jupyter does
# and library listings (modules written to 120 columns), so code kept within ~88 columns never scrolls.
WIDE_LIMITS = {
    "inputs": {"*": 0},
    "outputs": {"*": 0},
    "listings": {"*": 0},
    "markdown": {"*": 0},
}
KIND_LABEL = {"inputs": "code cell inputs", "outputs": "code cell outputs", "listings": "library listings",
              "markdown": "code blocks in the text"}
# A figure must show at least this share of its natural width (at 1280 px the column is ~690 px; matplotlib figures
# of 8 in at 90 dpi fit, 10 in are shrunk to 70-77% and their 9-pt labels to 7-8 px). Images narrower than
# FIGURE_MIN_WIDTH px (badges, icons) are not figures.
FIGURE_MIN_RATIO, FIGURE_MIN_WIDTH = 0.9, 160
FIGURE_LIMITS = {"*": 0}
TABLE_LIMITS = {"*": 0}

# Everything the checks need from one page, collected in the page in one call.
_COLLECT_JS = r"""
const done = arguments[arguments.length - 1];
const art = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const text = el => { const c = el.cloneNode(true); c.querySelectorAll('.headerlink').forEach(x => x.remove());
                     return c.textContent.replace(/\s+/g, ' ').trim(); };
const imgs = [...document.images];
imgs.forEach(i => { i.loading = 'eager'; });
const t0 = Date.now();
let started = false;
const start = () => { if (!started) { started = true; wait(); } };
if (window.MathJax && window.MathJax.Hub) { MathJax.Hub.Register.StartupHook('End', start); setTimeout(start, 45000); }
else start();
function wait() {
  const local = imgs.filter(i => new URL(i.currentSrc || i.src, location.href).origin === location.origin
                                 || (i.src || '').startsWith('data:'));
  if (local.some(i => !i.complete) && Date.now() - t0 < 10000) { setTimeout(wait, 50); return; }
  // $$, a TeX command, or $...$ holding \ ^ _ : TeX that MyST did not turn into a math node
  const RAW_TEX = /\$\$|\\(frac|times|cdot|sum|sqrt|alpha|beta|mathbb|mathrm|begin|end)\b|\$[^$\n]*[\\^_][^$\n]*\$/;
  const skip = 'pre, code, script, style, textarea, kbd, samp, .math, .highlight, mjx-container';
  const walker = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  const LEFTOVER = /\b(TODO|FIXME|[A-Z_]*PLACEHOLDER[A-Z_]*)\b/;  // an author's note that reached the reader
  const raw = [], leftover = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest(skip)) continue;
    if (RAW_TEX.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 80));
    if (LEFTOVER.test(n.textContent)) leftover.push(n.textContent.trim().slice(0, 80));
  }
  const stray = [...art.querySelectorAll('span.math')].filter(m =>
      /\$$/.test((m.previousSibling || {}).textContent || '') || /^\$/.test((m.nextSibling || {}).textContent || ''))
    .map(m => (m.querySelector('script[type^="math/tex"]') || m).textContent.trim().slice(0, 80));
  // a markdown table that did not become a <table> (e.g. a '|' inside a cell): its rows are left as text
  const TABLE_TEXT = /^\|([^|]*\|){2,}|\|\s*:?-{3,}:?\s*\|/;
  const raw_tables = [...art.querySelectorAll('p, li, dd')].filter(p => !p.closest(skip)).map(text)
    .filter(t => TABLE_TEXT.test(t)).map(t => t.slice(0, 80));
  // a marker meant for the test tools (nbval), visible anywhere on the page, code included
  const MARKER = /\bNBVAL_[A-Z_]+\b/;
  const markers = [];
  const all = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  for (let n = all.nextNode(); n; n = all.nextNode())
    if (MARKER.test(n.textContent) && !n.parentElement.closest('script, style'))
      markers.push(n.textContent.match(MARKER)[0]);
  // code and text outputs wider than the page: measured with every toggle opened, as a reader may open them
  const closed = [...art.querySelectorAll('details:not([open])')];
  closed.forEach(d => { d.open = true; });
  const widths = sel => [...art.querySelectorAll(sel)].filter(e => e.clientWidth > 0)
    .map(e => ({wide: e.scrollWidth > e.clientWidth + 1, line: e.textContent.trim().split('\n')[0].slice(0, 60)}));
  const CELL_PRE = {inputs: 'div.cell_input pre', outputs: 'div.cell_output div.output pre',
                    listings: 'div.cell_output > div[class*="highlight-"] pre'};
  const overflow = {inputs: widths(CELL_PRE.inputs), outputs: widths(CELL_PRE.outputs),
                    listings: widths(CELL_PRE.listings),
                    markdown: [...art.querySelectorAll('pre')]  // every other pre: code written in the text
                      .filter(e => e.clientWidth > 0 && !e.matches(Object.values(CELL_PRE).join(', ')))
                      .map(e => ({wide: e.scrollWidth > e.clientWidth + 1,
                                  line: e.textContent.trim().split('\n')[0].slice(0, 60)}))};
  // figures: displayed against natural width; tables: their width against the box that holds them
  const figures = [...art.querySelectorAll('img')].filter(i => i.naturalWidth > 0 && i.clientWidth > 0)
    .map(i => ({src: (i.currentSrc || i.src).split('/').pop().slice(0, 60), natural: i.naturalWidth,
                shown: i.clientWidth}));
  const tables = [...art.querySelectorAll('table')].filter(t => t.parentElement.clientWidth > 0)
    .map(t => ({width: t.scrollWidth, box: t.parentElement.clientWidth, head: text(t).slice(0, 60)}));
  closed.forEach(d => { d.open = false; });
  const zone = a => a.closest('nav.bd-docs-nav') ? 'sidebar' : a.closest('.prev-next-area') ? 'prev/next'
                  : art.contains(a) ? 'article' : 'page';
  const scripts = t => [...document.querySelectorAll(`script[type="${t}"]`)].map(s => s.textContent);
  done({
    h1: [...art.querySelectorAll('h1')].map(text),
    h2: [...art.querySelectorAll('section > h2')].map(text),
    system_messages: [...art.querySelectorAll('.system-message')].map(text).map(s => s.slice(0, 120)),
    problematic: [...art.querySelectorAll('.problematic')].map(text).map(s => s.slice(0, 80)),
    raw_latex: raw,
    leftover: leftover,
    stray_dollars: stray,
    raw_tables: raw_tables,
    markers: markers,
    overflow: overflow,
    figures: figures,
    tables: tables,
    // an inline script emitted twice (a second `const X` declaration is an error in the console)
    dup_scripts: [...document.querySelectorAll('script:not([src])')]
      .filter(x => !x.type || /javascript|module/.test(x.type)).map(x => x.textContent.trim())
      .filter((t, i, all) => t && all.indexOf(t) !== i).map(t => t.slice(0, 60)),
    math: [...art.querySelectorAll('span.math, div.math')].map(m => ({
      tex: (m.querySelector('script[type^="math/tex"]') || m).textContent.trim(),
      typeset: !!m.querySelector('.MathJax_CHTML, .mjx-chtml'),
      error: [...m.querySelectorAll('.mjx-merror')].map(text).join(' ')})),
    mathjax_script: !!document.querySelector('script[src*="mathjax" i]'),
    images: imgs.map(i => ({src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth})),
    cells: art.querySelectorAll('div.cell').length,
    cells_with_output: [...art.querySelectorAll('div.cell')]
      .filter(c => c.querySelector(':scope > .cell_output, :scope > details > .cell_output')).length,
    links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.href, zone: zone(a),
                                                                 raw: a.getAttribute('href')})),
    prev: (document.querySelector('.prev-next-area a.left-prev') || {}).href || null,
    next: (document.querySelector('.prev-next-area a.right-next') || {}).href || null,
    launch_colab: [...document.querySelectorAll('.bd-header-article a[href*="colab.research.google.com"]')]
      .map(a => a.href),
    widget_state: scripts('application/vnd.jupyter.widget-state+json'),
    widget_views: scripts('application/vnd.jupyter.widget-view+json'),
    widget_manager: !!document.querySelector('script[src*="@jupyter-widgets/html-manager"]'),
  });
}
"""


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


class BookChecker:
    """Opens pages of a served site in ``driver`` and lists what a reader would find broken."""

    def __init__(self, driver, base_url: str, site: Path, pages: list[Page], root: Path = ROOT):
        """``site`` (the served ``_build/html``) is served at ``base_url``; ``pages`` in reading order."""
        self.driver, self.base, self.site, self.pages, self.root = driver, base_url, site, pages, root
        self._status: dict[str, int] = {}
        self.wide: dict[str, dict[str, tuple[int, int]]] = {}  # docname -> kind -> (failing, all)
        self._ids: dict[str, set[str]] = {}

    def url(self, page: Page) -> str:
        return urllib.parse.urljoin(self.base, page.html)

    def _local_path(self, url: str) -> str | None:
        """Path of a same-site URL relative to the site root (None for other sites)."""
        if not url.startswith(self.base):
            return None
        return urllib.parse.urlsplit(url).path.lstrip("/") or "index.html"

    def status(self, url: str) -> int:
        url = url.split("#")[0]
        if url not in self._status:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    self._status[url] = r.status
                    if "html" in r.headers.get("Content-Type", ""):
                        parser = _Ids()
                        parser.feed(r.read().decode("utf-8", "replace"))
                        self._ids[url] = parser.ids
            except urllib.error.HTTPError as err:
                self._status[url] = err.code
        return self._status[url]

    def check(self, page: Page, screenshot_dir: Path | None = None) -> list[str]:
        """Problems on ``page`` (empty list when it is fine); saves a full-page screenshot if asked."""
        self.driver.get(self.url(page))
        got = self.driver.execute_async_script(_COLLECT_JS)
        if screenshot_dir is not None:
            full_page_screenshot(self.driver, screenshot_dir / page.shot_name)
        if page.source.stat().st_mtime > (self.site / page.html).stat().st_mtime:
            return [f"{page.docname}: {page.source.name} changed after the book was built: rebuild it "
                    f"(jupyter-book build . -W -n --keep-going)"]
        facts = source_facts(page)
        problems = (self._content(page, facts, got) + self._images(got) + self._links(page, got)
                    + self._notebook(page, facts, got) + self._overflow(page, got) + self._fit(page, got))
        return [f"{page.docname}: {p}" for p in problems]

    def _content(self, page: Page, facts: SourceFacts, got: dict) -> list[str]:
        out = []
        if len(got["h1"]) != 1 or not got["h1"][0]:
            out.append(f"title: expected one non-empty h1, found {got['h1']}")
        elif facts.title and words(facts.title) != words(got["h1"][0]):
            out.append(f"title: page shows {got['h1'][0]!r}, source says {facts.title!r}")
        if page.is_notebook and not got["h2"]:
            out.append("sections: no '## ' section rendered on a chapter notebook")
        out += [f"Sphinx error box: {m!r}" for m in got["system_messages"]]
        out += [f"problematic markup: {m!r}" for m in got["problematic"]]
        out += [f"unrendered LaTeX in text: {m!r}" for m in got["raw_latex"]]
        out += [f"placeholder text left for the reader: {m!r}" for m in got["leftover"]]
        out += [f"markdown table left as text (a '|' inside a cell ends it: escape it as '\\|'): {m!r}"
                for m in got["raw_tables"]]
        if got["markers"]:
            out.append(f"test markers visible to the reader ({len(got['markers'])}x): {sorted(set(got['markers']))} "
                       f"(make them cell tags)")
        out += [f"stray '$' around math (put $$ display math on lines of its own): {m!r}" for m in got["stray_dollars"]]
        for math in got["math"]:
            if math["error"]:
                out.append(f"TeX error in {math['tex'][:60]!r}: {math['error']}")
            elif not math["typeset"]:
                out.append(f"math not typeset by MathJax: {math['tex'][:60]!r}")
        out += [f"inline script emitted twice: {m!r}" for m in got["dup_scripts"]]
        if got["math"] and not got["mathjax_script"]:
            out.append("page has math but loads no MathJax")
        return out

    def _overflow(self, page: Page, got: dict) -> list[str]:
        """Code inputs, text outputs and listings that scroll sideways; counts kept in ``self.wide``."""
        out = []
        for kind, limits in WIDE_LIMITS.items():
            boxes = got["overflow"][kind]
            wide = [b["line"] for b in boxes if b["wide"]]
            self.wide.setdefault(page.docname, {})[kind] = (len(wide), len(boxes))
            limit = limits.get(page.docname, limits["*"])
            if limit is not None and len(wide) > limit:
                out.append(f"{len(wide)} of {len(boxes)} {KIND_LABEL[kind]} scroll sideways (keep lines within "
                           f"~88 columns), e.g. {wide[0]!r}")
        return out

    def _fit(self, page: Page, got: dict) -> list[str]:
        """Figures shown below FIGURE_MIN_RATIO of their natural width, tables wider than their box."""
        out = []
        figures = [f for f in got["figures"] if f["natural"] >= FIGURE_MIN_WIDTH]
        small = [f for f in figures if f["shown"] < FIGURE_MIN_RATIO * f["natural"]]
        wide = [t for t in got["tables"] if t["width"] > t["box"] + 1]
        self.wide.setdefault(page.docname, {}).update(figures_shrunk=(len(small), len(figures)),
                                                      tables=(len(wide), len(got["tables"])))
        if len(small) > FIGURE_LIMITS.get(page.docname, FIGURE_LIMITS["*"]):
            f = small[0]
            out.append(f"{len(small)} of {len(figures)} figures are shown below {FIGURE_MIN_RATIO:.0%} of their "
                       f"natural width (draw them at most ~8 in wide at 90 dpi), e.g. {f['src']}: "
                       f"{f['shown']} of {f['natural']} px")
        if len(wide) > TABLE_LIMITS.get(page.docname, TABLE_LIMITS["*"]):
            t = wide[0]
            out.append(f"{len(wide)} of {len(got['tables'])} tables are wider than the column (split or transpose "
                       f"them), e.g. {t['width']} px in {t['box']} px: {t['head']!r}")
        return out

    def _images(self, got: dict) -> list[str]:
        out = []
        for img in got["images"]:
            local = self._local_path(img["src"]) is not None or img["src"].startswith("data:")
            if local and not (img["complete"] and img["width"] > 0):
                out.append(f"image does not load: {self._local_path(img['src']) or img['src'][:60]}")
        return out

    def _links(self, page: Page, got: dict) -> list[str]:
        out, seen = [], set()
        for link in got["links"]:
            path = self._local_path(link["href"])
            if path is None or link["href"] in seen:
                continue
            seen.add(link["href"])
            code = self.status(link["href"])
            if code != 200:
                out.append(f"broken {link['zone']} link {link['raw']!r} -> HTTP {code}")
                continue
            frag = urllib.parse.unquote(urllib.parse.urlsplit(link["href"]).fragment)
            ids = self._ids.get(link["href"].split("#")[0])
            if frag and ids is not None and frag not in ids:
                hint = " (a link to a file that is not a page of the book: missing from _toc.yml?)" \
                    if re.search(r"\.(ipynb|md|html)$", frag) else ""
                out.append(f"broken {link['zone']} link {link['raw']!r}: no #{frag} on {path}{hint}")
        i = [p.docname for p in self.pages].index(page.docname)
        for side, j in (("prev", i - 1), ("next", i + 1)):
            want = self.url(self.pages[j]) if 0 <= j < len(self.pages) else None
            if got[side] != want:
                out.append(f"{side} link goes to {got[side]}, the table of contents says {want}")
        sidebar = {self._local_path(link["href"].split("#")[0]) for link in got["links"] if link["zone"] == "sidebar"}
        sidebar.add(page.html)  # the current page links to itself as '#'
        missing = [p.docname for p in self.pages if p.html not in sidebar]
        if missing:
            out.append(f"sidebar does not list {missing}")
        return out

    def _notebook(self, page: Page, facts: SourceFacts, got: dict) -> list[str]:
        if not page.is_notebook:
            return []
        out = []
        if got["cells"] != facts.code_cells:
            out.append(f"code cells: notebook has {facts.code_cells}, page shows {got['cells']}")
        if got["cells_with_output"] != facts.cells_with_output:
            out.append(f"cell outputs: {facts.cells_with_output} cells have outputs in the notebook, page shows "
                       f"{got['cells_with_output']} (is the notebook committed executed?)")
        want = colab_url(page, self.root)
        if not got["launch_colab"]:
            out.append("no Colab launch button (is launch_buttons.colab_url set in _config.yml?)")
        colab = got["launch_colab"] + [a["href"] for a in got["links"]
                                       if "colab.research.google.com/github" in a["href"]]
        out += [f"Colab link {c!r} should be {want!r}" for c in sorted(set(colab)) if c != want]
        if facts.widget_views and not facts.widget_models:
            out.append("widget outputs but no saved widget state: they render as empty boxes "
                       "(execute with book/_scripts/execute_notebooks.py, which stores it)")
        if facts.widget_models:
            if len(got["widget_state"]) != 1:
                out.append(f"expected one embedded widget-state script, found {len(got['widget_state'])}")
            else:
                models = set(json.loads(got["widget_state"][0]).get("state", {}))
                if not facts.widget_models <= models:
                    out.append(f"widget state on the page lacks models {sorted(facts.widget_models - models)[:3]}")
                views = {json.loads(v)["model_id"] for v in got["widget_views"]}
                if views - models:
                    out.append(f"widget views refer to unsaved models {sorted(views - models)[:3]}")
            if not got["widget_manager"]:
                out.append("widget state embedded but no @jupyter-widgets/html-manager script to render it")
        return out


def edit_page(site: Path, page: Page, edit) -> None:
    """Rewrite ``page`` of a site copy as ``edit(html)``. The file is replaced, never edited in place, so a copy
    made of hard links leaves the real build untouched."""
    target = site / page.html
    tmp = target.with_suffix(".planted")
    tmp.write_text(edit(target.read_text()))
    os.replace(tmp, target)


def plant_breakage(site: Path, page: Page, snippet: str) -> None:
    """Insert ``snippet`` right under the title of ``page`` in a site copy, where the page's own content is."""
    def insert(text: str) -> str:
        title = re.search(r'<article class="bd-article"[^>]*>.*?</h1>', text, re.S)
        if title is None:
            raise ValueError(f"no <article class=\"bd-article\"> with an <h1> in {page.html}")
        return text[:title.end()] + snippet + text[title.end():]
    edit_page(site, page, insert)
