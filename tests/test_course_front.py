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
