"""Open notebooks in JupyterLab, in headless Chromium, WITHOUT running a cell, and check what a learner sees first.

A notebook opened this way is untrusted: JupyterLab draws only "safe" outputs (text, images), not widgets
or JavaScript. This script starts JupyterLab on a free port with a token, opens each notebook, waits for
its outputs to render, saves screenshots under build/screenshots/lab/ (the first screen of each notebook,
plus each cell with a widget, an animation or a progress bar) and reports what would look broken:

- an <img> that failed to load (a broken-image placeholder);
- visible widget reprs (``interactive(children=...``) or "Error displaying widget";
- a widget cell (one that calls interact) or an animation cell (``animate_grids``) without an image;
- a progress bar saved at 0 %.

With ``START.md`` in the served folder it first opens it as `make lab` does (JupyterLab started with the
course's settings, ``.jupyter/lab/settings``): it must open rendered, with working links.

Usage: ``.venv/bin/python tests/lab_screenshots.py [--root DIR] [NOTEBOOK ...]`` (default: every notebook in
notebooks/ of the repository; ``--root`` serves another folder holding a notebooks/ subfolder, e.g. executed
copies). tests/test_lab_screenshots.py runs it on the committed notebooks.
"""
import argparse
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB_SETTINGS = ROOT / ".jupyter" / "lab" / "settings"     # what `make lab` passes as --LabApp.app_settings_dir
sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import browser_page, screenshot_dir  # noqa: E402

WIDGET_REPR = re.compile(r"interactive\(children=|Error displaying widget")
BAR_AT_ZERO = re.compile(r":\s+0%\|")

# Per code cell, in notebook order: the DOM of its outputs as the learner sees it.
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"   # the notebook on screen
_OUTPUTS_JS = """() => [...document.querySelectorAll('%s .jp-Cell')].map(cell => {
  const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
  return {
    text: outputs.map(o => o.innerText).join('\\n'),
    images: [...cell.querySelectorAll('.jp-OutputArea-output img')].map(
        img => ({complete: img.complete, width: img.naturalWidth, height: img.naturalHeight})),
    scripts: cell.querySelectorAll('.jp-OutputArea-output script, .jp-OutputArea-output button').length,
  };
})""" % NOTEBOOK


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root):
    """A JupyterLab server on ``root``; yields its base URL with the token as query string (url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as home:
        # Render every cell (no virtual scrolling), so each output can be inspected without scrolling.
        settings = Path(home) / "settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True)
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        for plugin, values in [("apputils-extension/notification", {"fetchNews": "false"}),    # no news pop-up
                               ("docmanager-extension/plugin", {"autosave": False})]:          # never write a notebook
            folder, name = plugin.split("/")
            (Path(home) / "settings" / "@jupyterlab" / folder).mkdir(parents=True, exist_ok=True)
            (Path(home) / "settings" / "@jupyterlab" / folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
        command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
                   "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                   f"--LabServerApp.user_settings_dir={Path(home) / 'settings'}",
                   f"--LabServerApp.workspaces_dir={Path(home) / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
                   f"--LabApp.app_settings_dir={LAB_SETTINGS}"]
        if hasattr(os, "getuid") and os.getuid() == 0:
            command.append("--allow-root")
        log = open(Path(home) / "lab.log", "w")
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, JUPYTER_CONFIG_DIR=str(Path(home) / "config")))
        try:
            deadline = time.monotonic() + 180     # a loaded 2-core machine can take a minute or more
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("JupyterLab did not start:\n" + (Path(home) / "lab.log").read_text())
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{port}", token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def _cell_kinds(cell):
    """What a learner must see in this saved code cell: 'widget', 'animation', 'progress' (possibly several)."""
    source = "".join(cell["source"])
    outputs = cell.get("outputs", [])
    kinds = set()
    if re.search(r"\binteract(_with_preview)?\(", source):
        kinds.add("widget")
    if "animate_grids(" in source:
        kinds.add("animation")
    if any(re.search(r"\d+%\|", "".join(o.get("data", {}).get("text/plain", ""))) for o in outputs):
        kinds.add("progress")
    return kinds


def _shown_outputs(cell):
    """How many output areas JupyterLab draws for a cell: consecutive prints to one stream are drawn as one."""
    count, last = 0, None
    for output in cell.get("outputs", []):
        stream = output.get("name") if output["output_type"] == "stream" else None
        count += not (stream and stream == last)
        last = stream
    return count


def check_notebook(page, base, token, relative, shots):
    """Open one notebook (path relative to the server root); return a list of problems, save screenshots."""
    path = Path(relative)
    cells = json.loads((Path(page.root) / path).read_text())["cells"]
    # one JupyterLab page for all notebooks: close what is open (without saving), open the next one
    page.evaluate("""async path => {
        for (const widget of [...window.jupyterapp.shell.widgets('main')]) widget.dispose();
        await window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'});
    }""", path.as_posix())
    page.wait_for_function(f"n => document.querySelectorAll('{NOTEBOOK} .jp-Cell').length === n",
                           arg=len(cells), timeout=180_000)
    n_outputs = sum(_shown_outputs(c) for c in cells if c["cell_type"] == "code")
    page.wait_for_function(f"n => document.querySelectorAll('{NOTEBOOK} .jp-OutputArea-output').length >= n",
                           arg=n_outputs, timeout=60_000)
    page.wait_for_function(f"() => [...document.querySelectorAll('{NOTEBOOK} img')].every(i => i.complete)",
                           timeout=60_000)
    page.wait_for_timeout(500)                  # let the widget manager give up on widgets it cannot draw
    stem = path.stem
    page.screenshot(path=str(shots / f"{stem}.png"))
    problems = []
    rendered = page.evaluate(_OUTPUTS_JS)
    dom_cells = page.query_selector_all(f"{NOTEBOOK} .jp-Cell")
    for index, (cell, seen) in enumerate(zip(cells, rendered)):
        if cell["cell_type"] != "code":
            continue
        where = f"{path.name} cell {cell.get('id', index)}"
        broken = [img for img in seen["images"] if not img["complete"] or img["width"] == 0]
        if broken:
            problems.append(f"{where}: {len(broken)} broken image(s)")
        if WIDGET_REPR.search(seen["text"]):
            problems.append(f"{where}: shows a widget repr instead of a picture: {seen['text'][:80]!r}")
        kinds = _cell_kinds(cell)
        drawn = [img for img in seen["images"] if img["complete"] and img["width"] > 0]
        if "widget" in kinds and not drawn:
            problems.append(f"{where}: a widget cell without a picture")
        if "animation" in kinds and (not drawn or seen["scripts"]):
            problems.append(f"{where}: the animation is not an image that plays by itself")
        for line in seen["text"].splitlines():
            if BAR_AT_ZERO.search(line):
                problems.append(f"{where}: progress bar saved at 0%: {line.strip()[:80]!r}")
        if kinds:   # the cell at the top of the notebook panel, as a learner scrolled to it sees it
            dom_cells[index].evaluate("cell => cell.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(200)
            page.screenshot(path=str(shots / f"{stem}-{cell.get('id', index)}.png"),
                            clip=page.locator(f"{NOTEBOOK}").bounding_box())
    return problems


def _shut_down_kernels(base, token):
    """Opening a notebook starts its kernel; stop them one by one so ten notebooks do not hold ten kernels."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions", headers=headers)) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}", headers=headers, method="DELETE")
        urllib.request.urlopen(request).close()


