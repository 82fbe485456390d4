"""Numbers that the walkthroughs and answers quote, checked against where they come from.

Most quotes come from a notebook's committed output: ``notebook_value(notebook, cell_id, pattern)`` finds the cell by
its id, joins its text outputs and returns the regex's first group, exactly as printed. ``QUOTES`` lists each quote as
(document, template, {field: (notebook, cell id, pattern)}); the test fills the template with the printed values and
checks that the document contains the result. When a notebook is re-run and a number changes, the failure message
names the document, the text it should contain and the cell the number comes from. To add a quote, add a row.

A few quoted numbers live only in a figure (a plot title) or are computed from the package; those have their own
tests below, which recompute them the way the notebook cell or the document does.
"""
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch

import course_utils as cu

ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=None)
def _notebook(notebook):
    return json.loads((ROOT / notebook).read_text(encoding="utf-8"))


def cell_output_text(notebook, cell_id):
    """The text a cell printed in the committed notebook (stream outputs and text/plain results, joined)."""
    for cell in _notebook(notebook)["cells"]:
        if cell.get("id") == cell_id:
            parts = []
            for out in cell.get("outputs", []):
                if "text" in out:
                    parts.append("".join(out["text"]))
                elif "text/plain" in out.get("data", {}) and out.get("output_type") != "display_data":
                    parts.append("".join(out["data"]["text/plain"]))
            return "".join(parts)
    raise KeyError(f"{notebook} has no cell with id {cell_id!r}")


def notebook_value(notebook, cell_id, pattern, group=1):
    """The value a notebook printed: first match of ``pattern`` (multiline) in the cell's committed output."""
    text = cell_output_text(notebook, cell_id)
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{notebook}#{cell_id}: pattern {pattern!r} not found in the committed output:\n{text}"
    return match.group(group)


def assert_document_quotes(document, expected, source):
    """``expected`` must occur in the document; runs of whitespace (line breaks included) count as one space."""
    text = " ".join((ROOT / document).read_text(encoding="utf-8").split())
    assert " ".join(expected.split()) in text, (
        f"{document} should contain {expected!r} (the number as {source} prints it). If the notebook was re-run "
        f"and the number changed, update it in {document}."
    )


NB06 = "notebooks/06_reverse_sampling.ipynb"
_SEED_STATS = {  # notebook 06, section 8: the T=150 unscaled linear schedule sampled from N(0, I), and real test images
    "noise_mean": (NB06, "seed-stats", r"^seed schedule, from N\(0, I\)\s+mean (\S+)"),
    "real_mean": (NB06, "seed-stats", r"^real test images\s+mean (\S+)"),
    "noise_entropy": (NB06, "seed-stats", r"^seed schedule, from N\(0, I\).*class entropy (\S+)"),
    "real_entropy": (NB06, "seed-stats", r"^real test images.*class entropy (\S+)"),
}

_SEED_FROM_Q = {  # the same T=150 network started from q(x_T | x_0)
    "q_mean": (NB06, "seed-stats", r"^seed schedule, from q\(x_T \| x_0\)\s+mean (\S+)"),
    "q_entropy": (NB06, "seed-stats", r"^seed schedule, from q\(x_T \| x_0\).*class entropy (\S+)"),
}
_CLIPPING = {  # notebook 06, section 6: mean |difference| to the clipped posterior-variance row
    "no_clip": (NB06, "variances", r"^posterior variance, no clipping\s+mean \|difference to the first row\| = (\S+)"),
    "beta": (NB06, "variances", r"^beta_t variance, clipped\s+mean \|difference to the first row\| = (\S+)"),
}
_QUALITY = {  # notebook 06, section 3: notebook 05's model scored by cu.sample_quality (DDIM, 50 steps)
    "fid": (NB06, "quality", r"FID (\S+) ="),
    "ratio": (NB06, "quality", r"= (\S+)x the floor"),
    "rarest": (NB06, "quality", r"rarest class (\S+)$"),
}

NB07 = "notebooks/07_fast_sampling.ipynb"
_SAMPLERS = {  # notebook 07, section 3: FID of 200 samples per sampler (DDIM eta = 0 and 1, DDPM with all T steps)
    "ddim_10": (NB07, "quality-table", r"^DDIM\s+10\s+(\S+)"),
    "eta1_10": (NB07, "quality-table", r"^DDIM eta=1 \(DDPM-like\)\s+10\s+(\S+)"),
    "ddim_100": (NB07, "quality-table", r"^DDIM\s+100\s+(\S+)"),
    "eta1_100": (NB07, "quality-table", r"^DDIM eta=1 \(DDPM-like\)\s+100\s+(\S+)"),
    "ddpm": (NB07, "quality-table", r"^DDPM \(Alg\. 2\)\s+\d+\s+(\S+)"),
    "ddpm_steps": (NB07, "quality-table", r"^DDPM \(Alg\. 2\)\s+(\d+)"),
}
_INVERSION = {  # notebook 07, section 4: DDIM round trip x_0 -> x_T -> x_0
    "round_trip": (NB07, "invert", r"^round trip error .*?: (\S+);"),
    "unrelated": (NB07, "invert", r"between random samples and the images: (\S+)$"),
}

