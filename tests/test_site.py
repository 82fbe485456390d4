"""The course site (`make site`): built from the committed files, then opened in headless Chromium.

The build runs once per test session (about 20 s): course_site/build_site.py into build/site/. Static checks read
the HTML; the browser checks visit every page once through a server on 127.0.0.1 and record what a reader
would see: figures, typeset math, console errors, and every request the pages made. Screenshots land in
build/screenshots/.
"""
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from browser import NO_CHROMIUM, browser_page, chromium_path, screenshot_dir

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DOCS = sorted((ROOT / "walkthroughs").glob("*.md")) + sorted((ROOT / "answers").glob("*.md"))
CELL_REF = re.compile(r"notebooks/([0-9]{2}_[A-Za-z0-9_]+)\.ipynb#([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def site():
    """Build the site from the files as they are now."""
    sys.path.insert(0, str(ROOT / "course_site"))
    import build_site
    if shutil.which("npm") is None and not build_site.mathjax_cached():
        pytest.skip("no npm to fetch MathJax for the site (install Node.js)")
    run = subprocess.run([sys.executable, str(ROOT / "course_site" / "build_site.py")], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, f"make site failed:\n{run.stdout}\n{run.stderr}"
    return SITE


class _Page(HTMLParser):
    """Ids and link targets of one HTML page."""

    def __init__(self, path):
        super().__init__()
        self.ids, self.links, self.nested_links, self._open_links = [], [], 0, 0
        self.feed(path.read_text())

    def handle_endtag(self, tag):
        self._open_links -= tag == "a"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if tag == "a":
            self.nested_links += self._open_links > 0
            self._open_links += 1
        if tag == "a" and attrs.get("href"):
            self.links.append((attrs["href"], attrs.get("class") or ""))


@functools.cache
def _parse(path):
    return _Page(path)


def _pages(site):
    return sorted(p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_"))


def test_no_page_has_a_duplicate_id(site):
    for page in _pages(site):
        ids = _parse(page).ids
        assert len(ids) == len(set(ids)), f"{page.relative_to(site)}: {sorted({i for i in ids if ids.count(i) > 1})}"


def test_no_link_inside_a_link(site):
    for page in _pages(site):
        assert not _parse(page).nested_links, f"{page.relative_to(site)} has a link inside a link"


def test_every_internal_link_resolves_to_a_page_and_an_id(site):
    checked = 0
    for page in _pages(site):
        for href, _ in _parse(page).links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("#", "mailto:")):
                continue
            target = (page.parent / parts.path).resolve()
            assert target.is_file(), f"{page.relative_to(site)} links to a missing page {href}"
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in _parse(target).ids, f"{page.relative_to(site)}: no #{parts.fragment} in {href}"
                checked += 1
    assert checked > 100


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_cell_reference_in_a_document_is_a_link_to_the_cell(site, doc):
    """`notebooks/NN_name.ipynb#cell-id` in a walkthrough or answer sheet links to that cell of the notebook's page."""
    wanted = {f"../notebooks/{name}.html#{cell}" for name, cell in CELL_REF.findall(doc.read_text())}
    links = {href for href, _ in _parse(site / doc.parent.name / f"{doc.stem}.html").links}
    assert wanted and wanted <= links, f"not linked: {sorted(wanted - links)}"


# ---------------------------------------------------------------- in the browser

@pytest.fixture(scope="module")
def server(site):
    """http://127.0.0.1:PORT/ serving the site."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def page():
    pytest.importorskip("playwright")
    if chromium_path() is None:
        pytest.skip(NO_CHROMIUM)
    with browser_page() as page:
        yield page


READ_PAGE = """() => ({
  images: [...document.querySelectorAll('article img')].map(i => [i.naturalWidth, i.naturalHeight]),
  math: document.querySelectorAll('article mjx-container').length,
  math_errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent),
  text: document.querySelector('article').innerText,
  nav: [...document.querySelectorAll('nav a')].map(a => a.href),
  links: [...document.querySelectorAll('article a')].map(a => a.href),
})"""


def _visit(page, url):
    page.goto(url, wait_until="load")
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")  # math typeset


@pytest.fixture(scope="module")
def seen(site, server, page):
    """What each page shows, keyed by its path: every page of the site, visited once."""
    facts = {}
    for html in _pages(site):
        if html.name in ("genindex.html", "search.html"):
            continue
        path = str(html.relative_to(site))
        _visit(page, server + path)
        facts[path] = page.evaluate(READ_PAGE)
    return facts


def _png_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))


def test_home_page_lists_every_notebook(seen, server):
    home = seen["index.html"]
    for notebook in NOTEBOOKS:
        url = f"{server}notebooks/{notebook.stem}.html"
        assert url in home["links"], f"the home page does not list {notebook.name}"
        assert url in home["nav"], f"the navigation does not list {notebook.name}"
    assert "static" in home["text"] and "JupyterLab" in home["text"], "the home page should say widgets are static"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_page_shows_its_figures(seen, notebook):
    shown = seen[f"notebooks/{notebook.stem}.html"]["images"]
    loaded = [size for size in shown if min(size) > 0]
    assert len(loaded) == len(shown), "some figures did not load"
    assert len(loaded) >= _png_outputs(notebook) > 0


def test_math_is_typeset_on_every_page(seen):
    for path, facts in seen.items():
        assert not facts["math_errors"], f"{path}: MathJax could not typeset {facts['math_errors']}"
        assert "$$" not in facts["text"] and "\\(" not in facts["text"], f"{path} shows raw TeX"
    for doc in DOCS:
        assert seen[f"{doc.parent.name}/{doc.stem}.html"]["math"] > 0, f"no typeset math in {doc.name}"


def _has_interactive_widget(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               and ("image/png" in o["data"] or "".join(o["data"].get("text/plain", "")).startswith("interactive("))
               for c in cells for o in c.get("outputs", []))


def test_interactive_widgets_say_they_are_static(seen):
    with_widgets = [n for n in NOTEBOOKS if _has_interactive_widget(n)]
    assert with_widgets
    for notebook in with_widgets:
        assert "static on this site" in seen[f"notebooks/{notebook.stem}.html"]["text"], notebook.name


def test_no_console_errors_and_nothing_from_the_network(seen, page, server):
    assert not page.console_errors
    outside = [url for url in page.requests if not url.startswith((server, "data:", "blob:", "about:"))]
    assert not outside, f"requests outside the site: {outside[:5]}"


def _first_reference_to(cell_type):
    """(document page, link selector) of the first document reference to a cell of this type."""
    for doc in DOCS:
        for name, cell_id in CELL_REF.findall(doc.read_text()):
            cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
            if any(c.get("id") == cell_id and c["cell_type"] == cell_type for c in cells):
                return f"{doc.parent.name}/{doc.stem}.html", f"a[href$='{name}.html#{cell_id}']"
    raise AssertionError(f"no document refers to a {cell_type} cell")


def test_cell_links_land_on_the_cell(seen, page, server):
    """Following a cell reference from a document scrolls the notebook page to that cell: a markdown cell, a
    code cell, and (from a solution, if any) whatever the solution links to in a notebook."""
    solutions = sorted((ROOT / "solutions").glob("*.ipynb"))
    sample = [_first_reference_to("code"), _first_reference_to("markdown")]
    sample += [(f"solutions/{solutions[0].stem}.html", "a[href*='notebooks/'][href*='.html#']")] if solutions else []
    for path, selector in sample:
        _visit(page, server + path)
        link = page.locator(f"article {selector}").first
        href = urljoin(page.url, link.get_attribute("href"))
        link.click()
        page.wait_for_url(href)
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        top = page.evaluate("id => document.getElementById(id).getBoundingClientRect().top", urlsplit(href).fragment)
        assert 0 <= top < page.viewport_size["height"] / 2, f"{path} -> {href}: the target is at y={top}"
        if (path, selector) == sample[0]:
            page.screenshot(path=screenshot_dir() / "site-cell-link.png")
    assert not page.console_errors


def test_screenshots(seen, page, server):
    """Pictures for a person to look at: the home page, a notebook's figure, a walkthrough's math."""
    shots = screenshot_dir()
    for name, path in [("home", "index.html"), ("walkthrough", f"walkthroughs/{DOCS[0].stem}.html")]:
        _visit(page, server + path)
        page.screenshot(path=shots / f"site-{name}.png")
    _visit(page, f"{server}notebooks/{NOTEBOOKS[-1].stem}.html")
    page.locator("article .cell_output img").first.scroll_into_view_if_needed()
    page.screenshot(path=shots / "site-notebook.png")
    assert all((shots / f"site-{n}.png").stat().st_size > 10_000 for n in ("home", "walkthrough", "notebook"))
