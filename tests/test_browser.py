"""The built HTML book in headless Chromium (Playwright driving the system's /usr/bin/chromium).

For every page: every <img> has loaded (naturalWidth > 0), there is no JavaScript error and no
console error outside ALLOWED, and no request leaves the machine except those in
ALLOWED_EXTERNAL. The lambda_s slider must change the score-map image when it moves.

The book is built once per session by tests/test_book.py (`built_book`). Skipped with a reason
when Playwright or Chromium is missing (`pip install -e ".[dev]"`, `apt-get install chromium`).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import test_book

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

# External requests the book may make, and why. Every request leaving the machine is blocked
# in the test (the book must work offline) and must be listed here to be tolerated. The list
# is empty: MathJax is vendored in book/_static/mathjax, sphinx-thebe's scripts are unhooked
# by book/_ext/glance_book.py, and no ipywidgets view is stored in the HTML.
ALLOWED_EXTERNAL: set[str] = set()
# Console errors tolerated: only the browser's report of a blocked request listed above.
ALLOWED_CONSOLE = [re.compile(r"Failed to load resource: net::ERR_(FAILED|BLOCKED_BY_CLIENT|INTERNET_DISCONNECTED|NAME_NOT_RESOLVED)")]


def chromium_path() -> str | None:
    for cand in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                 shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if cand and Path(cand).exists():
            return cand
    return None


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed: pip install -e '.[dev]'")
    exe = chromium_path()
    if exe is None:
        msg = "Chromium is not installed (apt-get install chromium) and CHROMIUM_PATH is unset"
        if os.environ.get("GLANCE_REQUIRE_BROWSER"):  # set by .ci/run: CI must not skip this test
            pytest.fail(msg)
        pytest.skip(msg)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


class PageLog:
    def __init__(self):
        self.console, self.page_errors, self.external = [], [], []


def open_page(browser, url: str):
    """Open `url` with every non-file request blocked and recorded -> (page, PageLog)."""
    log = PageLog()
    page = browser.new_page()

    def route(r):
        u = r.request.url
        if u.startswith(("file:", "data:", "blob:", "about:")):
            return r.continue_()
        log.external.append(u)
        return r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and log.console.append(
        (m.text, (m.location or {}).get("url", ""))))
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)  # let inline scripts and late images settle
    return page, log


def _allowed_external(url: str) -> bool:
    return any(a in url for a in ALLOWED_EXTERNAL)


def test_equations_render_offline(browser, book_html):
    """MathJax is served from the book itself, so equations typeset without a network."""
    page, log = open_page(browser, (book_html / "book" / "03_partial_conv.html").as_uri())
    try:
        page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 5", timeout=20000)
        assert not log.external
    finally:
        page.close()


def _unexplained_console(log: PageLog) -> list:
    """Console errors except a blocked request to an allowed external URL."""
    return [(text, url) for text, url in log.console
            if not (any(p.search(text) for p in ALLOWED_CONSOLE) and url and _allowed_external(url))]


# ----------------------------------------------------------------------------- the player alone
def test_player_slider_changes_the_map_standalone(browser, tmp_path):
    """The explorer's HTML works on its own page (no Sphinx, no network)."""
    from glance_lite.explorer import html_player, lambda_frames
    data, _ = test_book._toy_explorer()
    html = html_player(lambda_frames(data, lambdas=[0.0, 0.5, 1.0]), uid="solo", initial=0.5)
    page_file = tmp_path / "player.html"
    page_file.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{html}</body></html>")
    page, log = open_page(browser, page_file.as_uri())
    try:
        before = page.locator("#solo img.glance-map").get_attribute("src")
        text_before = page.locator("#solo .glance-value").text_content()
        assert "0.50" in text_before
        page.locator("#solo input.glance-lambda").fill("0")
        after = page.locator("#solo img.glance-map").get_attribute("src")
        assert after != before and "0.00" in page.locator("#solo .glance-value").text_content()
        assert page.locator("#solo tr.glance-on").count() == 1
        assert not log.console and not log.page_errors and not log.external
    finally:
        page.close()


# ----------------------------------------------------------------------------- the built book
@pytest.fixture(scope="session")
def book_html():
    """The HTML of the smoke build, shared with tests/test_book.py (built once per session)."""
    test_book._skip_without_jupyter_book()
    return test_book.built_book()[0]


@pytest.fixture(scope="session")
def book_pages(book_html):
    pages = sorted(book_html.rglob("*.html"))
    pages = [p for p in pages if "_static" not in p.parts and "_sources" not in p.parts]
    assert len(pages) >= 12
    return pages


def test_every_page_loads_cleanly(browser, book_pages):
    problems = []
    for path in book_pages:
        page, log = open_page(browser, path.as_uri())
        try:
            broken = page.evaluate("""() => Array.from(document.images)
                .filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => (i.getAttribute('src') || '').slice(0, 80))""")
            name = path.name
            if broken:
                problems.append(f"{name}: broken images {broken}")
            if log.page_errors:
                problems.append(f"{name}: JavaScript errors {log.page_errors}")
            bad_console = _unexplained_console(log)
            if bad_console:
                problems.append(f"{name}: console errors {bad_console}")
            stray = [u for u in log.external if not _allowed_external(u)]
            if stray:
                problems.append(f"{name}: requests to the network {stray}")
        finally:
            page.close()
    assert not problems, "\n".join(problems)


def test_lambda_slider_in_the_book_changes_the_figure(browser, book_html):
    path = book_html / "book" / "06_scoring_maps.html"
    page, log = open_page(browser, path.as_uri())
    try:
        players = page.locator("div.glance-player")
        assert players.count() >= 1
        player = players.first
        slider = player.locator("input.glance-lambda")
        img = player.locator("img.glance-map")
        before = img.get_attribute("src")
        n = int(slider.get_attribute("max"))
        target = "0" if slider.input_value() != "0" else str(n)
        slider.fill(target)
        after = img.get_attribute("src")
        assert after != before, "moving the slider did not change the score-map image"
        assert page.evaluate("(el) => el.naturalWidth", img.element_handle()) > 0
        assert not log.page_errors
    finally:
        page.close()
