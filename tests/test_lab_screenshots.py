"""The committed notebooks as a learner first sees them in JupyterLab, before running anything.

tests/lab_screenshots.py starts JupyterLab on this repository (with `make lab`'s settings), opens START.md and
then every notebook in headless Chromium without running a cell, and saves screenshots in
build/screenshots/lab/ for a person to look at. Here each notebook must show no broken image, no widget repr
text, a picture for every slider, animations that are plain images, and no progress bar stuck at 0%.
About a minute for all notebooks.
"""
from pathlib import Path

import pytest

from browser import NO_CHROMIUM, chromium_path

pytest.importorskip("playwright")
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


@pytest.fixture(scope="module")
def lab_results():
    if chromium_path() is None:
        pytest.skip(NO_CHROMIUM)
    import lab_screenshots

    results, _ = lab_screenshots.run(ROOT, NOTEBOOKS, start_page=True)
    return results


def test_start_page_opens_rendered_with_working_links(lab_results):
    assert not lab_results["START.md"], "\n".join(lab_results["START.md"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda name: Path(name).stem)
def test_notebook_reads_well_before_running(lab_results, notebook):
    problems = lab_results[notebook]
    assert not problems, "\n".join(problems)
