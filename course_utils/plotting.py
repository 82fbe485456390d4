"""Figures for a lecture screen: image grids, schedule curves, animations (notebook 00 onwards).

``set_lecture_style`` makes every later figure readable from the back of a room and sharp on a 2x screen:
figures are laid out at ``LECTURE_DPI`` CSS pixels per inch and rendered at twice that ("retina"), with
fonts sized for a projector. Image grids give each 28x28 image ``size`` inches (about 120 CSS pixels).
"""
import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["set_lecture_style", "image_grid", "show_images", "show_image_rows", "plot_schedules", "animate_grids",
           "figure_png", "compact_png"]

LECTURE_DPI = 100      # CSS pixels per figure inch; figures are rendered at 2 * LECTURE_DPI device pixels per inch
PIXEL_RATIO = 2        # device pixels per CSS pixel of a 2x ("retina") screen

LECTURE_RC = {
    "figure.figsize": (10, 4.5), "figure.dpi": LECTURE_DPI, "savefig.dpi": PIXEL_RATIO * LECTURE_DPI,
    "font.size": 15, "axes.titlesize": 17, "axes.labelsize": 15, "xtick.labelsize": 13, "ytick.labelsize": 13,
    "legend.fontsize": 13, "figure.titlesize": 18, "lines.linewidth": 2,
    "axes.grid": True, "grid.alpha": 0.3, "image.cmap": "gray",
}

SCHEDULE_LABELS = {
    "betas": r"$\beta_t$ (betas)",
    "alphas": r"$\alpha_t$ (alphas)",
    "alphas_cumprod": r"$\bar\alpha_t$ (alphas_cumprod)",
    "sqrt_alphas_cumprod": r"$\sqrt{\bar\alpha_t}$ (signal scale)",
    "sqrt_one_minus_alphas_cumprod": r"$\sqrt{1-\bar\alpha_t}$ (noise scale)",
    "posterior_variance": r"$\tilde\beta_t$ (posterior_variance)",
    "snr": r"SNR$_t$ (snr)",
    "log_snr": r"$\log$ SNR$_t$ (log_snr)",
}


def set_lecture_style():
    """Projector-sized fonts, a grey colormap, and figures rendered at 2x for sharp text on any screen.

    Font sizes in the notebooks are relative (``"small"``, ``"large"``), so they all follow ``font.size``.
    In a Jupyter kernel every figure is then shown as ``figure_png`` makes it: a PNG with twice the pixels
    ("retina"), displayed at the figure's size in CSS pixels (``figsize * LECTURE_DPI``), in 256 colours.
    """
    plt.rcParams.update(LECTURE_RC)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "image/png" in shell.display_formatter.formatters:
        # Importing the inline backend configures it now; were that left to the first figure, it would undo this.
        import matplotlib_inline.backend_inline  # noqa: F401
        from IPython.core.pylabtools import select_figure_formats
        from matplotlib.figure import Figure

        select_figure_formats(shell, {"png"})          # one picture per figure (no SVG/PDF copies) ...
        shell.display_formatter.formatters["image/png"].for_type(Figure, _figure_display)   # ... made here


def _figure_display(fig):
    """The inline backend's PNG of ``fig``: (base64 PNG, {width, height} in CSS pixels); None for an empty figure."""
    if not fig.axes and not fig.texts and not fig.images:
        return None
    png, width = figure_png(fig)
    height = int.from_bytes(png[20:24], "big")
    return base64.b64encode(png).decode("ascii"), {"width": width, "height": round(height / PIXEL_RATIO)}


def image_grid(images, nrow=8, padding=1):
    """Tile a batch [B, C, H, W] in [-1, 1] into one [H', W'] (C=1) or [H', W', 3] array in [0, 1]."""
    from torchvision.utils import make_grid

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape [B, C, H, W], got {shape}")
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, pad_value=1.0)
    grid = (grid + 1) / 2
    return grid[0].numpy() if images.shape[1] == 1 else grid.permute(1, 2, 0).numpy()