NB08 = "notebooks/08_score_view.ipynb"
_PC_IMAGE = {  # notebook 08, section 5: FID of 100 samples, DDPM (predictor only) and PC with 1 Langevin corrector
    "ddpm": (NB08, "pc-image", r"^DDPM \(predictor only\)\s+\d+\s+(\S+)"),
    "ddpm_nfe": (NB08, "pc-image", r"^DDPM \(predictor only\)\s+(\d+)"),
    "pc": (NB08, "pc-image", r"^PC, 1 Langevin corrector\s+\d+\s+(\S+)"),
    "pc_nfe": (NB08, "pc-image", r"^PC, 1 Langevin corrector\s+(\d+)"),
    "floor": (NB08, "pc-image", r"^DDPM \(predictor only\)\s+\d+\s+\S+\s+(\S+)"),
}

NB09 = "notebooks/09_classifier_free_guidance.ipynb"
_SWEEP = {  # notebook 09, section 4: FID of 250 class-balanced samples per guidance weight w
    f"w{name}": (NB09, "sweep", rf"^\s+{w}\s+\S+\s+(\S+)") for name, w in
    [("0", r"0\.0"), ("05", r"0\.5"), ("1", r"1\.0"), ("2", r"2\.0"), ("4", r"4\.0"), ("8", r"8\.0")]
}

QUOTES = [
    ("walkthroughs/06_reverse_sampling.md", "mean pixel {noise_mean} against {real_mean} for real test images", _SEED_STATS),
    ("walkthroughs/06_reverse_sampling.md", "class entropy {noise_entropy} nats against {real_entropy} for real test images",
     _SEED_STATS),
    ("answers/06_reverse_sampling.md", "mean pixel {noise_mean} instead of {real_mean}", _SEED_STATS),
    ("answers/06_reverse_sampling.md", "class entropy {noise_entropy} nats instead of {real_entropy}", _SEED_STATS),
    ("walkthroughs/06_reverse_sampling.md", "(mean pixel {q_mean}, class entropy {q_entropy})", _SEED_FROM_Q),
    ("walkthroughs/06_reverse_sampling.md", "differ from the clipped ones by {no_clip} in mean absolute pixel value, "
     "less than the $\\beta_t$-variance samples do ({beta})", _CLIPPING),
    ("answers/06_reverse_sampling.md", "without it the samples differ by {no_clip} in mean absolute pixel value", _CLIPPING),
    ("answers/06_reverse_sampling.md", "FID {fid} = {ratio}x the floor with 50 DDIM steps, rarest class {rarest}",
     _QUALITY),
    ("answers/07_fast_sampling.md", "has the worst FID of the table ({eta1_10} against {ddim_10} for $\\eta = 0$)", _SAMPLERS),
    ("answers/07_fast_sampling.md", "also at 100 steps ({eta1_100} against {ddim_100}), and DDPM with all {ddpm_steps} steps "
     "({ddpm})", _SAMPLERS),
    ("walkthroughs/07_fast_sampling.md", "DDIM with $\\eta = 0$ scores {ddim_10} at 10 steps and {ddim_100} at 100, DDPM with "
     "all {ddpm_steps} steps {ddpm}", _SAMPLERS),
    ("walkthroughs/07_fast_sampling.md", "mean squared error of {round_trip} (pixels in $[-1, 1]$), against {unrelated} "
     "between random samples", _INVERSION),
    ("answers/07_fast_sampling.md", "error of {round_trip} against {unrelated} between random samples", _INVERSION),
    ("walkthroughs/08_score_view.md", "lowered the FID from {ddpm} (DDPM, {ddpm_nfe} network calls) to {pc} (PC, {pc_nfe} calls), "
     "floor {floor}", _PC_IMAGE),
    ("answers/08_score_view.md", "it lowered the FID from {ddpm} (DDPM, {ddpm_nfe} calls) to {pc} (PC, {pc_nfe} calls)", _PC_IMAGE),
    ("answers/09_classifier_free_guidance.md", "the FID is {w0} at $w = 0$, lowest at $w = 0.5$ and $w = 1$ ({w05} and {w1}, "
     "less apart than the seed-to-seed noise of an FID from 250 samples), and then rises steeply: {w2} at $w = 2$, {w4} at "
     "$w = 4$ and {w8} at $w = 8$", _SWEEP),
]


@pytest.mark.parametrize("document, template, fields", QUOTES, ids=[f"{q[0]}:{q[1][:30]}" for q in QUOTES])
def test_document_quotes_the_notebook_output(document, template, fields):
    values = {name: notebook_value(*where) for name, where in fields.items()}
    sources = ", ".join(sorted({f"{nb}#{cell}" for nb, cell, _ in fields.values()}))
    assert_document_quotes(document, template.format(**values), sources)


