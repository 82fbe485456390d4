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


def _cell(notebook, cell_id):
    for cell in _notebook(notebook)["cells"]:
        if cell.get("id") == cell_id:
            return cell
    raise KeyError(f"{notebook} has no cell with id {cell_id!r}")


def cell_source(notebook, cell_id):
    """A committed cell's source, one string."""
    return "".join(_cell(notebook, cell_id)["source"])


def cell_output_text(notebook, cell_id):
    """The text a cell printed in the committed notebook (stream outputs and text/plain results, joined)."""
    parts = []
    for out in _cell(notebook, cell_id).get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]))
        elif "text/plain" in out.get("data", {}) and out.get("output_type") != "display_data":
            parts.append("".join(out["data"]["text/plain"]))
    return "".join(parts)


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


def _table(notebook, cell_id, row, nfe, column):
    """Where a sampler table prints one value: the row that starts with ``row`` and ``nfe`` (an int, or a regex for a
    count the text does not fix), then ``column`` (0 = the first value after the NFE)."""
    return notebook, cell_id, rf"^{re.escape(row)}\s+{nfe}" + r"\s+\S+" * column + r"\s+(\S+)"


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
_GRID = {"grid_s": (NB06, "sample-grid", r"^64 samples, 250 steps: (\S+) s")}  # notebook 06, section 3: the grid's time
_QUALITY = {  # notebook 06, section 3: notebook 05's model scored by cu.sample_quality (DDIM, 50 steps)
    "fid": (NB06, "quality", r"FID (\S+) ="),
    "ratio": (NB06, "quality", r"= (\S+)x the floor"),
    "rarest": (NB06, "quality", r"rarest class (\S+)$"),
}

NB07 = "notebooks/07_fast_sampling.ipynb"
_SAMPLERS = {  # notebook 07, section 3: FID of 200 samples per sampler (DDIM eta = 0 and 1, DDPM with all T steps)
    "ddim_10": _table(NB07, "quality-table", "DDIM", 10, 0),
    "eta1_10": _table(NB07, "quality-table", "DDIM eta=1 (DDPM-like)", 10, 0),
    "ddim_100": _table(NB07, "quality-table", "DDIM", 100, 0),
    "eta1_100": _table(NB07, "quality-table", "DDIM eta=1 (DDPM-like)", 100, 0),
    "ddpm": _table(NB07, "quality-table", "DDPM (Alg. 2)", r"\d+", 0),
    "ddpm_steps": (NB07, "quality-table", r"^DDPM \(Alg\. 2\)\s+(\d+)"),
    "ddim_50_s": _table(NB07, "quality-table", "DDIM", 50, 3),  # seconds per sample
    "ddpm_s": _table(NB07, "quality-table", "DDPM (Alg. 2)", r"\d+", 3),
}
_INVERSION = {  # notebook 07, section 4: DDIM round trip x_0 -> x_T -> x_0
    "round_trip": (NB07, "invert", r"^round trip error .*?: (\S+);"),
    "unrelated": (NB07, "invert", r"between random samples and the images: (\S+)$"),
}

NB08 = "notebooks/08_score_view.ipynb"
_PC_IMAGE = {  # notebook 08, section 5: FID of 100 samples, DDPM (predictor only) and PC with 1 Langevin corrector
    "ddpm": _table(NB08, "pc-image", "DDPM (predictor only)", r"\d+", 0),
    "ddpm_nfe": (NB08, "pc-image", r"^DDPM \(predictor only\)\s+(\d+)"),
    "pc": _table(NB08, "pc-image", "PC, 1 Langevin corrector", r"\d+", 0),
    "pc_nfe": (NB08, "pc-image", r"^PC, 1 Langevin corrector\s+(\d+)"),
    "floor": _table(NB08, "pc-image", "DDPM (predictor only)", r"\d+", 1),
}

NB09 = "notebooks/09_classifier_free_guidance.ipynb"
_SWEEP = {  # notebook 09, section 4: FID of 250 class-balanced samples per guidance weight w, and the floor (one column)
    **{f"w{name}": (NB09, "sweep", rf"^\s+{w}\s+\S+\s+(\S+)") for name, w in
       [("0", r"0\.0"), ("05", r"0\.5"), ("1", r"1\.0"), ("2", r"2\.0"), ("4", r"4\.0"), ("8", r"8\.0")]},
    "floor": (NB09, "sweep", r"^\s+0\.0\s+\S+\s+\S+\s+(\S+)"),
}

