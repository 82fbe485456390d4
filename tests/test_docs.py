"""Walkthroughs and answer sheets: every notebook has both, and every reference in them resolves.

References look like ``notebooks/03_forward_process.ipynb#q-sample`` (a cell id, nbformat 4.5) and
``tests/test_schedules.py::test_snr_is_alphas_cumprod_over_one_minus`` (a test that checks a formula).
"""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COURSE_NOTEBOOKS = [p for p in NOTEBOOKS if not p.name.startswith("00_")]
DOCS = sorted((ROOT / "walkthroughs").glob("*.md")) + sorted((ROOT / "answers").glob("*.md"))
CELL_REF = re.compile(r"notebooks/([0-9]{2}_[A-Za-z0-9_]+\.ipynb)#([A-Za-z0-9_-]+)")
TEST_REF = re.compile(r"tests/(test_[A-Za-z0-9_]+\.py)::([A-Za-z0-9_]+)")


def _cell_ids(path):
    return {cell.get("id") for cell in json.loads(path.read_text())["cells"]}


def _test_names(path):
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("notebook", COURSE_NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_has_walkthrough_and_answers(notebook):
    for folder in ("walkthroughs", "answers"):
        assert (ROOT / folder / f"{notebook.stem}.md").is_file(), f"missing {folder}/{notebook.stem}.md"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_references_resolve(doc):
    text = doc.read_text()
    for name, cell_id in CELL_REF.findall(text):
        nb = ROOT / "notebooks" / name
        assert nb.is_file(), f"{doc.name} points to a missing notebook {name}"
        assert cell_id in _cell_ids(nb), f"{doc.name} points to cell #{cell_id}, not in {name}"
    for name, test in TEST_REF.findall(text):
        path = ROOT / "tests" / name
        assert path.is_file(), f"{doc.name} points to a missing test file {name}"
        assert test in _test_names(path), f"{doc.name} points to {name}::{test}, which does not exist"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.stem[:2] != "00"], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_docs_point_into_their_notebook(doc):
    refs = [name for name, _ in CELL_REF.findall(doc.read_text())]
    assert any(name.startswith(doc.stem) for name in refs), f"{doc} has no reference into notebooks/{doc.stem}.ipynb"


@pytest.mark.parametrize("doc", sorted((ROOT / "walkthroughs").glob("*.md")), ids=lambda p: p.name)
def test_walkthroughs_list_the_tests_of_their_formulas(doc):
    assert TEST_REF.search(doc.read_text()), f"{doc.name} names no test that checks its formulas"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(notebook):
    nb = json.loads(notebook.read_text())
    assert notebook.stat().st_size < 2_000_000, f"{notebook.name} is over 2 MB"
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5), "cell ids need nbformat 4.5"
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(ids) and len(ids) == len(set(ids)), "every cell needs a unique id"
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), "committed outputs must come from one clean Restart & Run All"
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])
                   if not {"nbval-raises-exception", "raises-exception"} & set(c["metadata"].get("tags", [])))


@pytest.mark.parametrize("notebook", COURSE_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_one_parameters_cell(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name} needs exactly one cell tagged 'parameters'"


@pytest.mark.parametrize("result", sorted((ROOT / "benchmarks" / "results").glob("*.md")), ids=lambda p: p.name)
def test_benchmarks_readme_shows_each_benchmark_result_verbatim(result):
    """benchmarks/README.md's result tables are the files the benchmark scripts wrote (benchmarks/update_readme.py)."""
    body = result.read_text().split("\n", 1)[1]
    assert body in (ROOT / "benchmarks" / "README.md").read_text(), \
        f"benchmarks/README.md lacks {result.name}: run benchmarks/update_readme.py"


TEXT_FILES = sorted([*ROOT.glob("*.md"), *ROOT.glob("walkthroughs/*.md"), *ROOT.glob("answers/*.md"),
                     *ROOT.glob("benchmarks/*.md"), *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb")])


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters(path):
    """A TeX command written in a Python string without r"" turns into a control character: "\\alpha" is BEL
    followed by "lpha", "\\beta" a backspace and "eta", "\\theta" a tab and "heta". MathJax then fails on the page."""
    if path.suffix == ".ipynb":
        text = "".join("".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"])
    else:
        text = path.read_text(encoding="utf-8")
    bad = sorted({repr(ch) for ch in text if ord(ch) < 32 and ch != "\n"})
    assert not bad, f"{path.name} contains control characters {bad}"
