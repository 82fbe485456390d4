"""Reveal.js slide decks of the notebooks that open with no network: `make slides`.

    .venv/bin/python slides/build_slides.py                       # every notebook -> build/slides/NN_name.slides.html
    .venv/bin/python slides/build_slides.py notebooks/03_forward_process.ipynb --outline   # print the slide plan too

Which cell goes where is chosen by hand in each cell's ``metadata.slideshow.slide_type`` (in JupyterLab:
the property inspector, "Slide Type"): "slide" starts a new slide, "subslide" a slide below it, "fragment"
appears on the next click, "-" continues the slide above, "notes" becomes a speaker note (key S), "skip" is left
out. The decks show the outputs saved in the notebooks; nothing is executed.

reveal.js and Font Awesome (for the buttons of matplotlib's HTML animations) are fetched once with ``npm pack`` at
the pinned versions below and checked against their registry checksums; MathJax 3 is the course site's own copy
(course_site/build_site.py). All of it goes into build/slides/lib/, so the decks load nothing from the network:
open build/slides/index.html from the disk, or copy the folder anywhere. In a deck, key S opens the speaker view.
"""
import argparse
import base64
import copy
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "course_site"))
from build_site import MATHJAX_VERSION, REMOTE_ASSET, mathjax  # noqa: E402  (one MathJax for the site and the slides)
from set_slide_types import TYPES  # noqa: E402

TEMPLATES = Path(__file__).resolve().parent / "templates"
OUT = ROOT / "build" / "slides"
WIDTH, HEIGHT = 1280, 720     # the slide canvas in CSS pixels; reveal.js scales it to the screen
FOLD_CODE_LINES = 4           # a figure's code longer than this folds into a "code" button on its slide

# npm package -> (version, the registry's sha512 integrity of its tarball, what to keep from it).
VENDOR = {
    "reveal.js": ("4.6.1",
                  "sha512-1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbPF32Dn7aiu/LKWDOGjMbaDwKQiGmfqcoGQ74HUHCMw==",
                  ["LICENSE", "dist/reveal.css", "dist/reveal.js", "dist/reset.css", "dist/theme/white.css",
                   "dist/theme/fonts/source-sans-pro/", "plugin/notes/"]),
    "font-awesome": ("4.7.0",
                     "sha512-U6kGnykA/6bFmg1M/oT9EkFeIYv7JlX3bozwQJWiiLz6L0w3F5vBVPxHlwyX/vtNq1ckcpRKOB9f2Qal/VtFpg==",
                     ["README.md", "css/font-awesome.min.css", "fonts/fontawesome-webfont.woff2"]),
}
# Saved outputs that link a CDN -> the local copy (matplotlib's HTML animations link Font Awesome's stylesheet).
LOCAL_COPIES = {
    re.compile(r"https://maxcdn\.bootstrapcdn\.com/font-awesome/[0-9.]+/css/font-awesome\.min\.css"):
        "lib/font-awesome/css/font-awesome.min.css",
}
WIDGET = "application/vnd.jupyter.widget-view+json"
# Markdown links to course files, rewritten for a deck in build/slides/: a companion document opens its page of the
# course site (build/site/, `make site`), another notebook its deck. A deck has no cell anchors; the site has.
SITE_LINK = re.compile(r"\]\((?:\.\./)?((?:walkthroughs|answers|solutions)/[0-9A-Za-z_]+|START)\.(?:md|ipynb)(#[^)\s]*)?\)")
DECK_LINK = re.compile(r"\]\((?:\.\./notebooks/)?([0-9]{2}_[0-9A-Za-z_]+)\.ipynb(?:#[^)\s]*)?\)")


def vendor(lib: Path) -> Path:
    """Put the pinned JavaScript packages and MathJax into ``lib`` (once: ``lib/VERSIONS.json`` says what is there)."""
    stamp = lib / "VERSIONS.json"
    wanted = {name: version for name, (version, _, _) in VENDOR.items()} | {"mathjax": MATHJAX_VERSION}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return lib
    if shutil.which("npm") is None:
        sys.exit("slides: npm is needed once to fetch reveal.js and MathJax (Debian: apt-get install npm)")
    tarballs = ROOT / "build" / "cache"
    tarballs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(lib, ignore_errors=True)
    for name, (version, integrity, keep) in VENDOR.items():
        packed = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(tarballs)],
                                check=True, capture_output=True, text=True)
        tgz = tarballs / json.loads(packed.stdout)[0]["filename"]
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if digest != integrity:
            sys.exit(f"slides: {tgz.name} has checksum {digest}, expected {integrity}")
        with tarfile.open(tgz) as tar:
            wanted_parts = tuple(f"package/{part}" for part in keep)
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(wanted_parts)]
            for m in members:
                m.name = m.name.removeprefix("package/")
            tar.extractall(lib / name, members=members, filter="data")
    shutil.copytree(mathjax() / "mathjax", lib / "mathjax")
    stamp.write_text(json.dumps(wanted, indent=1) + "\n")
    return lib


