"""benchmarks/results/notebook*.md are verbatim copies of what notebooks 10 and 11 print (benchmarks/notebook_tables.py)."""
import importlib.util

from course_utils import REPO_ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("notebook_tables", REPO_ROOT / "benchmarks" / "notebook_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_copies_match_the_committed_notebook_outputs():
    script = load_script()
    for name, (title, cells) in script.TABLES.items():
        expected = script.render(title, cells)
        assert "FID" in expected, f"{cells} printed no table: run the notebook in full mode first"
        assert (script.RESULTS / name).read_text() == expected, f"re-run benchmarks/notebook_tables.py ({name} is stale)"
