"""Figures for a lecture screen: image grids, schedule curves, animations (notebook 00 onwards)."""
import matplotlib.pyplot as plt
import torch
from matplotlib import animation

__all__ = ["set_lecture_style", "image_grid", "show_images", "plot_schedules", "animate_grids"]

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
    """Large fonts, grid lines and a grey colormap, for figures read on a projector."""
    plt.rcParams.update({
        "figure.figsize": (10, 4.5), "figure.dpi": 80, "font.size": 13, "axes.titlesize": 15,
        "axes.labelsize": 13, "legend.fontsize": 12, "axes.grid": True, "grid.alpha": 0.3,
        "image.cmap": "gray",
    })


def image_grid(images, nrow=8, padding=1):
    """Tile a batch [B, C, H, W] in [-1, 1] into one [H', W'] (C=1) or [H', W', 3] array in [0, 1]."""
    from torchvision.utils import make_grid

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape [B, C, H, W], got {shape}")
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, pad_value=1.0)
    grid = (grid + 1) / 2
    return grid[0].numpy() if images.shape[1] == 1 else grid.permute(1, 2, 0).numpy()


def show_images(images, nrow=8, labels=None, title=None, ax=None, size=1.2):
    """Show a batch [B, C, H, W] in [-1, 1] as a grid; ``labels`` (one string per image) titles each cell."""
    if labels is not None:
        n = images.shape[0]
        ncol = min(nrow, n)
        rows = (n + ncol - 1) // ncol
        fig, axes = plt.subplots(rows, ncol, figsize=(size * 1.4 * ncol, size * 1.85 * rows), squeeze=False)
        for i, axis in enumerate(axes.flat):
            axis.axis("off")
            if i < n:
                axis.imshow(image_grid(images[i : i + 1], nrow=1, padding=0), cmap="gray", vmin=0, vmax=1)
                axis.set_title(str(labels[i]), fontsize=10)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig
    if ax is None:
        ncol = min(nrow, images.shape[0])
        rows = (images.shape[0] + ncol - 1) // ncol
        fig, ax = plt.subplots(figsize=(size * ncol, size * rows + (0.5 if title else 0)))
    ax.imshow(image_grid(images, nrow=nrow), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax.figure


def plot_schedules(schedules, quantities=("betas", "alphas_cumprod", "log_snr"), continuous_time=False):
    """Plot schedule arrays side by side; ``schedules`` maps a legend label to a ``Schedule``.

    With ``continuous_time`` the x axis is t/T, so schedules with different T can be compared.
    """
    fig, axes = plt.subplots(1, len(quantities), figsize=(5.2 * len(quantities), 4.2), squeeze=False)
    for ax, name in zip(axes[0], quantities):
        for label, schedule in schedules.items():
            steps = torch.arange(schedule.T, dtype=torch.float64)
            x = (steps + 1) / schedule.T if continuous_time else steps
            ax.plot(x.numpy(), getattr(schedule, name).numpy(), label=label, linewidth=2)
        ax.set_title(SCHEDULE_LABELS.get(name, name))
        ax.set_xlabel("t / T" if continuous_time else "timestep t (0-based)")
        if name in ("betas", "snr"):
            ax.set_yscale("log")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def animate_grids(frames, titles=None, interval=120, nrow=8, size=1.2):
    """Animate a list of image batches [B, C, H, W] (one grid per frame); returns HTML for the notebook.

    The animation is embedded as JavaScript frames, so it plays in JupyterLab and on GitHub's
    rendered notebook alike, and needs no ffmpeg.
    """
    from IPython.display import HTML

    first = image_grid(frames[0], nrow=nrow)
    ncol = min(nrow, frames[0].shape[0])
    rows = (frames[0].shape[0] + ncol - 1) // ncol
    fig, ax = plt.subplots(figsize=(size * ncol, size * rows + 0.5))
    image = ax.imshow(first, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")

    def update(i):
        image.set_data(image_grid(frames[i], nrow=nrow))
        if titles is not None:
            ax.set_title(titles[i])
        return (image,)

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html
