"""The slide decks (`make slides`): every notebook's deck follows the slide types chosen for its cells, has the
shape of a lecture, loads nothing from the network, and every slide fits a 1280x720 screen in headless Chromium.

The static checks read the notebooks. The decks are built once per session (about 15 s) into a temporary folder,
then each is opened from file:// and every slide is shown once; a few slides of each deck are saved as
screenshots in build/screenshots/slides/ for a person to look at.
"""
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from browser import NO_CHROMIUM, browser_page, chromium_path, screenshot_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "slides"))
import build_slides  # noqa: E402
from build_site import mathjax_cached  # noqa: E402  (build_slides put course_site/ on the path)
from set_slide_types import TYPES, set_slide_types  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SLIDES = (5, 25)          # top-level slides per deck: a lecture's sections, not a wall of cells
MAX_LEAF_SLIDES = 40      # slides and the subslides below them
MAX_CELLS_PER_SLIDE = 3   # cells shown on one slide (fragments included)
WIDGET = build_slides.WIDGET


def _notebook(path):
    return nbformat.read(path, as_version=4)


def _heading(cell, text):
    return cell.cell_type == "markdown" and re.search(rf"^#+ {text}", cell.source, re.MULTILINE | re.IGNORECASE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_chosen_slide_type(path):
    """A new cell cannot slip into a deck unplanned."""
    missing = [c.id for c in _notebook(path).cells if c.metadata.get("slideshow", {}).get("slide_type") not in TYPES]
    assert not missing, (f"{path.name}: cells without a slide type: {missing}. Choose one in JupyterLab's property "
                         f"inspector or with slides/set_slide_types.py ({', '.join(TYPES)})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_deck_has_the_shape_of_a_lecture(path):
    nb = _notebook(path)
    plan = build_slides.outline(nb)
    shown = {cell_id for slide in plan for subslide in slide for cell_id in subslide}
    cells = {c.id: c for c in nb.cells}

    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ") and plan[0][0][0] == first.id, \
        "the title slide is the notebook's title cell"
    assert SLIDES[0] <= len(plan) <= SLIDES[1], f"{len(plan)} slides"
    assert sum(map(len, plan)) <= MAX_LEAF_SLIDES
    crowded = [subslide for slide in plan for subslide in slide if len(subslide) > MAX_CELLS_PER_SLIDE]
    assert not crowded, f"more than {MAX_CELLS_PER_SLIDE} cells on a slide: {crowded}"

    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert setup.id not in shown, "the imports cell is plumbing, not a slide"
    widgets = [c.id for c in nb.cells if c.cell_type == "code" and c.outputs
               and all(WIDGET in o.get("data", {}) for o in c.outputs)]
    assert not shown & set(widgets), "a widget needs a live kernel: skip its cell in the deck"

    last = {cell_id for subslide in plan[-1] for cell_id in subslide}
    exercises = [c.id for c in nb.cells if _heading(c, "Exercises")]
    assert set(exercises) <= last, "the exercises are on the last slide"
    takeaways = [c.id for c in nb.cells if _heading(c, "(Key )?takeaways")]
    tail = {cell_id for slide in plan[-2:] for subslide in slide for cell_id in subslide}
    assert set(takeaways) <= tail, "the key takeaways come just before the exercises"
    assert all(cells[i].cell_type == "markdown" for i in last), "no code on the exercise slide"


def test_set_slide_types_changes_only_slide_types(tmp_path):
    path = tmp_path / NOTEBOOKS[1].name
    shutil.copy(NOTEBOOKS[1], path)
    before = json.loads(path.read_text())
    first, second = before["cells"][0]["id"], before["cells"][1]["id"]
    new_types = {first: "subslide", second: "notes"}

    assert set_slide_types(path, new_types) == 2
    after = json.loads(path.read_text())
    for old, new in zip(before["cells"], after["cells"]):
        kind = new["metadata"].pop("slideshow")["slide_type"]
        assert kind == new_types.get(new["id"], old["metadata"].get("slideshow", {}).get("slide_type"))
        old["metadata"].pop("slideshow", None)
        assert old == new
    assert path.read_text().endswith("}\n")
    assert set_slide_types(path, new_types) == 0
    with pytest.raises(ValueError, match="no cells"):
        set_slide_types(path, {"no-such-cell": "slide"})
    with pytest.raises(ValueError, match="unknown slide types"):
        set_slide_types(path, {first: "title"})
    with pytest.raises(ValueError, match="no slide type given"):
        set_slide_types(path, {first: "slide"}, require_all=True)


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    """Every notebook's deck, built as `make slides` builds it, in a temporary folder."""
    if shutil.which("npm") is None and not mathjax_cached():
        pytest.skip("no npm to fetch reveal.js and MathJax for the decks (install Node.js)")
    out = tmp_path_factory.mktemp("slides")
    return dict(zip((p.stem for p in NOTEBOOKS), build_slides.build(NOTEBOOKS, out)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_deck_builds_as_planned_and_loads_nothing_remote(decks, path):
    html = decks[path.stem].read_text(encoding="utf-8")
    plan = build_slides.outline(_notebook(path))
    assert build_slides.external_resources(html) == []
    # nbconvert opens a <section> per slide and one per subslide (the first subslide included)
    assert html.count("<section") == len(plan) + sum(map(len, plan))
    notes = [c for c in _notebook(path).cells if c.metadata.slideshow.slide_type == "notes"]
    assert html.count('<aside class="notes">') == len(notes), "notes cells become speaker notes (key S)"
    assert (decks[path.stem].parent / "lib" / "mathjax" / "tex-chtml.js").is_file()
    assert f'href="{decks[path.stem].name}"' in (decks[path.stem].parent / "index.html").read_text()


def test_links_to_course_files_point_to_the_site_and_the_decks():
    """A deck lives in build/slides/: companions open on the course site (build/site/), notebooks as decks."""
    nb = build_slides.for_slides(nbformat.from_dict({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [nbformat.v4.new_markdown_cell(
            "[w](../walkthroughs/05_ddpm_training.md) [a](../answers/05_ddpm_training.md#q3) "
            "[s](../solutions/05_ddpm_training.ipynb) [map](../START.md) [nb](06_reverse_sampling.ipynb#intro) "
            "[nb2](../notebooks/04_signal_to_noise.ipynb) [web](https://arxiv.org/abs/2006.11239)")]}))
    assert nb.cells[0].source == (
        "[w](../site/walkthroughs/05_ddpm_training.html) [a](../site/answers/05_ddpm_training.html#q3) "
        "[s](../site/solutions/05_ddpm_training.html) [map](../site/START.html) [nb](06_reverse_sampling.slides.html) "
        "[nb2](04_signal_to_noise.slides.html) [web](https://arxiv.org/abs/2006.11239)")


# Shows every slide with all its fragments and reports what a person would see on it.
VISIT = """() => {
  const slides = [];
  Reveal.getHorizontalSlides().forEach((top, h) => {
    const subs = top.querySelectorAll(":scope > section");
    (subs.length ? Array.from(subs) : [top]).forEach((_, v) => {
      Reveal.slide(h, v, 1000);
      const s = Reveal.getCurrentSlide();
      fitSlide(s);
      const shown = Array.from(s.querySelectorAll(".jp-RenderedMarkdown")).filter(e => !e.closest("aside.notes"));
      const markdown = shown.map(e => {
        const prose = e.cloneNode(true);
        prose.querySelectorAll("code, pre").forEach(c => c.remove());
        return prose.textContent;
      }).join(" ");
      slides.push({h, v,
        cells: Array.from(s.querySelectorAll(".jp-Cell")).filter(c => !c.closest("aside.notes"))
          .map(c => c.id.replace("cell-id=", "")),
        scrolls: s.classList.contains("course-scroll"),
        math: s.querySelectorAll("mjx-container").length,
        dollars: (markdown.match(/\\$/g) || []).length,
        images: Array.from(s.querySelectorAll("img")).map(i => i.complete && i.naturalWidth > 0)});
    });
  });
  return slides;
}"""


@pytest.fixture(scope="module")
def page():
    if chromium_path() is None:
        pytest.skip(NO_CHROMIUM)
    pytest.importorskip("playwright")
    with browser_page(viewport=(build_slides.WIDTH, build_slides.HEIGHT)) as page:
        yield page


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_slide_shows_and_fits_the_screen(decks, page, path):
    nb = _notebook(path)
    page.console_errors.clear()
    page.requests.clear()
    page.goto(decks[path.stem].as_uri())
    page.wait_for_function("window.slidesReady !== undefined")
    page.evaluate("slidesReady.then(() => true)")
    assert page.locator(".reveal .slides section").count() > 0
    slides = page.evaluate(VISIT)

    plan = build_slides.outline(nb)
    assert [s["cells"] for s in slides] == [subslide for slide in plan for subslide in slide]
    assert page.console_errors == []
    assert [url for url in page.requests if not url.startswith(("file:", "data:"))] == []
    # Too tall even with its figures at half size and its text at 80%: only a single cell, which slide types
    # cannot split, may scroll.
    too_tall = [s["cells"] for s in slides if s["scrolls"] and len(s["cells"]) > 1]
    assert not too_tall, (f"too tall for {build_slides.WIDTH}x{build_slides.HEIGHT}: {too_tall}; start a new "
                          "(sub)slide at one of these cells (slides/set_slide_types.py)")
    with_math = [s for s in slides if any("$" in re.sub(r"`[^`]*`", "", cell.source) for cell in nb.cells
                                           if cell.id in s["cells"] and cell.cell_type == "markdown")]
    assert all(s["math"] > 0 and s["dollars"] == 0 for s in with_math), "MathJax typesets every formula"
    assert all(all(s["images"]) for s in slides), "every figure loads"

    figure = next((s for s in slides[1:] if s["images"]), slides[len(slides) // 2])
    shots = screenshot_dir() / "slides"
    shots.mkdir(exist_ok=True)
    for s in {id(s): s for s in (slides[0], figure, slides[-1])}.values():
        page.evaluate(f"() => {{ Reveal.slide({s['h']}, {s['v']}, 1000); fitSlide(Reveal.getCurrentSlide()); }}")
        page.wait_for_timeout(300)  # fragments fade in
        page.screenshot(path=shots / f"{path.stem}_{s['h']:02d}_{s['v']}.png")