NB10 = "notebooks/10_flow_matching.ipynb"
_FLOW_FID = {  # notebook 10, section 5: FID/floor of 500 samples per sampler and NFE budget
    "e4": _table(NB10, "fid-table", "flow, Euler", 4, 1),
    "d4": _table(NB10, "fid-table", "diffusion, DDIM", 4, 1),
    "e8": _table(NB10, "fid-table", "flow, Euler", 8, 1),
    "d8": _table(NB10, "fid-table", "diffusion, DDIM", 8, 1),
    "e32": _table(NB10, "fid-table", "flow, Euler", 32, 1),
    "h32": _table(NB10, "fid-table", "flow, Heun", 32, 1),
}
_LOGIT_NORMAL = {  # notebook 10, section 6: log-SNR of 200,000 logit-normal(0, 1) times
    "m": (NB10, "snr-plot", r"times: mean (\S+),"),
    "s": (NB10, "snr-plot", r", std (\S+) \(a Gaussian"),
}
_REFLOW = {  # notebook 10, section 7: Euler FID/floor and median straightness before and after reflow
    "b1": (NB10, "reflow-measure", r"^before reflow\s+1:\s+(\S+)"),
    "a1": (NB10, "reflow-measure", r"^after reflow\s+1:\s+(\S+)"),
    "b4": (NB10, "reflow-measure", r"^before reflow.*\s4:\s+(\S+)"),
    "a4": (NB10, "reflow-measure", r"^after reflow.*\s4:\s+(\S+)"),
    "sb": (NB10, "reflow-measure", r"^before reflow.*median (\S+)$"),
    "sa": (NB10, "reflow-measure", r"^after reflow.*median (\S+)$"),
}

NB11 = "notebooks/11_design_space.ipynb"
_CONDITIONING = {  # notebook 11, section 1: the largest error factors of noise and x0 prediction
    "noise": (NB11, "conditioning", r"multiplied by (\S+) in x0_hat"),
    "x0": (NB11, "conditioning", r"predictor's by (\S+) in eps_hat"),
}
_ELBO_SHARE = {"share": (NB11, "weights-plot", r"carries (\S+) of the total weight")}
_DESIGN = {  # notebook 11, section 2: FID/floor after 30,000 training images (benchmarks/design_space.py)
    name: (NB11, "design-results", rf"^{run}\s+15k:\s+\S+\s+30k:\s+(\S+)") for name, run in
    [("v", "v-snr"), ("v_min_snr", "v-min_snr"), ("noise", "noise-uniform"), ("x0", "x0-uniform"),
     ("elbo", "noise-elbo"), ("noise_min_snr", "noise-min_snr"), ("v_uniform", "v-uniform")]
}
_ZSNR = {  # notebook 11, section 3: the brightness leak and what the two trained models do
    "c_off": (NB11, "zsnr-leak", r"^unscaled linear .*x_T's (\S+)$"),
    "c_on": (NB11, "zsnr-leak", r"^rescaled: zero terminal SNR .*x_T's (\S+)$"),
    "std_off": (NB11, "zsnr-recorded", r"^zsnr-off:.*brightness std (\S+) \(data"),
    "std_data": (NB11, "zsnr-recorded", r"^zsnr-off:.*\(data (\S+)\)"),
    "std_on": (NB11, "zsnr-recorded", r"^zsnr-on:.*brightness std (\S+) \(data"),
    "dark_off": (NB11, "zsnr-recorded", r"^zsnr-off:.*10% quantile (\S+),"),
    "bright_off": (NB11, "zsnr-recorded", r"^zsnr-off:.*90% (\S+)$"),
    "fid_off": (NB11, "zsnr-recorded", r"^zsnr-off:.*FID/floor (\S+);"),
    "fid_on": (NB11, "zsnr-recorded", r"^zsnr-on:.*FID/floor (\S+);"),
}
_SOLVERS = {  # notebook 11, section 4: FID/floor of 500 samples per solver and NFE budget
    "dpm10": _table(NB11, "solver-table", "DPM-Solver++(2M) (Karras)", 10, 1),
    "ddim25": _table(NB11, "solver-table", "DDIM", 25, 1),
    "heun5": _table(NB11, "solver-table", "Heun (Karras)", 5, 1),
    "ddpm50": _table(NB11, "solver-table", "DDPM (eta = 1)", 50, 1),
    "ddim50": _table(NB11, "solver-table", "DDIM", 50, 1),
}

