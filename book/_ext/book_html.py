"""Small fixes to the HTML pages of the book (Jupyter Book 1 / Sphinx 7), loaded from ``_config.yml``.

* sphinx-thebe registers its inline configuration script on every ``env-before-read-docs`` event, and a Jupyter
  Book build fires it more than once: each page then declares ``const THEBE_JS_URL`` twice, and the browser
  reports "Identifier 'THEBE_JS_URL' has already been declared". We keep the first copy of every script.
"""
from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, kept = set(), []
    for js in context.get("script_files", []):
        key = (str(getattr(js, "filename", js)), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
