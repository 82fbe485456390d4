"""Plotting helpers: shapes of what they draw, and clear errors."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils import animate_grids, image_grid, make_schedule, plot_schedules, show_images  # noqa: E402


def test_image_grid_maps_minus_one_one_to_unit_interval():
    imgs = torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0)])
    grid = image_grid(imgs, nrow=2, padding=0)
    assert grid.shape == (4, 8)
    assert grid[:, :4].max() == 0.0 and grid[:, 4:].min() == 1.0


def test_image_grid_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*\(4, 4\)"):
        image_grid(torch.zeros(4, 4))


def test_show_images_with_labels_and_schedules_plot():
    fig = show_images(torch.zeros(5, 1, 8, 8), nrow=3, labels=list("abcde"), title="t")
    assert len([a for a in fig.axes if a.images]) == 5
    fig2 = plot_schedules({"lin": make_schedule("linear", 100), "cos": make_schedule("cosine", 100)})
    assert len(fig2.axes) == 3 and len(fig2.axes[0].lines) == 2
    plt.close("all")


def test_animate_grids_makes_a_looping_animated_png():
    """An animated PNG plays wherever a PNG shows (untrusted notebook, static site), unlike a JavaScript player."""
    import io

    from PIL import Image, ImageStat

    frames = [torch.full((2, 1, 28, 28), v) for v in (-1.0, 0.0, 1.0)]
    picture = animate_grids(frames, titles=["a", "b", "c"], interval=100, pause_ms=900)
    assert picture.format == "png" and picture.width > 0
    apng = Image.open(io.BytesIO(picture.data))
    assert apng.is_animated and apng.n_frames == 3 and apng.info["loop"] == 0
    assert apng.width == 2 * picture.width                      # rendered at 2x for sharp 2x screens
    greys = []
    for i in range(3):
        apng.seek(i)
        greys.append(ImageStat.Stat(apng.convert("L")).mean[0])
    assert greys[0] < greys[1] < greys[2]                       # the frames are the batches, in order
    assert apng.info["duration"] == 900                         # the last frame is held
    assert len(picture.data) < 300_000


def _image_column_spans(ax, n_columns, width=8, padding=1):
    """Display-pixel x ranges of the image columns of a grid drawn by image_grid on ``ax``."""
    to_pixels = ax.transData.transform
    return [(to_pixels((padding + c * (width + padding) - 0.5, 0))[0],
             to_pixels((padding + c * (width + padding) + width - 0.5, 0))[0]) for c in range(n_columns)]


def test_lecture_style_renders_at_twice_the_css_size_with_projector_fonts():
    from course_utils import figure_png, set_lecture_style
    from course_utils.plotting import LECTURE_DPI

    with plt.rc_context():
        set_lecture_style()
        assert plt.rcParams["font.size"] >= 14 and plt.rcParams["figure.dpi"] == LECTURE_DPI
        fig = show_images(torch.zeros(6, 1, 28, 28), nrow=6)
        png, css_width = figure_png(fig)
        plt.close(fig)
    pixels_wide = int.from_bytes(png[16:20], "big")
    assert pixels_wide == 2 * css_width
    # six images of 28 pixels, each at least 100 CSS pixels wide on the page: a garment is visible from afar
    assert css_width >= 6 * 100


def test_show_images_gives_each_image_a_hundred_css_pixels():
    from course_utils import set_lecture_style

    with plt.rc_context():
        set_lecture_style()
        fig = show_images(torch.zeros(12, 1, 28, 28), nrow=6)
        fig.canvas.draw()
        ax = fig.axes[0]
        spans = _image_column_spans(ax, 6, width=28)
        plt.close(fig)
    assert min(right - left for left, right in spans) >= 100


def test_column_labels_sit_over_their_columns():
    labels = ["0", "0.1", "0.25", "0.5"]
    fig = show_images(torch.zeros(8, 1, 8, 8), nrow=4, col_labels=labels)
    fig.canvas.draw()
    ax = fig.axes[0]
    texts = [t for t in ax.get_xticklabels() if t.get_text()]
    assert [t.get_text() for t in texts] == labels
    for (left, right), text in zip(_image_column_spans(ax, 4), texts):
        box = text.get_window_extent()
        assert left < (box.x0 + box.x1) / 2 < right, f"label {text.get_text()} is not over its column"
    with pytest.raises(ValueError, match="one label per column"):
        show_images(torch.zeros(8, 1, 8, 8), nrow=4, col_labels=labels[:3])
    plt.close("all")


def test_show_image_rows_titles_rows_and_labels_columns_once():
    from course_utils import show_image_rows

    rows = {"linear": torch.zeros(5, 1, 8, 8), "cosine": torch.ones(5, 1, 8, 8)}
    fig = show_image_rows(rows, col_labels=[f"t/T={f}" for f in (0, 0.25, 0.5, 0.75, 1)])
    assert [ax.get_title() for ax in fig.axes] == ["linear", "cosine"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][0] == "t/T=0"
    assert not fig.axes[1].axison                               # later rows: no labels drawn
    plt.close("all")
