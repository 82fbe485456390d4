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


def test_animate_grids_makes_html():
    html = animate_grids([torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)], titles=["a", "b"])
    assert "<script" in html.data
