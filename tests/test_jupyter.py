"""Jupyter (course_utils/jupyter.py): what saved notebooks keep of figures, bars, sliders, animations; slider previews.

One small notebook runs in a real Jupyter kernel (nbclient, as CI and the lead's full runs do) and its saved
outputs are read back: figures are 2x PNGs shown at their CSS size, a finished progress bar is saved as its
finished line (not the 0% it started at), a slider carries a PNG picture beside the widget, an animation is a
plain PNG. About 10 s (kernel start and imports).
"""
import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from PIL import Image  # noqa: E402

from course_utils import show_images  # noqa: E402

CELLS = {
    "setup": """
import matplotlib.pyplot as plt, torch
from ipywidgets import FloatSlider
import course_utils as cu
cu.set_lecture_style()
images = torch.linspace(-1, 1, 4 * 28 * 28).reshape(4, 1, 28, 28)
""",
    "figure": "fig, ax = plt.subplots(figsize=(4, 2)); ax.plot([0, 1]); plt.show()",
    "bar": "for _ in cu.tqdm(range(40), desc='sampling'): pass",
    "bar-early": """
bar = cu.tqdm(total=100, desc='training images')
bar.update(30)
cu.jupyter.end_early(bar, 'time budget reached')
bar.close()
""",
    "bar-gone": "for _ in cu.tqdm(range(5), desc='inner', leave=False): pass",
    "slider": """
def show(scale=0.5):
    cu.show_images(images * scale, nrow=4, title=f"scale {scale}")
    plt.show()
cu.interact_with_preview(show, preview=[{"scale": 0.2}, {"scale": 1.0}], scale=FloatSlider(value=0.5, min=0, max=1));
""",
    "animation": "cu.animate_grids([images * s for s in (0.1, 0.5, 1.0)], titles=['a', 'b', 'c'])",
}
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source.strip(), id=name) for name, source in CELLS.items()]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return {cell.id: cell.outputs for cell in nb.cells}


def _png(output):
    return Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"])))


def _plain(outputs):
    return [o["data"]["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]


def test_figures_are_saved_at_twice_their_display_size(outputs):
    (figure,) = [o for o in outputs["figure"] if "image/png" in o.get("data", {})]
    width = figure["metadata"]["image/png"]["width"]
    assert abs(_png(figure).width - 2 * width) <= 1 and 300 < width < 400   # 4 in at 100 CSS px/in, cropped


def test_finished_progress_bar_is_saved_as_its_finished_line(outputs):
    (bar,) = outputs["bar"]
    assert WIDGET in bar["data"]                                       # live: the widget
    assert "100%" in bar["data"]["text/plain"] and "40/40" in bar["data"]["text/plain"]   # saved: the end


def test_bar_stopped_early_on_purpose_is_saved_finished_with_the_reason(outputs):
    (text,) = _plain(outputs["bar-early"])
    assert "100%" in text and "30/30" in text and "time budget reached" in text


def test_bar_that_does_not_stay_leaves_no_text(outputs):
    assert all(not text.strip() for text in _plain(outputs["bar-gone"]))


def test_slider_output_carries_a_picture_of_its_preview_settings(outputs):
    (slider,) = [o for o in outputs["slider"] if WIDGET in o.get("data", {})]
    picture = _png(slider)
    assert abs(slider["metadata"]["image/png"]["width"] * 2 - picture.width) <= 1
    assert picture.height > 2 * 28 * 2 * 2                             # two previews stacked, each four 28x28 images at 2x
    assert "scale = 0.2" in slider["data"]["text/plain"] and "interactive(" not in slider["data"]["text/plain"]


def test_animation_is_a_plain_animated_png(outputs):
    (animation,) = outputs["animation"]
    assert set(animation["data"]) == {"image/png", "text/plain"}       # no HTML, no script: nothing to trust
    assert _png(animation).n_frames == 3


def test_course_utils_makes_its_progress_bars_with_course_utils_jupyter():
    """Every bar the course draws is one whose finished line is saved (a tqdm.auto bar is saved at 0%)."""
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "course_utils"
    offenders = [p.name for p in package.glob("*.py") if p.name != "jupyter.py" and "tqdm.auto" in p.read_text()]
    assert not offenders, f"import tqdm from .jupyter in {offenders}"


def test_preview_png_stacks_one_figure_per_setting_and_cleans_up():
    from course_utils.jupyter import preview_png

    calls = []

    def draw(scale=1.0):
        calls.append(scale)
        show_images(torch.full((3, 1, 8, 8), scale), nrow=3, title=f"scale {scale}")
        print("printed while drawing")            # a preview prints nothing into the notebook
        plt.show()

    show = plt.show
    open_before = plt.get_fignums()
    png, width = preview_png(draw, [{"scale": -1.0}, {"scale": 1.0}])
    picture = Image.open(io.BytesIO(png))
    assert calls == [-1.0, 1.0] and plt.show is show and plt.get_fignums() == open_before
    one, _ = preview_png(draw, [{"scale": 1.0}])
    assert picture.height > 2 * Image.open(io.BytesIO(one)).height - 40    # two figures, one above the other
    assert abs(picture.width - 2 * width) <= 1
    with pytest.raises(ValueError, match="no figure"):
        preview_png(lambda scale: None, [{"scale": 1.0}])
