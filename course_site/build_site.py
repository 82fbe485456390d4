"""Build the course site into build/site/ (`make site`): notebooks as committed, walkthroughs, answer sheets,
solutions and benchmarks, with navigation, MathJax and links between them. Nothing is executed, and the
pages load nothing from the network.

Steps: fetch MathJax once from the npm registry (pinned, cached in build/cache/); copy the sources into
build/site-src/ (files are found by glob, so a new notebook appears by itself) with a generated home page;
run Sphinx; fail if any page loads a script, stylesheet, image or frame from another host.
"""
import base64
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "course_site"
STAGE = ROOT / "build" / "site-src"
OUT = ROOT / "build" / "site"
CACHE = ROOT / "build" / "cache"
MATHJAX_VERSION = "3.2.2"
MATHJAX_INTEGRITY = "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
# The TeX-to-HTML component, the extensions and fonts it loads on demand, its menu and accessibility parts.
MATHJAX_PARTS = tuple(f"package/es5/{part}" for part in (
    "tex-chtml.js", "input/tex/", "output/chtml/", "ui/", "a11y/", "sre/", "adaptors/"))

# (folder, glob, caption in the navigation, what one file is)
SECTIONS = [
    ("notebooks", "[0-9][0-9]_*.ipynb", "Notebooks", "notebook"),
    ("walkthroughs", "*.md", "Walkthroughs (derivations)", "walkthrough"),
    ("answers", "*.md", "Answer sheets", "answer sheet"),
    ("solutions", "*.ipynb", "Solutions", "solution"),
]
EXTRAS = ["README.md", "START.md", "benchmarks/README.md", "benchmarks/DEFAULTS.md"]
CODE = ["course_utils/*.py", "tests/*.py", "benchmarks/*.py"]  # documents may link to these; the site offers them
REMOTE_ASSET = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?((?:https?:)?//[^\"' >]+)",
    re.IGNORECASE)


def mathjax_cached():
    return (CACHE / f"mathjax-{MATHJAX_VERSION}" / "mathjax" / "tex-chtml.js").is_file()


def mathjax():
    """Folder holding mathjax/ (MathJax's es5 build), fetched with `npm pack` on first use."""
    folder = CACHE / f"mathjax-{MATHJAX_VERSION}"
    if mathjax_cached():
        return folder
    if shutil.which("npm") is None:
        sys.exit("make site needs npm (Node.js) once, to fetch MathJax from the npm registry: "
                 "install Node.js (Debian: apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "mathjax.lock", "w") as lock:    # `make site` and `make slides` (or two test workers) at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        return folder if mathjax_cached() else _fetch_mathjax(folder)


def _fetch_mathjax(folder):
    """`npm pack` MathJax into build/cache/, check its hash, unpack its es5 build into ``folder``/mathjax."""
    subprocess.run(["npm", "pack", f"mathjax@{MATHJAX_VERSION}", "--silent", "--pack-destination", str(CACHE)],
                   check=True, stdout=subprocess.DEVNULL)
    tarball = CACHE / f"mathjax-{MATHJAX_VERSION}.tgz"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if integrity != MATHJAX_INTEGRITY:
        tarball.unlink()
        sys.exit(f"mathjax-{MATHJAX_VERSION}.tgz from the npm registry is not the one this site was tested with")
    shutil.rmtree(folder, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(MATHJAX_PARTS)]
        tar.extractall(folder / "tmp", members=members, filter="data")
    (folder / "tmp" / "package" / "es5").rename(folder / "mathjax")
    shutil.rmtree(folder / "tmp")
    tarball.unlink()
    return folder


def _title(path):
    """First heading of a notebook or markdown file."""
    if path.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    return heading[1].strip() if heading else path.stem


def _readme_intro():
    """The README's opening paragraph(s): between its title and its first section."""
    text = (ROOT / "README.md").read_text()
    return text.split("\n", 1)[1].split("\n## ", 1)[0].strip()


def home_page(found):
    """index.md: the README's introduction, one row per notebook, and the navigation."""
    lines = [f"# {_title(ROOT / 'README.md')}", "", _readme_intro(), "",
             "This site shows every notebook with the outputs it was last run with; nothing runs here.",
             "Widgets (sliders, dropdowns) are static on the site: to move them, open the notebook in JupyterLab",
             "(`make lab`) and run it.", "", "## Lessons", ""]
    columns = [(folder, one) for folder, _, _, one in SECTIONS[1:] if found[folder]]
    header = ["Notebook"] + [one.capitalize() for _, one in columns]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for notebook in found["notebooks"]:
        row = [f"[{_title(notebook)}](notebooks/{notebook.name})"]
        for folder, one in columns:
            same = [p for p in found[folder] if p.stem == notebook.stem]
            row.append(f"[{one}]({folder}/{same[0].name})" if same else "")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "The [README](README.md) says how to set up and test the course; the",
              "[benchmarks](benchmarks/README.md) measure speed and sample quality.", ""]
    for folder, _, caption, _ in SECTIONS:
        if found[folder]:
            lines += ["```{toctree}", ":hidden:", f":caption: {caption}", ""]
            lines += [f"{folder}/{p.stem}" for p in found[folder]] + ["```", ""]
    lines += ["```{toctree}", ":hidden:", ":caption: About", "", "Set-up, tests and layout (README) <README>",
              "Course map (START) <START>", "benchmarks/README", "benchmarks/DEFAULTS", "```", ""]
    return "\n".join(lines)


def stage():
    """Copy the sources into build/site-src/ and write its home page; returns the files found per folder."""
    shutil.rmtree(STAGE, ignore_errors=True)
    found = {folder: sorted((ROOT / folder).glob(pattern)) for folder, pattern, _, _ in SECTIONS}
    sources = [p for paths in found.values() for p in paths] + [ROOT / extra for extra in EXTRAS]
    sources += (ROOT / "benchmarks").rglob("*.png")  # figures the benchmark pages show
    sources += (p for pattern in CODE for p in ROOT.glob(pattern))
    for path in sources:
        target = STAGE / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (STAGE / "index.md").write_text(home_page(found))
    return found


def remote_assets(site):
    """(page, url) for every script, stylesheet, image or frame a built page would load from another host."""
    return [(page.relative_to(site), url) for page in site.rglob("*.html")
            for url in REMOTE_ASSET.findall(page.read_text(errors="replace"))]


def main():
    start = time.time()
    mathjax()
    found = stage()
    for stale in (OUT, ROOT / "build" / "site-doctrees"):  # a clean build: no page of a removed file survives
        shutil.rmtree(stale, ignore_errors=True)
    args = ["-b", "html", "-q", "-W", "--keep-going", "-c", str(HERE), "-d", str(ROOT / "build" / "site-doctrees"),
            str(STAGE), str(OUT)]
    from sphinx.cmd.build import build_main
    if build_main(args) != 0:
        sys.exit("Sphinx reported warnings or errors (above)")
    remote = remote_assets(OUT)
    if remote:
        sys.exit("pages load from the network: " + "; ".join(f"{page}: {url}" for page, url in remote))
    counts = ", ".join(f"{len(paths)} {folder}" for folder, paths in found.items() if paths)
    print(f"Course site ({counts}) in {OUT.relative_to(ROOT)}/index.html, built in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
