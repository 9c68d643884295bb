"""Check the rendered book the way a reader meets it: pages opened in a real, headless Chromium.

Used by ``tests/test_book_browser.py``. The pages come from ``_toc.yml`` (reading order), so a chapter added
to the table of contents is checked without touching this file. For every page the checker looks at what a
build that "passed" can still get wrong:

* a title (one ``h1``) that matches the source's title, and sections (``h2``) on chapter notebooks;
* no Sphinx error boxes (``.system-message``, ``.problematic``) and no LaTeX left as raw text;
* every formula typeset by MathJax, without a TeX error;
* every same-site ``<img>`` loaded (``naturalWidth > 0``);
* notebook pages: one ``div.cell`` per code cell and one ``div.cell_output`` per cell that has outputs;
* every same-site link (sidebar, prev/next, article) answers HTTP 200, with its ``#anchor`` present;
  prev/next follow the table of contents and the sidebar lists every page;
* the Colab launch button (and badge) of a notebook targets ``<colab>/github/<owner>/<repo>/blob/<branch>/<path>``
  as configured in ``_config.yml``;
* widget state is embedded where the notebook saved it, and every widget view refers to a saved model.

Offline by design: CI reaches no CDN, so Chromium resolves no host but 127.0.0.1 (``--host-resolver-rules``).
The pages load MathJax 3 from a CDN; the test server swaps that one script tag for Debian's MathJax 2
(``libjs-mathjax``), so every formula is really typeset (and shows in the screenshots) and a TeX error is caught
(MathJax 2 and 3 share the TeX macros a book uses; a v3-only macro would show up here as an error). The widget
manager also comes from a CDN and has no Debian package: for widgets the checks look at the state MyST-NB embeds.
"""
from __future__ import annotations

import contextlib
import functools
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
BUILD_COMMAND = ["jupyter-book", "build", ".", "-W", "-n", "--keep-going"]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "apt-get install chromium chromium-driver libjs-mathjax, then pip install -r requirements.txt"
MATHJAX_DIR = Path("/usr/share/javascript/mathjax")  # Debian's libjs-mathjax (MathJax 2.7)
MATHJAX_CDN = re.compile(r'<script[^>]*src="https://cdn\.jsdelivr\.net/npm/mathjax@3[^"]*"[^>]*></script>')
# MathJax 2 set up like the page's MathJax 3: only Sphinx's math nodes (MyST-NB marks sections tex2jax_ignore), and
# TeX errors kept as errors (merror) instead of being shown as plain text, so that the checks can see them.
LOCAL_MATHJAX = """<script type="text/x-mathjax-config">MathJax.Hub.Config({
  tex2jax: {ignoreClass: "tex2jax_ignore|mathjax_ignore", processClass: "tex2jax_process|mathjax_process|math|output_area"},
  TeX: {noErrors: {disabled: true}, noUndefined: {disabled: true}}, messageStyle: "none", showMathMenu: false});
</script><script src="/__mathjax__/MathJax.js?config=TeX-AMS_CHTML"></script>"""


# ----------------------------------------------------------------------------------------------------------------
# The book: pages from _toc.yml, facts from their sources, the Colab address from _config.yml
# ----------------------------------------------------------------------------------------------------------------
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


def _words(text: str) -> list[str]:
    """Compare titles by their words: markdown marks, code ticks and the heading's '#' link do not count."""
    return re.findall(r"[^\W_]+", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).lower())


# ----------------------------------------------------------------------------------------------------------------
# Building and serving the site
# ----------------------------------------------------------------------------------------------------------------
def stale_reason(root: Path = ROOT) -> str | None:
    """Why ``_build/html`` must be (re)built, or None when it is newer than every input."""
    index = root / "_build" / "html" / "index.html"
    if not index.is_file():
        return f"{index.relative_to(root)} does not exist"
    inputs = [root / "_config.yml", root / "_toc.yml", *(p.source for p in toc_pages(root))]
    inputs += [p for p in (root / "book" / "figures").rglob("*") if p.is_file()]
    newer = [p for p in inputs if p.stat().st_mtime > index.stat().st_mtime]
    return f"{newer[0].relative_to(root)} is newer than the built book" if newer else None


