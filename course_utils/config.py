"""Quick mode: the one place that reads the ``COURSE_QUICK`` environment variable.

With ``COURSE_QUICK=1`` (CI sets it) every notebook shrinks its training and
sampling so that it still runs end to end in a minute or two; without it the
notebooks do the real thing. A notebook states both sizes in its parameters cell::

    n_steps = pick(full=3000, quick=20)
"""
import os

__all__ = ["is_quick", "pick"]

_FALSE_WORDS = {"", "0", "false", "no", "off"}


def is_quick():
    """Return True when the environment variable COURSE_QUICK is set to a true value."""
    return os.environ.get("COURSE_QUICK", "0").strip().lower() not in _FALSE_WORDS


def pick(full, quick):
    """Return ``quick`` in quick mode (COURSE_QUICK=1) and ``full`` otherwise."""
    return quick if is_quick() else full
