"""Copy the quality tables that notebooks 10 and 11 measure in full mode into benchmarks/results/.

    .venv/bin/python benchmarks/notebook_tables.py          # after a full-mode run of the notebooks

Notebook 10's ``fid-table`` (flow matching with Euler and Heun beside DDIM, FID against NFE) and
``reflow-measure`` (few-step FID before and after reflow), and notebook 11's ``solver-table`` (DDPM, DDIM,
Heun, DPM-Solver++(2M) on one model) are measured inside the notebooks, where a learner sees them made; this
script copies their committed outputs, unchanged, into markdown files here, so the benchmark tables and the
notebooks cannot disagree (tests/test_benchmark_tables.py checks that the files match the notebooks).
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TABLES = {  # results file: (title, [(notebook, cell id), ...])
    "notebook10_flow_vs_ddim.md": ("Flow matching against DDIM, and reflow (notebook 10, full mode)",
                                   [("10_flow_matching.ipynb", "fid-table"), ("10_flow_matching.ipynb", "reflow-measure")]),
    "notebook11_solvers.md": ("Four solvers on one model (notebook 11, full mode)",
                              [("11_design_space.ipynb", "solver-table")]),
}


def cell_text(notebook, cell_id):
    """The printed (stream) output of one cell of a committed notebook."""
    nb = json.loads((ROOT / "notebooks" / notebook).read_text())
    for cell in nb["cells"]:
        if cell.get("id") == cell_id:
            return "".join("".join(o["text"]) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    raise KeyError(f"{notebook} has no cell {cell_id!r}")


def render(title, cells):
    parts = [f"#### {title}", "",
             "Copied by `benchmarks/notebook_tables.py` from the committed outputs of the cells named below; see",
             "each notebook for the protocol (500 samples, FID on the classifier's features, FID / floor).", ""]
    for notebook, cell_id in cells:
        parts += [f"`notebooks/{notebook}#{cell_id}`:", "", "```", cell_text(notebook, cell_id).rstrip(), "```", ""]
    return "\n".join(parts)


def main():
    for name, (title, cells) in TABLES.items():
        (RESULTS / name).write_text(render(title, cells))
        print(f"wrote benchmarks/results/{name}")


if __name__ == "__main__":
    main()
