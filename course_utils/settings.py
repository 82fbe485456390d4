"""Environment settings: the one place that reads ``COURSE_QUICK`` and ``COURSE_PRECISION``, and the repository root.

With ``COURSE_QUICK=1`` (CI sets it) every notebook shrinks its training and
sampling so that it still runs end to end in a minute or two; without it the
notebooks do the real thing. A notebook states both sizes in its parameters cell::

    n_images = pick(full=150_000, quick=2_000)

``COURSE_PRECISION`` chooses the compute precision of the network: ``auto`` (the default:
bfloat16 only where it is measured faster, see ``course_utils.device.compute_dtype``),
``fp32`` or ``bf16``.
"""
import os
from pathlib import Path

__all__ = ["REPO_ROOT", "repo_relative", "is_quick", "pick", "precision_setting", "PRECISION_SETTINGS"]

REPO_ROOT = Path(__file__).resolve().parent.parent  # the course repository (notebooks/, checkpoints/, runs/, data/)

_FALSE_WORDS = {"", "0", "false", "no", "off"}
_TRUE_WORDS = {"1", "true", "yes", "on"}
PRECISION_SETTINGS = ("auto", "fp32", "bf16")


def is_quick():
    """Return True when the environment variable COURSE_QUICK is set to a true value (1/true/yes/on)."""
    value = os.environ.get("COURSE_QUICK", "0").strip().lower()
    if value not in _FALSE_WORDS | _TRUE_WORDS:
        raise ValueError(f"COURSE_QUICK={value!r} is not understood; use 1 (quick mode) or 0 (full mode)")
    return value in _TRUE_WORDS


def pick(full, quick):
    """Return ``quick`` in quick mode (COURSE_QUICK=1) and ``full`` otherwise."""
    return quick if is_quick() else full


def precision_setting():
    """The value of COURSE_PRECISION: 'auto' (default), 'fp32' or 'bf16'; anything else is a ValueError."""
    value = os.environ.get("COURSE_PRECISION", "auto").strip().lower() or "auto"
    if value not in PRECISION_SETTINGS:
        raise ValueError(f"COURSE_PRECISION={value!r} is not one of {', '.join(PRECISION_SETTINGS)}")
    return value


def repo_relative(path):
    """``path`` relative to the repository when it lies inside it, so printed outputs show no machine's folders."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return Path(path)
