"""What a notebook shows while it runs, and what it keeps for a reader who opens it without running it.

A saved notebook opened in JupyterLab before any cell runs is *untrusted*: widgets and JavaScript are not
drawn, only "safe" outputs (text, images). Two helpers make the saved outputs readable anyway:

``tqdm``
    tqdm.auto's progress bar (a widget in Jupyter, text elsewhere). In Jupyter the finished bar is also
    saved as its final text line (e.g. ``DDPM sampling: 100%|##########| 250/250 [00:15<00:00]``) instead
    of the ``0%`` line the widget had when it first appeared.
``interact_with_preview``
    ``ipywidgets.interact`` whose output also holds a static picture of the function at a few settings:
    a trusted notebook with a running kernel shows the live control, anything else shows the picture.
"""
import base64
import contextlib
import io

import matplotlib.pyplot as plt
from ipywidgets import interactive
from tqdm.auto import tqdm as _auto_tqdm
from tqdm.notebook import tqdm_notebook as _tqdm_notebook

from .plotting import PIXEL_RATIO, compact_png, figure_png

__all__ = ["tqdm", "end_early", "interact_with_preview", "preview_png"]


class _SavedFinishedTqdm(_tqdm_notebook):
    """The Jupyter widget bar, displayed with a display id; on close the display is updated, so the saved
    output's text/plain is the finished line (the widget itself is unchanged)."""

    def __init__(self, *args, **kwargs):
        show = kwargs.pop("display", True)
        self._display_handle = None
        super().__init__(*args, display=False, **kwargs)
        if show and not self.disable and self.delay <= 0:
            from IPython.display import display

            self._display_handle = display(self.container, display_id=True)
            self.displayed = True

    def close(self):
        handle, self._display_handle = self._display_handle, None
        super().close()
        if handle is not None:
            if self.leave:
                handle.update(self.container)
            else:
                handle.update({"text/plain": ""}, raw=True)


# tqdm.auto picks the widget bar inside a Jupyter kernel with ipywidgets, else the text bar.
tqdm = _SavedFinishedTqdm if issubclass(_auto_tqdm, _tqdm_notebook) else _auto_tqdm


def end_early(bar, note):
    """Let ``bar`` finish at the amount it counted (a planned early stop, e.g. a time budget), saying why.

    Without this a bar closed below its total is drawn as failed (red); the work it did is its real total.
    """
    if getattr(bar, "disable", False):  # a switched-off bar (progress=False) has nothing to draw
        return
    if bar.total and bar.n < bar.total:
        bar.total = bar.n
        container = getattr(bar, "container", None)      # the Jupyter widget bar
        if container is not None:
            container.children[1].max = bar.n * (1 if bar.unit_scale is True else bar.unit_scale or 1)
    bar.set_description(f"{bar.desc.rstrip(': ')} ({note})", refresh=True)


def _caption(setting):
    return ",  ".join(f"{name} = {value!r}" for name, value in setting.items())


def preview_png(function, preview, pixel_ratio=PIXEL_RATIO):
    """Call ``function(**setting)`` for each setting in ``preview`` and stack every figure it draws into one PNG.

    ``plt.show`` and printing are silenced while it runs; each figure gets a caption with its setting.
    Returns (PNG bytes, width in CSS pixels).
    """
    from PIL import Image

    pictures = []
    for setting in preview:
        before = set(plt.get_fignums())
        with contextlib.redirect_stdout(io.StringIO()), _silenced_show():
            function(**setting)
        for number in [n for n in plt.get_fignums() if n not in before]:
            fig = plt.figure(number)
            fig.text(0.0, 1.0, _caption(setting), ha="left", va="bottom", fontsize="small", color="0.35")
            png, _ = figure_png(fig, pixel_ratio)
            plt.close(fig)
            pictures.append(Image.open(io.BytesIO(png)).convert("RGB"))
    if not pictures:
        raise ValueError("the function drew no figure for any preview setting")
    gap = 12 * pixel_ratio
    width = max(p.width for p in pictures)
    sheet = Image.new("RGB", (width, sum(p.height for p in pictures) + gap * (len(pictures) - 1)), "white")
    y = 0
    for picture in pictures:
        sheet.paste(picture, (0, y))
        y += picture.height + gap
    return compact_png(sheet), round(width / pixel_ratio)


@contextlib.contextmanager
def _silenced_show():
    show = plt.show
    plt.show = lambda *args, **kwargs: None
    try:
        yield
    finally:
        plt.show = show


class _InteractiveWithPicture(interactive):
    """An ``ipywidgets.interactive`` whose display also carries a PNG (``picture``: base64 PNG, CSS width, text)."""
    picture = None

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        if self.picture is None:
            return data
        png, width, text = self.picture
        return dict(data, **{"image/png": png, "text/plain": text}), {"image/png": {"width": width}}


def interact_with_preview(function, preview, **controls):
    """``ipywidgets.interact(function, **controls)`` plus a static picture of ``function`` at each ``preview`` setting.

    ``preview`` is a list of keyword settings, e.g. ``[{"beta": 0.1}, {"beta": 0.5}, {"beta": 0.9}]``.
    The picture travels in the same output as the control (as ``image/png`` beside the widget): JupyterLab
    shows the live control once the cell runs, and the picture where a widget cannot be drawn (the saved
    notebook opened before running, GitHub, an HTML export without widget state). Returns the widget.
    """
    from IPython.display import display

    png, width = preview_png(function, preview)
    shown = ";  ".join(_caption(setting) for setting in preview)
    widget = _InteractiveWithPicture(function, **controls)
    widget.picture = (base64.b64encode(png).decode("ascii"), width,
                      f"interactive figure, pictured at: {shown}. Run the cell to move the controls.")
    display(widget)
    return widget