_SOL05_WEIGHTS = {  # solutions 05, exercise 2: noise error in the first t/T bucket after the two short runs
    "l_simple": ("solutions/05_ddpm_training.ipynb", "exercise-2-train", r"^  default \(L_simple\)\s+(\S+)"),
    "min_snr": ("solutions/05_ddpm_training.ipynb", "exercise-2-train", r"^  Min-SNR-5\s+(\S+)"),
}

QUOTES = [
    (NB07, "that made the committed outputs, e.g. {ddim_50_s} s for DDIM-50 and {ddpm_s} s for DDPM-{ddpm_steps}", _SAMPLERS),
    (NB06, "an AMD EPYC server CPU in float32, which took {grid_s} s here", _GRID),
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
    ("answers/07_fast_sampling.md", "deterministic DDIM has the worst FID of the table ({ddim_10}, against {eta1_10} for $\\eta = 1$)", _SAMPLERS),
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
    ("answers/09_classifier_free_guidance.md", "the FID is {w0} at $w = 0$, lowest at $w = 0.5$ ({w05}, level with the floor "
     "of {floor}) and {w1} at $w = 1$ (differences of a few units are within the seed-to-seed noise of an FID from 250 "
     "samples), and then rises steeply: {w2} at $w = 2$, {w4} at $w = 4$ and {w8} at $w = 8$", _SWEEP),
    ("walkthroughs/10_flow_matching.md", "{e4}x the floor against {d4}x at 4 calls, {e8}x against {d8}x at 8", _FLOW_FID),
    ("walkthroughs/10_flow_matching.md", "at 32 calls Heun scores {h32}x the floor against {e32}x for Euler", _FLOW_FID),
    ("answers/10_flow_matching.md", "scores {e4}x the floor at 4 calls against {d4}x for DDIM", _FLOW_FID),
    ("answers/10_flow_matching.md", "also at 32 calls, where it scores {h32}x the floor against {e32}x", _FLOW_FID),
    ("walkthroughs/10_flow_matching.md", "for 200,000 draws: mean {m}, std {s}", _LOGIT_NORMAL),
    ("answers/10_flow_matching.md", "for logit-normal(0, 1) draws (mean {m}, std {s})", _LOGIT_NORMAL),
    ("walkthroughs/10_flow_matching.md", "one Euler step goes from {b1}x the floor to {a1}x and the median straightness from {sb} "
     "to {sa}, while four steps change little ({b4}x and {a4}x;", _REFLOW),
    ("answers/10_flow_matching.md", "one Euler step goes from {b1}x the floor to {a1}x, the median straightness from {sb} to "
     "{sa}", _REFLOW),
    ("walkthroughs/11_design_space.md", "at the last step a noise predictor's error is multiplied by {noise} in $\\hat x_0$, at the "
     "first step an $x_0$ predictor's by {x0} in $\\hat\\epsilon$", _CONDITIONING),
    ("answers/11_design_space.md", "prints the two largest: {noise} for a noise predictor's $\\hat x_0$ at the last step, {x0} for "
     "an $x_0$ predictor's $\\hat\\epsilon$ at the first", _CONDITIONING),
    ("walkthroughs/11_design_space.md", "holds almost all of the weight: {share} of the total", _ELBO_SHARE),
    ("answers/11_design_space.md", "gives that one step almost all of the weight, {share} of the total", _ELBO_SHARE),
    ("walkthroughs/11_design_space.md", "the default scores {v}x the floor, the noise target with $L_\\text{{simple}}$ {noise}x, the "
     "$x_0$ target {x0}x and the noise target with the ELBO weight {elbo}x", _DESIGN),
    ("walkthroughs/11_design_space.md", "clearly better with the $v$ target than with the noise target ({v}x against {noise}x)",
     _DESIGN),
    ("walkthroughs/11_design_space.md", "the noise\ntarget with Min-SNR-5 ({noise_min_snr}x) against $v$ with Min-SNR-5 ({v_min_snr}x)",
     _DESIGN),
    ("walkthroughs/11_design_space.md", "Min-SNR-5 and of the plain $v$ loss ({v_uniform}x)", _DESIGN),
    ("answers/11_design_space.md", "{elbo}x the floor after 30,000 images, against {noise}x for the same noise target with "
     "L_simple", _DESIGN),
    ("answers/11_design_space.md", "`noise-uniform` scores {noise}x against {v}x for `v-snr`", _DESIGN),
    ("answers/11_design_space.md", "`noise-min_snr` scores {noise_min_snr}x against {v_min_snr}x for `v-min_snr`", _DESIGN),
    ("walkthroughs/11_design_space.md", "the correlation is {c_off} for that schedule and {c_on} after the rescale below", _ZSNR),
    ("answers/11_design_space.md", "the correlation is {c_off} for the unscaled linear schedule and {c_on} after the rescale", _ZSNR),
    ("walkthroughs/11_design_space.md", "has a standard deviation of {std_off} against {std_data} for the data, a share of "
     "{dark_off} of the samples is darker than the data's 10% quantile and {bright_off} brighter than its 90% quantile; with it "
     "the standard deviation is {std_on}", _ZSNR),
    ("answers/11_design_space.md", "standard deviation of {std_off} against {std_data} for the data, a share of {dark_off} of the "
     "samples is darker than the data's 10% quantile and {bright_off} brighter than its 90% quantile; after the rescale the "
     "standard deviation is {std_on}, and FID/floor after the same 30,000 images falls from {fid_off} to {fid_on}", _ZSNR),
    ("walkthroughs/11_design_space.md", "DPM-Solver++(2M) at 10 calls ({dpm10}x the floor) is ahead of DDIM at 25 ({ddim25}x)",
     _SOLVERS),
    ("answers/11_design_space.md", "DPM-Solver++(2M) with 10 calls ({dpm10}x the floor) is ahead of DDIM with 25 ({ddim25}x)",
     _SOLVERS),
    ("walkthroughs/11_design_space.md", "({heun5}x at 5 calls)", _SOLVERS),
    ("answers/11_design_space.md", "({heun5}x the floor at 5 calls)", _SOLVERS),
    ("walkthroughs/11_design_space.md", "is ahead of it at 50 ({ddpm50}x against {ddim50}x for DDIM)", _SOLVERS),
    ("solutions/05_ddpm_training.ipynb", "(noise error {l_simple} against {min_snr} in the first bucket)", _SOL05_WEIGHTS),
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


def test_notebook_05_quotes_the_committed_checkpoint_and_it_meets_the_target():
    """Notebook 05's cell quality-pointer says the exported checkpoint meets the course's target (FID at most twice
    the floor, every class at least 5%, with the target's protocol) and quotes its scores: both are read from
    checkpoints/ddpm_fashion16.json, which benchmarks/train_default.py wrote when it scored the weights."""
    record = json.loads((ROOT / "checkpoints" / "ddpm_fashion16.json").read_text())["quality"]["unconditional"]
    target = record["target_protocol"]
    assert target["fid"] <= 2 * record["fid_floor"] and target["min_class_share"] >= 0.05
    assert math.isclose(target["fid_over_floor"], target["fid"] / record["fid_floor"], abs_tol=1e-3)
    text = " ".join(cell_source("notebooks/05_ddpm_training.ipynb", "quality-pointer").split())
    for expected in (f"an FID of {target['fid']:.1f} against a floor of {record['fid_floor']:.1f}, "
                     f"**{target['fid_over_floor']:.1f}x the floor**",
                     f"every class at least {target['min_class_share']:.1%}",
                     f"{record['fid']:.1f} = {record['fid'] / record['fid_floor']:.1f}x"):
        assert expected in text, f"notebooks/05_ddpm_training.ipynb#quality-pointer should contain {expected!r} " \
                                 "(checkpoints/ddpm_fashion16.json)"


def _table_rows(name):
    """The data rows of a benchmark result table (benchmarks/results/<name>.md, ``name`` may name a subfolder), each
    a list of stripped cells."""
    lines = (ROOT / "benchmarks" / "results" / f"{name}.md").read_text().splitlines()
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    return rows[2:]  # after the header and the |---| line


def test_notebook_06_quotes_the_ddim_seed_spread_of_the_benchmark():
    """Notebook 06's cell quality-md quotes DDIM-50's range and mean over sampling seeds 0-4 on the committed checkpoint
    from benchmarks/results/fid_spread_cpu.md (fid_spread.py), and names the seed its quality cell uses as the worst."""
    row = next(row for row in _table_rows("fid_spread_cpu") if row[0] == "DDIM-50")
    per_seed, mean = [float(v) for v in row[1:6]], row[6]
    text = " ".join(cell_source("notebooks/06_reverse_sampling.ipynb", "quality-md").split())
    expected = (f"over seeds 0-4 it ranges from {min(per_seed):.2f}x to {max(per_seed):.2f}x, mean {mean}x, and seed "
                f"{per_seed.index(max(per_seed))} is the worst of them")
    assert expected in text, f"notebooks/06_reverse_sampling.ipynb#quality-md should contain {expected!r}"
    assert f"manual_seed({per_seed.index(max(per_seed))})" in cell_source("notebooks/06_reverse_sampling.ipynb", "quality")


def test_fixed_time_training_runs_are_quoted_from_their_tables():
    """benchmarks/README.md's bullet "Fixed training time" and DEFAULTS.md's paragraph "Training for a fixed time"
    quote each train_quality.py run (images = steps x batch, to the thousand, and FID / floor) and the 12-minute
    peer comparison's FID ratio as benchmarks/results/ holds them."""
    readme = " ".join((ROOT / "benchmarks" / "README.md").read_text().split())
    defaults = " ".join((ROOT / "benchmarks" / "DEFAULTS.md").read_text().split())
    bullet = readme[readme.index("**Fixed training time**"):readme.index("<!-- results:start -->")]
    paragraph = defaults[defaults.index("**Training for a fixed time**"):defaults.index("**Checkpoints retrained.**")]
    batch = cu.default_config().batch_size
    for name in ("train_quality_3min_cpu", "train_quality_3min_cpu_bf16", "train_quality_6min_cpu",
                 "train_quality_12min_cpu"):
        (row,) = _table_rows(name)
        images, ratio = f"{round(int(row[3]) * batch, -3):,} images", f"{row[-1]}x"
        for where, text in (("benchmarks/README.md", bullet), ("benchmarks/DEFAULTS.md", paragraph)):
            assert images in text and ratio in text, f"{where} should quote {images} and {ratio} from {name}.md"
    ratio_row = next(row for row in _table_rows("peer_12min_cpu") if row[0] == "ratio ours / peer")
    assert f"FID {ratio_row[6]}x that of denoising-diffusion-pytorch" in paragraph
    assert f"after 12 minutes each, FID ours/peer {ratio_row[6]}" in readme


def test_notebook_05_quotes_the_spread_over_training_seeds():
    """Notebook 05's cell quality-pointer gives the range of the target's score over training seeds 0-3 at 150,000
    images: seed 0 from the images-to-target table, seeds 1-3 from results/recipe/ (images_to_target.py)."""
    tables = ["images_to_target_default_dpm10"] + [f"recipe/images_to_target_default_seed{seed}" for seed in (1, 2, 3)]
    scores = [float(next(row for row in _table_rows(name) if row[0] == "150,016")[5])  # the FID / floor column
              for name in tables]
    over = sum(score > 2 for score in scores)
    text = " ".join(cell_source("notebooks/05_ddpm_training.ipynb", "quality-pointer").split())
    expected = f"training seeds 0-3, one thread each) scored from {min(scores):.2f}x to {max(scores):.2f}x the floor"
    assert expected in text, f"notebooks/05_ddpm_training.ipynb#quality-pointer should contain {expected!r}"
    assert f"{['none', 'one', 'two', 'three'][over]} of them over the line" in text
