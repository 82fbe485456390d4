"""Set the slide type of notebook cells by id, touching nothing else in the notebook.

    .venv/bin/python slides/set_slide_types.py notebooks/03_forward_process.ipynb title=slide setup=skip
    .venv/bin/python slides/set_slide_types.py notebooks/03_forward_process.ipynb --plan plan.txt --all

A plan file has one ``cell-id  type`` pair a line (``#`` starts a comment). Types: slide, subslide, fragment,
- (continue the slide above), notes, skip. With ``--all`` every cell of the notebook must be given one, so that a
new cell cannot slip into a deck unplanned. JupyterLab's property inspector ("Slide Type") sets the same field.

The notebook is re-read and written under an exclusive lock on /tmp/nb.lock, as every tool that edits the
course's notebooks does, and only each named cell's ``metadata.slideshow.slide_type`` changes.
"""
import argparse
import fcntl
import json
import sys
from pathlib import Path

TYPES = ("slide", "subslide", "fragment", "-", "notes", "skip")
LOCK = Path("/tmp/nb.lock")


def read_plan(lines) -> dict[str, str]:
    plan = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            cell_id, kind = line.replace("=", " ").split()
            plan[cell_id] = kind
    return plan


def set_slide_types(path: Path, plan: dict[str, str], require_all: bool = False) -> int:
    """Write ``plan`` (cell id -> slide type) into the notebook at ``path``; return how many cells changed."""
    if bad := {k: v for k, v in plan.items() if v not in TYPES}:
        raise ValueError(f"unknown slide types {bad}; use one of {TYPES}")
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        nb = json.loads(path.read_text(encoding="utf-8"))
        ids = [cell["id"] for cell in nb["cells"]]
        if missing := set(plan) - set(ids):
            raise ValueError(f"{path.name} has no cells {sorted(missing)}")
        if require_all and (unplanned := [i for i in ids if i not in plan]):
            raise ValueError(f"{path.name}: no slide type given for {unplanned}")
        changed = 0
        for cell in nb["cells"]:
            if cell["id"] in plan and cell["metadata"].get("slideshow", {}).get("slide_type") != plan[cell["id"]]:
                cell["metadata"].setdefault("slideshow", {})["slide_type"] = plan[cell["id"]]
                changed += 1
        if changed:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("pairs", nargs="*", help="cell-id=type")
    parser.add_argument("--plan", type=Path, help="a file of 'cell-id type' lines")
    parser.add_argument("--all", action="store_true", help="every cell must be given a type")
    args = parser.parse_args()
    plan = read_plan(args.plan.read_text().splitlines()) if args.plan else {}
    plan.update(read_plan(args.pairs))
    try:
        changed = set_slide_types(args.notebook, plan, args.all)
    except ValueError as err:
        sys.exit(f"set_slide_types: {err}")
    print(f"{args.notebook}: {changed} of {len(plan)} cells changed")


if __name__ == "__main__":
    main()