def external_resources(page: str) -> list[str]:
    """Every script, stylesheet, image or frame that the HTML ``page`` would load from another host."""
    return REMOTE_ASSET.findall(page)


def slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def outline(nb) -> list[list[list[str]]]:
    """The deck's plan as nbconvert lays it out: slides, each a list of subslides, each a list of the cell ids
    shown on it (fragments included; "skip" and "notes" cells are not shown)."""
    slides = []
    for cell in nb.cells:
        kind = slide_type(cell)
        if kind in {"skip", "notes"}:
            continue
        if kind == "slide" or not slides:
            slides.append([[]])
        elif kind == "subslide":
            slides[-1].append([])
        slides[-1][-1].append(cell.id)
    return slides


def for_slides(nb):
    """The notebook as the deck shows it (a copy): no widgets (a deck has no kernel to move them: their saved
    state and views are dropped, progress bars included), links to course files rewritten for build/slides/
    (SITE_LINK, DECK_LINK), and ``fold_code`` set on the code cells longer than FOLD_CODE_LINES that draw a figure
    or an animation."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = DECK_LINK.sub(r"](\1.slides.html)", SITE_LINK.sub(r"](../site/\1.html\2)", cell.source))
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
        draws = any(key.startswith("image/") or key == "text/html"
                    for output in cell.outputs for key in output.get("data", {}))
        cell.metadata["fold_code"] = draws and len(cell.source.splitlines()) > FOLD_CODE_LINES
    return nb


def exporter() -> SlidesExporter:
    return SlidesExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="course_reveal",
                          reveal_theme="white", reveal_width=str(WIDTH), reveal_height=str(HEIGHT),
                          reveal_transition="none", reveal_number="c/t", reveal_url_prefix="lib/reveal.js",
                          mathjax_url="lib/mathjax/tex-chtml.js")


def build(notebooks: list[Path], out: Path = OUT) -> list[Path]:
    """Write one ``NN_name.slides.html`` per notebook and an index.html into ``out``; return the decks."""
    vendor(out / "lib")
    slides = exporter()
    decks, titles = [], []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        unknown = {slide_type(c) for c in nb.cells} - set(TYPES)
        if unknown:
            raise ValueError(f"{path.name}: unknown slide types {sorted(unknown)}")
        page, _ = slides.from_notebook_node(for_slides(nb), resources={"metadata": {"name": path.stem}})
        for pattern, local in LOCAL_COPIES.items():
            page = pattern.sub(local, page)
        if external := external_resources(page):
            raise ValueError(f"{path.name}: the deck would load {external[:3]} from the network")
        deck = out / f"{path.stem}.slides.html"
        deck.write_text(page, encoding="utf-8")
        decks.append(deck)
        titles.append(nb.cells[0].source.splitlines()[0].lstrip("# ") if nb.cells else path.stem)
    links = "\n".join(f'<li><a href="{deck.name}">{html.escape(title)}</a></li>'
                      for deck, title in zip(decks, titles))
    (out / "index.html").write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slides"
                                    f"</title></head>\n<body><h1>Slides</h1>\n<ul>\n{links}\n</ul>\n</body></html>\n")
    return decks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--outline", action="store_true", help="print each deck's slides as lists of cell ids")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for nb_path, deck in zip(notebooks, build(notebooks, args.out)):
        plan = outline(nbformat.read(nb_path, as_version=4))
        print(f"{deck.relative_to(ROOT) if deck.is_relative_to(ROOT) else deck}: {len(plan)} slides, "
              f"{sum(map(len, plan))} with subslides")
        if args.outline:
            for i, subslides in enumerate(plan, 1):
                for j, cells in enumerate(subslides):
                    print(f"  {i:2d}{'.' + str(j) if j else '  '} " + " ".join(cells))


if __name__ == "__main__":
    main()