def test_notebook_value_reads_a_printed_number():
    """The helper itself, on a cell whose output is checked by nbval: notebook 01's Var(x_0)."""
    value = notebook_value("notebooks/01_gaussian_noise.ipynb", "snr-table", r"^Var\(x_0\) = (\S+)")
    assert value == "0.497"
    with pytest.raises(KeyError):
        notebook_value("notebooks/01_gaussian_noise.ipynb", "no-such-cell", r"(x)")


def test_mixing_standard_deviations_of_notebook_01():
    """notebooks/01_gaussian_noise.ipynb#mix-strengths prints the standard deviations only in its plot titles, so
    recompute them as the notebook does (full mode: the first test image of each of the first 6 classes, noise
    from seed 7) and check the quotes in walkthrough 01 and answers 01."""
    test_images, test_labels = cu.fashion_mnist(train=False, image_size=28).tensors
    picks = torch.stack([torch.nonzero(test_labels == c)[0, 0] for c in range(10)])
    x_0 = test_images[picks[:6]]
    noise = torch.randn(x_0.shape, generator=torch.Generator().manual_seed(7))
    first, last = (f"{(math.sqrt(1 - beta) * x_0 + math.sqrt(beta) * noise).std():.2f}" for beta in (0.0, 1.0))
    source = "notebooks/01_gaussian_noise.ipynb#mix-strengths (plot titles)"
    assert_document_quotes("walkthroughs/01_gaussian_noise.md", f"go from {first} (the data) to {last} (pure noise", source)
    assert_document_quotes("answers/01_gaussian_noise.md", f"standard deviations {first} → {last}", source)


def test_min_snr_cap_binds_through_code_step_260():
    """answers/04 Q7: with gamma = 5 the Min-SNR cap binds while SNR > 5, for the cosine schedule with T = 1000."""
    snr = cu.make_schedule("cosine", 1000).snr
    last = int(torch.nonzero(snr > 5).max())
    assert bool((snr[: last + 1] > 5).all())
    assert_document_quotes("answers/04_signal_to_noise.md",
                           f"code steps 0 through {last} (SNR {snr[last]:.2f} at code step {last}, "
                           f"{snr[last + 1]:.3f} at {last + 1})", "make_schedule('cosine', 1000).snr")


def test_cosine_half_signal_point():
    """walkthrough 04: alpha_bar(u*) = 1/2 for the cosine schedule at u* = 0.49605, first code step 496."""
    s = 0.008
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    u_star = (1 + s) * 2 / math.pi * math.acos(math.sqrt(f0 / 2)) - s
    code_step = math.ceil(1000 * u_star) - 1
    assert code_step == int(torch.nonzero(cu.make_schedule("cosine", 1000).alphas_cumprod <= 0.5).min())
    assert_document_quotes("walkthroughs/04_signal_to_noise.md", f"\\approx {u_star:.5f}$", "the closed form")
    assert_document_quotes("walkthroughs/04_signal_to_noise.md", f"\\rceil - 1 = {code_step}$", "the closed form")


def test_linear_alpha_bar_drops_fastest_early():
    """walkthrough 02 / answers 02 Q4: the one-step drop beta_t alpha_bar_{t-1} of linear T = 1000 peaks at paper
    step 220 (code step 219), where alpha_bar is about 0.60, and is below 1e-6 at the last step."""
    abar = cu.make_schedule("linear", 1000).alphas_cumprod
    drop = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]]) - abar
    code_step = int(drop.argmax())
    assert code_step == 219 and f"{abar[code_step]:.2f}" == "0.60" and drop[-1] < 1e-6
    for document in ("walkthroughs/02_noise_schedules.md", "answers/02_noise_schedules.md"):
        assert_document_quotes(document, f"step {code_step + 1}, code step {code_step} (where", "make_schedule('linear', 1000)")


def test_elbo_weight_of_the_cosine_schedule_is_u_shaped():
    """walkthrough 05 and notebook 05: with sigma_t^2 = beta_t the ELBO weight beta / (2 alpha (1 - alpha_bar)) of
    the course's cosine schedule (T = 250, the default) is 0.5 at code step 0, about 0.012 near code step 123, then
    0.63, 1.5 and 499.5 at code steps 247, 248 and 249; for linear it is largest at the first step."""
    T = cu.default_config().T
    s = cu.make_schedule("cosine", T)
    w = s.betas / (2 * s.alphas * (1 - s.alphas_cumprod))
    assert f"{w[0]:.1f}" == "0.5" and f"{w.min():.3f}" == "0.012" and abs(int(w.argmin()) - 123) <= 3
    assert [f"{w[T - 3]:.2f}", f"{w[T - 2]:.1f}", f"{w[T - 1]:.1f}"] == ["0.63", "1.5", "499.5"]
    assert_document_quotes("walkthroughs/05_ddpm_training.md", f"0.63 at code step {T - 3}, 1.5 at {T - 2} and 499.5 at {T - 1}",
                           f"make_schedule('cosine', {T})")
    linear = cu.make_schedule("linear", T)
    w_lin = linear.betas / (2 * linear.alphas * (1 - linear.alphas_cumprod))
    assert int(w_lin.argmax()) == 0