def _grid_shape(n, nrow):
    ncol = min(nrow, n)
    return ncol, (n + ncol - 1) // ncol


def _grid_figsize(images, nrow, size, extra_height=0.0):
    """(width, height) in inches that give each image ``size`` inches of width, plus ``extra_height`` for text."""
    ncol, rows = _grid_shape(images.shape[0], nrow)
    aspect = images.shape[-2] / images.shape[-1]
    return size * ncol, size * rows * aspect + extra_height


def _label_columns(ax, images, ncol, col_labels, padding=1):
    """Put one label above each image column of a grid drawn by ``image_grid`` on ``ax``."""
    if len(col_labels) != ncol:
        raise ValueError(f"col_labels needs one label per column ({ncol}), got {len(col_labels)}")
    width = images.shape[-1]
    centers = [padding + c * (width + padding) + (width - 1) / 2 for c in range(ncol)]
    ax.axis("on")
    ax.set_xticks(centers, [str(label) for label in col_labels], fontsize="small")
    ax.set_yticks([])
    ax.tick_params(top=False, bottom=False, labeltop=True, labelbottom=False, pad=2)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def show_images(images, nrow=8, labels=None, title=None, ax=None, size=1.2, col_labels=None):
    """Show a batch [B, C, H, W] in [-1, 1] as a grid, each image ``size`` inches wide.

    ``labels`` (one string per image) titles each image; ``col_labels`` (one per column) labels the columns
    above the grid, aligned with them; ``ax`` draws into an existing axis instead of a new figure.
    """
    ncol, rows = _grid_shape(images.shape[0], nrow)
    if labels is not None:
        fig, axes = plt.subplots(rows, ncol, figsize=(size * 1.15 * ncol, size * 1.45 * rows + (0.5 if title else 0)),
                                 squeeze=False, layout="constrained")
        for i, axis in enumerate(axes.flat):
            axis.axis("off")
            if i < images.shape[0]:
                axis.imshow(image_grid(images[i : i + 1], nrow=1, padding=0), cmap="gray", vmin=0, vmax=1)
                axis.set_title(str(labels[i]), fontsize="small")
        if title:
            fig.suptitle(title)
        return fig
    if ax is None:
        extra = (0.5 if title else 0) + (0.4 if col_labels is not None else 0)
        fig, ax = plt.subplots(figsize=_grid_figsize(images, nrow, size, extra), layout="constrained")
    ax.imshow(image_grid(images, nrow=nrow), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if col_labels is not None:
        _label_columns(ax, images, ncol, col_labels)
    if title:
        ax.set_title(title)
    return ax.figure


def show_image_rows(rows, col_labels=None, title=None, nrow=None, size=1.2):
    """One titled grid per entry of ``rows`` (row title -> batch [B, C, H, W] in [-1, 1]), stacked with aligned columns.

    ``col_labels`` (one per column) labels the columns above the first grid, so each label sits over its
    column; ``nrow`` images per line (default: all of a batch on one line). Returns the figure.
    """
    batches = list(rows.values())
    nrow = nrow or max(batch.shape[0] for batch in batches)
    widest = max(batches, key=lambda batch: min(nrow, batch.shape[0]))
    heights = [_grid_figsize(batch, nrow, size, 0.5)[1] for batch in batches]
    heights[0] += 0.4 if col_labels is not None else 0
    fig, axes = plt.subplots(len(batches), 1, squeeze=False, gridspec_kw={"height_ratios": heights}, layout="constrained",
                             figsize=(_grid_figsize(widest, nrow, size)[0], sum(heights) + (0.5 if title else 0)))
    for i, (ax, (row_title, batch)) in enumerate(zip(axes[:, 0], rows.items())):
        show_images(batch, nrow=nrow, ax=ax, title=row_title, col_labels=col_labels if i == 0 else None)
    if title:
        fig.suptitle(title)
    return fig


def plot_schedules(schedules, quantities=("betas", "alphas_cumprod", "log_snr"), continuous_time=False):
    """Plot schedule arrays side by side; ``schedules`` maps a legend label to a ``Schedule``.

    With ``continuous_time`` the x axis is t/T, so schedules with different T can be compared.
    """
    fig, axes = plt.subplots(1, len(quantities), figsize=(5.2 * len(quantities), 4.4), squeeze=False)
    for ax, name in zip(axes[0], quantities):
        for label, schedule in schedules.items():
            steps = torch.arange(schedule.T, dtype=torch.float64)
            x = (steps + 1) / schedule.T if continuous_time else steps
            ax.plot(x.numpy(), getattr(schedule, name).numpy(), label=label)
        ax.set_title(SCHEDULE_LABELS.get(name, name))
        ax.set_xlabel("t / T" if continuous_time else "timestep t (0-based)")
        if name in ("betas", "snr"):
            ax.set_yscale("log")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def compact_png(picture):
    """PNG bytes of a PIL image in at most 256 colours: grey stays 8-bit grey, colour becomes a 256-colour palette.

    Figures are flat colours plus anti-aliased edges, so an adaptive palette looks the same at a third of the
    size of 24-bit colour (a 2x figure then costs about what a 1x one did).
    """
    rgb = np.asarray(picture.convert("RGB"))
    if (rgb == rgb[..., :1]).all():
        compact = picture.convert("L")
    else:
        from PIL import Image

        compact = picture.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    compact.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def figure_png(fig, pixel_ratio=PIXEL_RATIO):
    """The figure as compact PNG bytes at ``pixel_ratio`` device pixels per CSS pixel, and its width in CSS pixels.

    Cropped to what is drawn (like the inline backend), so labels outside the axes are kept.
    """
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=pixel_ratio * fig.dpi, bbox_inches="tight", facecolor="white")
    picture = Image.open(buffer)
    return compact_png(picture), round(picture.width / pixel_ratio)