def check_start_page(page, shots):
    """`make lab` opens START.md: it must open rendered, and its links must open companions rendered too."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems = []
    page.evaluate("""async () => {
        for (const widget of [...window.jupyterapp.shell.widgets('main')]) widget.dispose();
        await window.jupyterapp.commands.execute('docmanager:open', {path: 'START.md'});
    }""")
    shown = ".jp-MainAreaWidget:not(.lm-mod-hidden) .jp-RenderedMarkdown"
    # JupyterLab rewrites a relative link to the file's /files/ URL and opens it in the Lab when clicked
    page.wait_for_selector(f"{shown} a[href*='/files/notebooks/00_setup_check.ipynb']", timeout=60_000)
    page.screenshot(path=str(shots / "START.png"))
    walkthrough = page.locator(f"{shown} a[href*='/files/walkthroughs/']").first
    name = walkthrough.get_attribute("href").split("?")[0].rsplit("/", 1)[1]
    walkthrough.click()
    try:
        page.wait_for_function("""name => { const w = window.jupyterapp.shell.currentWidget;
            return w && w.title.label === name && w.node.querySelector('.jp-RenderedMarkdown h1'); }""",
                               arg=name, timeout=30_000)
        page.wait_for_timeout(1000)            # MathJax typesets the derivations
        page.screenshot(path=str(shots / "START-walkthrough.png"))
    except PlaywrightTimeout:
        problems.append(f"START.md: the link to {name} did not open it as a rendered page")
    return problems


def run(root, notebooks, start_page=False):
    """Check ``notebooks`` (paths relative to ``root``), and first START.md with ``start_page``; returns
    {notebook: [problems]} and the screenshot folder."""
    shots = screenshot_dir() / "lab"
    shots.mkdir(parents=True, exist_ok=True)
    results = {}
    with jupyter_lab(root) as (base, token), browser_page(viewport=(1280, 900)) as page:
        page.root = str(root)
        page.goto(f"{base}/lab?reset&token={token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=180_000)
        page.evaluate("() => window.jupyterapp.restored")
        if start_page:
            results["START.md"] = check_start_page(page, shots)
        for notebook in notebooks:
            results[notebook] = check_notebook(page, base, token, notebook, shots)
            _shut_down_kernels(base, token)
    return results, shots


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder served by JupyterLab (holds notebooks/)")
    parser.add_argument("notebooks", nargs="*", help="notebook paths relative to the root (default: notebooks/*)")
    args = parser.parse_args()
    notebooks = args.notebooks or [p.relative_to(args.root).as_posix()
                                   for p in sorted((args.root / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    results, shots = run(args.root.resolve(), notebooks, start_page=(args.root / "START.md").is_file())
    for notebook, problems in results.items():
        print(f"{notebook}: {'ok' if not problems else ''}")
        for problem in problems:
            print("   ", problem)
    print(f"screenshots in {shots}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
