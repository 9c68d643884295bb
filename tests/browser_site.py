"""Serving the built site on 127.0.0.1 and driving headless Chromium over it (Selenium + Debian's chromedriver).

Offline by design: CI reaches no CDN, so Chromium resolves no host but 127.0.0.1 (``--host-resolver-rules``).
The pages load MathJax 3 from a CDN; the server swaps that one script tag for Debian's MathJax 2
(``libjs-mathjax``), so every formula is really typeset (and shows in the screenshots) and a TeX error can be
caught (MathJax 2 and 3 share the TeX macros a book uses; a v3-only macro would show up here as an error).
"""
from __future__ import annotations

import base64
import contextlib
import functools
import importlib.util
import io
import re
import shutil
import sys
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "apt-get install chromium chromium-driver libjs-mathjax, then pip install -r requirements.txt"
MATHJAX_DIR = Path("/usr/share/javascript/mathjax")  # Debian's libjs-mathjax (MathJax 2.7)
MATHJAX_CDN = re.compile(r'<script[^>]*src="https://cdn\.jsdelivr\.net/npm/mathjax@3[^"]*"[^>]*></script>')
# MathJax 2 set up like the page's MathJax 3: only Sphinx's math nodes (MyST-NB marks sections tex2jax_ignore), and
# TeX errors kept as errors (merror) instead of being shown as plain text, so that the checks can see them.
LOCAL_MATHJAX = """<script type="text/x-mathjax-config">MathJax.Hub.Config({
  tex2jax: {ignoreClass: "tex2jax_ignore|mathjax_ignore",
            processClass: "tex2jax_process|mathjax_process|math|output_area"},
  TeX: {noErrors: {disabled: true}, noUndefined: {disabled: true}}, messageStyle: "none", showMathMenu: false});
</script><script src="/__mathjax__/MathJax.js?config=TeX-AMS_CHTML"></script>"""


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
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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


def missing_browser() -> str | None:
    """Why no browser test can run here (None when Chromium, chromedriver and Selenium are all present)."""
    if importlib.util.find_spec("selenium") is None:
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
    driver.set_script_timeout(90)  # MathJax may take long on a busy machine
    return driver


def full_page_screenshot(driver, path: Path, max_height: int = 32000) -> tuple[int, int]:
    """Save the whole page (not just the window) as PNG; returns (width, height).

    The viewport is stretched to the page's height for the shot (DevTools ``Emulation``), which renders the page
    exactly as a tall window would; ``captureBeyondViewport`` alone sometimes caught the layout mid-reflow.
    """
    def page_size() -> tuple[int, int]:
        return driver.execute_script(
            "const e = document.documentElement;"
            "return [e.clientWidth, Math.max(e.scrollHeight, document.body.scrollHeight)]")

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
