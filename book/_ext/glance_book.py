"""Small Sphinx fixes for the glance_lite book (loaded via _config.yml `sphinx.local_extensions`).

1. sphinx-thebe 0.3 (always loaded by Jupyter Book 1) registers its inline configuration
   script twice under Sphinx 7 (`const THEBE_JS_URL = ...` declared twice -> a JavaScript
   SyntaxError on every page). The book does not use Thebe (its launch button is Colab), so we
   unhook sphinx-thebe's asset registration; we also drop exact duplicate scripts from pages.
2. pydata-sphinx-theme logs a console error ("Got invalid theme mode") on a reader's first
   visit when no default colour mode is configured; we set it to "light".
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for s in scripts:
        key = (getattr(s, "filename", str(s)),
               tuple(sorted((k, str(v)) for k, v in (getattr(s, "attributes", None) or {}).items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(s)
    scripts[:] = kept


def _default_mode(app, config):
    ctx = dict(config.html_context or {})
    ctx.setdefault("default_mode", "light")   # pydata-sphinx-theme reads it from html_context
    config.html_context = ctx


def _unhook_thebe(app, config):
    listeners = app.events.listeners.get("env-before-read-docs", [])
    listeners[:] = [lst for lst in listeners
                    if getattr(lst.handler, "__name__", "") != "init_thebe_core"]


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("config-inited", _unhook_thebe)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