def animate_grids(frames, titles=None, interval=120, nrow=8, size=1.2, pause_ms=1500, pixel_ratio=PIXEL_RATIO):
    """Animate a list of image batches [B, C, H, W] (one grid per frame) as an animated PNG; returns an ``Image``.

    An animated PNG is an ordinary ``image/png`` output: it plays in JupyterLab before any cell runs (no
    trusted JavaScript needed), on GitHub, on a static site and in an HTML export. It loops, holding the
    last frame for ``pause_ms``; ``interval`` ms per frame. Frames are rendered at ``pixel_ratio`` x the
    figure size, so they stay sharp on a 2x screen.
    """
    from IPython.display import Image
    from PIL import Image as PILImage

    if not frames:
        raise ValueError("animate_grids needs at least one frame")
    fig, ax = plt.subplots(figsize=_grid_figsize(frames[0], nrow, size, 0.5 if titles is not None else 0.1),
                           layout="constrained")
    image = ax.imshow(image_grid(frames[0], nrow=nrow), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    dpi = pixel_ratio * fig.dpi
    pictures = []
    try:
        for i, frame in enumerate(frames):
            image.set_data(image_grid(frame, nrow=nrow))
            if titles is not None:
                ax.set_title(titles[i])
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
            rgb = np.asarray(PILImage.open(buffer).convert("RGB"))
            grey = bool((rgb == rgb[..., :1]).all())
            pictures.append(PILImage.fromarray(rgb[..., 0] if grey else rgb))
    finally:
        plt.close(fig)
    if any(p.mode != pictures[0].mode for p in pictures):
        pictures = [p.convert("RGB") for p in pictures]
    durations = [interval] * (len(pictures) - 1) + [max(interval, pause_ms)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="PNG", save_all=True, append_images=pictures[1:], duration=durations, loop=0,
                     optimize=True)
    return Image(data=buffer.getvalue(), format="png", width=round(pictures[0].width / pixel_ratio))
