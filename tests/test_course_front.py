"""What a learner sees first: notebooks free of test-harness comments, and each notebook linked to its companions."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
NBVAL_COMMENT = re.compile(r"^\s*#\s*(NBVAL|PYTEST_VALIDATE)_[A-Z_]+\s*$", re.MULTILINE)


@pytest.mark.parametrize("notebook", NOTEBOOKS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_nbval_markers_are_cell_tags_not_comments(notebook):
    """nbval reads the tags nbval-check-output, nbval-ignore-output, nbval-skip, nbval-raises-exception;
    a `# NBVAL_...` line would sit in the code a learner reads."""
    for cell in json.loads(notebook.read_text())["cells"]:
        found = NBVAL_COMMENT.findall("".join(cell["source"]))
        assert not found, f"{notebook.name} cell {cell.get('id')}: use a cell tag instead of a # {found[0]}_ comment"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
COURSE_NOTEBOOKS = [p for p in NOTEBOOKS if not p.name.startswith("00_")]


def _companions(stem):
    return [f"walkthroughs/{stem}.md", f"answers/{stem}.md", f"solutions/{stem}.ipynb"]


def _local_links(text):
    return [target for target in LINK.findall(text) if "://" not in target and not target.startswith("mailto:")]


def _top_markdown(notebook):
    return "".join(next(c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "markdown")["source"])


@pytest.mark.parametrize("notebook", COURSE_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_top_cell_links_its_walkthrough_answers_and_solutions(notebook):
    links = _local_links(_top_markdown(notebook))
    for companion in _companions(notebook.stem):
        assert f"../{companion}" in links, f"{notebook.name}'s first cell does not link ../{companion}"
    for target in links:
        assert (notebook.parent / target).exists(), f"{notebook.name} links {target}, which does not exist"


def test_setup_notebook_points_to_the_course_map():
    top = _top_markdown(ROOT / "notebooks" / "00_setup_check.ipynb")
    assert "../START.md" in _local_links(top)


def test_start_page_links_every_notebook_and_its_companions():
    text = (ROOT / "START.md").read_text()
    links = _local_links(text)
    for notebook in NOTEBOOKS:
        assert f"notebooks/{notebook.name}" in links, f"START.md does not link {notebook.name}"
    for notebook in COURSE_NOTEBOOKS:
        for companion in _companions(notebook.stem):
            assert companion in links, f"START.md does not link {companion}"
    missing = [target for target in links if not (ROOT / target).exists()]
    assert not missing, f"START.md links files that do not exist: {missing}"


def test_readme_links_every_notebook_and_the_start_page():
    links = _local_links((ROOT / "README.md").read_text())
    assert "START.md" in links
    for notebook in NOTEBOOKS:
        assert f"notebooks/{notebook.name}" in links, f"README.md does not link {notebook.name}"
    missing = [target for target in links if not (ROOT / target).exists()]
    assert not missing, f"README.md links files that do not exist: {missing}"


def test_make_lab_opens_the_course_root_on_the_start_page():
    """`make lab` serves the repository root (walkthroughs, answers and solutions open from it) and opens START.md,
    with Markdown rendered (the overrides file must name a viewer JupyterLab has)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "cd notebooks" not in recipe and recipe.rstrip().endswith("START.md")
    settings = ROOT / ".jupyter" / "lab" / "settings"
    assert f"--LabApp.app_settings_dir=$(CURDIR)/{settings.relative_to(ROOT).as_posix()}" in recipe
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Markdown Preview"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_reads_well_before_it_runs(notebook):
    """Figure text follows set_lecture_style (relative font sizes, not points); sliders carry a static picture
    (cu.interact_with_preview, not ipywidgets' interact); progress bars are saved finished (cu.tqdm)."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        where = f"{notebook.name} cell {cell.get('id')}"
        assert not re.search(r"fontsize\s*=\s*\d", source), f"{where}: use a relative fontsize ('small', 'large')"
        assert not re.search(r"(?<![\w.])interact\(|widgets\.interact\(", source), \
            f"{where}: use cu.interact_with_preview, whose saved output shows a picture"
        assert "tqdm.auto" not in source and not re.search(r"(?<![\w.])tqdm\(", source), \
            f"{where}: use cu.tqdm, whose saved output is the finished bar"
