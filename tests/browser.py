"""Headless Chromium for the tests that look at what a person sees (the course site, slides, JupyterLab).

Playwright drives Debian's ``chromium`` package (Playwright cannot download its own browser builds
without internet access). The API is two names:

``chromium_path()``
    The Chromium executable to launch, or ``None`` when there is none (then skip, saying why:
    ``pytest.skip(NO_CHROMIUM)``). ``$CHROMIUM`` overrides the search.

``browser_page(viewport=(1280, 900))``
    A context manager yielding a Playwright ``Page`` (sync API) of a fresh headless browser. It records,
    as plain lists of strings set on the page object:

    - ``page.console_errors``: console messages of type ``error`` and uncaught page exceptions;
    - ``page.requests``: the URL of every request the page made (to check nothing leaves the machine).

    Usage::

        from browser import browser_page, chromium_path, NO_CHROMIUM
        if chromium_path() is None:
            pytest.skip(NO_CHROMIUM)
        with browser_page() as page:
            page.goto(url)
            page.screenshot(path="build/screenshots/x.png")
            assert not page.console_errors

``pytest.importorskip("playwright")`` guards a machine without Playwright; the Makefile installs both.
"""
import contextlib
import os
import shutil
from pathlib import Path

NO_CHROMIUM = "no Chromium: `apt-get install chromium` (make test does this when run as root)"

# Debian's /usr/bin/chromium is a shell wrapper; the real binary beside it starts faster and quieter.
_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_path():
    """Path of a Chromium executable, or None."""
    override = os.environ.get("CHROMIUM")
    for name in ((override,) if override else _CANDIDATES):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.contextmanager
def browser_page(viewport=(1280, 900)):
    """A headless Chromium page with ``console_errors`` and ``requests`` lists; closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError(NO_CHROMIUM)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.console_errors = []
            page.requests = []
            page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(
                f"{msg.text} ({msg.location.get('url', '')})"))
            page.on("pageerror", lambda exc: page.console_errors.append(f"uncaught: {exc}"))
            page.on("request", lambda request: page.requests.append(request.url))
            yield page
        finally:
            browser.close()


def screenshot_dir():
    """build/screenshots/ (ignored by git): where browser tests leave pictures for a person to look at."""
    path = Path(__file__).resolve().parent.parent / "build" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
