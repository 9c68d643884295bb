"""Small fixes to the HTML pages of the book (Jupyter Book 1 / Sphinx 7), loaded from ``_config.yml``.

* sphinx-thebe and sphinx-togglebutton register their inline configuration scripts on every
  ``env-before-read-docs`` event, once with ``filename=None`` and, in a Jupyter Book build, once more with
  ``filename=''``; Sphinx keeps both (the names differ), so each page declared ``const THEBE_JS_URL`` twice and the
  browser reported "Identifier 'THEBE_JS_URL' has already been declared". We keep the first copy of every script.
"""
from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, kept = set(), []
    for js in context.get("script_files", []):
        name = getattr(js, "filename", js) or ""  # None and "" both mean an inline script
        key = (str(name), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