def build_book(root: Path = ROOT, timeout: int = 1200) -> None:
    proc = subprocess.run(BUILD_COMMAND, cwd=root, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(BUILD_COMMAND)}` failed (exit {proc.returncode}); fix the build first:\n"
                           + (proc.stdout + proc.stderr)[-4000:])


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves the site; ``/__mathjax__/`` from Debian's MathJax, and pages with the MathJax CDN tag swapped for it."""

    timeout = 15  # seconds a connection may idle: the server never hangs on a stuck client

    def log_message(self, *args) -> None:
        pass

    def translate_path(self, path: str) -> str:
        if path.startswith("/__mathjax__/"):
            rel = Path(urllib.parse.unquote(urllib.parse.urlsplit(path).path)[len("/__mathjax__/"):])
            return str(MATHJAX_DIR / ("missing" if ".." in rel.parts else rel.relative_to(rel.anchor)))
        return super().translate_path(path)

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = MATHJAX_CDN.sub(lambda m: LOCAL_MATHJAX, path.read_text(encoding="utf-8")).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """The browser drops connections it no longer needs when it leaves a page: not an error worth printing."""


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (free port) from a daemon thread; yields the base URL (ends with '/')."""
    server = _Server(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------------------------------------
# The browser
# ----------------------------------------------------------------------------------------------------------------
def missing_browser() -> str | None:
    """Why no browser test can run here (None when Chromium, chromedriver and Selenium are all present)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"the Python package selenium is not installed ({INSTALL_HINT})"
    if not any(shutil.which(b) for b in BROWSERS):
        return f"no Chromium found on PATH (looked for {', '.join(BROWSERS)}; {INSTALL_HINT})"
    if not shutil.which("chromedriver"):
        return f"chromedriver not found on PATH ({INSTALL_HINT})"
    if not (MATHJAX_DIR / "MathJax.js").is_file():
        return f"no MathJax in {MATHJAX_DIR} ({INSTALL_HINT})"
    return None


def start_browser(width: int = 1280, height: int = 900):
    """Headless Chromium through the system chromedriver; it resolves no host but 127.0.0.1 (offline, fast)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US",
                f"--window-size={width},{height}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def full_page_screenshot(driver, path: Path, max_height: int = 16000) -> tuple[int, int]:
    """Save the whole page (not just the window) as PNG; returns (width, height).

    The viewport is stretched to the page's height for the shot (DevTools ``Emulation``), which renders the page
    exactly as a tall window would; ``captureBeyondViewport`` alone sometimes caught the layout mid-reflow.
    """
    import base64

    def page_size() -> tuple[int, int]:
        return driver.execute_script(
            "const e = document.documentElement; return [e.clientWidth, Math.max(e.scrollHeight, document.body.scrollHeight)]")

    settle = "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));"
    w, h = page_size()
    try:
        for _ in range(2):  # stretching the window can grow the page (100vh sidebars): measure again once
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": w, "height": min(h, max_height), "deviceScaleFactor": 1, "mobile": False})
            driver.execute_async_script(settle)
            w, h2 = page_size()
            if h2 == h:
                break
            h = h2
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return w, min(h, max_height)


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
if (window.MathJax && window.MathJax.Hub) { MathJax.Hub.Register.StartupHook('End', start); setTimeout(start, 20000); }
else start();
function wait() {
  const local = imgs.filter(i => new URL(i.currentSrc || i.src, location.href).origin === location.origin
                                 || (i.src || '').startsWith('data:'));
  if (local.some(i => !i.complete) && Date.now() - t0 < 10000) { setTimeout(wait, 50); return; }
  const skip = 'pre, code, script, style, textarea, kbd, samp, .math, .highlight, mjx-container';
  const walker = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest(skip)) continue;
    const m = n.textContent.match(/\$\$|\\(frac|times|cdot|sum|sqrt|alpha|beta|mathbb|mathrm|mathbf|begin|end)\b|\$[^$\n]*[\\^_][^$\n]*\$/);
    if (m) raw.push(n.textContent.trim().slice(0, 80));
  }
  const stray = [...art.querySelectorAll('span.math')].filter(m =>
      /\$$/.test((m.previousSibling || {}).textContent || '') || /^\$/.test((m.nextSibling || {}).textContent || ''))
    .map(m => (m.querySelector('script[type^="math/tex"]') || m).textContent.trim().slice(0, 80));
  const zone = a => a.closest('nav.bd-docs-nav') ? 'sidebar' : a.closest('.prev-next-area') ? 'prev/next'
                  : art.contains(a) ? 'article' : 'page';
  const scripts = t => [...document.querySelectorAll(`script[type="${t}"]`)].map(s => s.textContent);
  done({
    h1: [...art.querySelectorAll('h1')].map(text),
    h2: [...art.querySelectorAll('section > h2')].map(text),
    system_messages: [...art.querySelectorAll('.system-message')].map(text).map(s => s.slice(0, 120)),
    problematic: [...art.querySelectorAll('.problematic')].map(text).map(s => s.slice(0, 80)),
    raw_latex: raw,
    stray_dollars: stray,
    math: [...art.querySelectorAll('span.math, div.math')].map(m => ({
      tex: (m.querySelector('script[type^="math/tex"]') || m).textContent.trim(),
      typeset: !!m.querySelector('.MathJax_CHTML, .mjx-chtml'),
      error: [...m.querySelectorAll('.mjx-merror')].map(text).join(' ')})),
    mathjax_script: !!document.querySelector('script[src*="mathjax" i]'),
    images: imgs.map(i => ({src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth})),
    cells: art.querySelectorAll('div.cell').length,
    cells_with_output: [...art.querySelectorAll('div.cell')].filter(c => c.querySelector(':scope > .cell_output')).length,
    links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.href, zone: zone(a),
                                                                 raw: a.getAttribute('href')})),
    prev: (document.querySelector('.prev-next-area a.left-prev') || {}).href || null,
    next: (document.querySelector('.prev-next-area a.right-next') || {}).href || null,
    launch_colab: [...document.querySelectorAll('.bd-header-article a[href*="colab.research.google.com"]')].map(a => a.href),
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

    def __init__(self, driver, base_url: str, pages: list[Page], root: Path = ROOT):
        self.driver, self.base, self.pages, self.root = driver, base_url, pages, root
        self._status: dict[str, int] = {}
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
        t0 = time.time()
        self.driver.get(self.url(page))
        got = self.driver.execute_async_script(_COLLECT_JS)
        if screenshot_dir is not None:
            full_page_screenshot(self.driver, screenshot_dir / page.shot_name)
        facts = source_facts(page)
        problems = (self._content(page, facts, got) + self._images(got) + self._links(page, got)
                    + self._notebook(page, facts, got))
        self.last_seconds = time.time() - t0
        return [f"{page.docname}: {p}" for p in problems]

    def _content(self, page: Page, facts: SourceFacts, got: dict) -> list[str]:
        out = []
        if len(got["h1"]) != 1 or not got["h1"][0]:
            out.append(f"title: expected one non-empty h1, found {got['h1']}")
        elif facts.title and _words(facts.title) != _words(got["h1"][0]):
            out.append(f"title: page shows {got['h1'][0]!r}, source says {facts.title!r}")
        if page.is_notebook and not got["h2"]:
            out.append("sections: no '## ' section rendered on a chapter notebook")
        out += [f"Sphinx error box: {m!r}" for m in got["system_messages"]]
        out += [f"problematic markup: {m!r}" for m in got["problematic"]]
        out += [f"unrendered LaTeX in text: {m!r}" for m in got["raw_latex"]]
        out += [f"stray '$' around math (put $$ display math on lines of its own): {m!r}" for m in got["stray_dollars"]]
        for math in got["math"]:
            if math["error"]:
                out.append(f"TeX error in {math['tex'][:60]!r}: {math['error']}")
            elif not math["typeset"]:
                out.append(f"math not typeset by MathJax: {math['tex'][:60]!r}")
        if got["math"] and not got["mathjax_script"]:
            out.append("page has math but loads no MathJax")
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


def plant_breakage(site: Path, page: Page, snippet: str) -> None:
    """Insert ``snippet`` right under the title of ``page`` in a site copy, where the page's own content is.

    The file is replaced, never edited in place, so a hard-linked copy of the site leaves the real build untouched.
    """
    target = site / page.html
    text = target.read_text()
    title = re.search(r'<article class="bd-article"[^>]*>.*?</h1>', text, re.S)
    if title is None:
        raise ValueError(f"no <article class=\"bd-article\"> with an <h1> in {target}")
    tmp = target.with_suffix(".planted")
    tmp.write_text(text[:title.end()] + snippet + text[title.end():])
    os.replace(tmp, target)
