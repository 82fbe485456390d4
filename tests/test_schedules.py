"""Schedules: each formula of course_utils/schedules.py checked numerically."""
import math

import pytest
import torch

from course_utils import SCHEDULE_KINDS, cosine_alphas_cumprod, linear_betas, make_schedule, schedule_from_betas

KINDS = sorted(SCHEDULE_KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T", [1, 10, 150, 1000])
def test_arrays_have_length_T_and_float64(kind, T):
    if kind == "linear" and T <= 20:
        pytest.skip("scaled linear betas reach 1 for T <= 20 (exactly 1 at T = 20; valid from T = 21; tested below)")
    s = make_schedule(kind, T)
    assert s.T == T
    for name in ["betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas", "posterior_variance", "snr", "log_snr"]:
        arr = getattr(s, name)
        assert arr.shape == (T,), name
        assert arr.dtype == torch.float64, name


@pytest.mark.parametrize("kind", KINDS)
def test_derived_quantities_match_their_definitions(kind):
    s = make_schedule(kind, 200)
    b = s.betas
    torch.testing.assert_close(s.alphas, 1 - b)
    abar = torch.tensor([math.prod((1 - b[: t + 1]).tolist()) for t in range(s.T)], dtype=torch.float64)
    torch.testing.assert_close(s.alphas_cumprod, abar, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    assert s.alphas_cumprod_prev[0] == 1.0
    torch.testing.assert_close(s.sqrt_alphas_cumprod ** 2, s.alphas_cumprod)
    torch.testing.assert_close(s.sqrt_one_minus_alphas_cumprod ** 2, 1 - s.alphas_cumprod)
    torch.testing.assert_close(s.sqrt_recip_alphas, 1 / torch.sqrt(1 - b))


@pytest.mark.parametrize("kind", KINDS)
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(kind):
    s = make_schedule(kind, 1000)
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()
    assert ((s.alphas_cumprod > 0) & (s.alphas_cumprod < 1)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_snr_is_alphas_cumprod_over_one_minus(kind):
    s = make_schedule(kind, 300)
    torch.testing.assert_close(s.snr, s.alphas_cumprod / (1 - s.alphas_cumprod))
    torch.testing.assert_close(s.log_snr, torch.log(s.alphas_cumprod) - torch.log1p(-s.alphas_cumprod))
    assert (s.log_snr[1:] < s.log_snr[:-1]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_variance_formula(kind):
    s = make_schedule(kind, 100)
    for t in [1, 5, 50, 99]:
        expected = s.betas[t] * (1 - s.alphas_cumprod[t - 1]) / (1 - s.alphas_cumprod[t])
        torch.testing.assert_close(s.posterior_variance[t], expected)
    assert s.posterior_variance[0] == 0.0
    # beta_tilde_t <= beta_t always (the posterior is narrower than the forward step)
    assert (s.posterior_variance <= s.betas + 1e-15).all()


def test_linear_matches_ho_et_al_at_T_1000():
    s = make_schedule("linear", 1000)
    torch.testing.assert_close(s.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    assert s.alphas_cumprod[-1] == pytest.approx(4.04e-5, rel=0.01)


@pytest.mark.parametrize("T", [50, 150, 250, 4000])
def test_scaled_linear_ends_in_noise_for_every_T(T):
    s = make_schedule("linear", T)
    torch.testing.assert_close(s.betas[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64) * 1000 / T)
    assert s.alphas_cumprod[-1] < 1e-3


def test_unscaled_linear_at_T_150_does_not_reach_noise():
    s = make_schedule("linear", 150, scale_to_T=False)
    expected = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 149) for i in range(150))
    assert s.alphas_cumprod[-1].item() == pytest.approx(expected, rel=1e-9)
    assert s.alphas_cumprod[-1].item() == pytest.approx(0.219, abs=0.005)


@pytest.mark.parametrize("T", [50, 1000])
def test_cosine_alphas_cumprod_matches_closed_formula(T):
    s = make_schedule("cosine", T)
    u = torch.arange(1, T + 1, dtype=torch.float64) / T
    f = lambda x: torch.cos((x + 0.008) / 1.008 * math.pi / 2) ** 2
    closed = f(u) / f(torch.zeros(1, dtype=torch.float64))
    unclipped = s.betas < 0.999
    assert unclipped.sum() >= T - 2  # only the very last step(s) hit the 0.999 clip
    torch.testing.assert_close(s.alphas_cumprod[unclipped], closed[unclipped], rtol=1e-9, atol=1e-12)
    assert s.betas.max() == pytest.approx(0.999)


def test_cosine_helper_is_one_at_zero():
    assert cosine_alphas_cumprod(torch.tensor(0.0)).item() == pytest.approx(1.0)


def test_schedules_are_similar_in_continuous_time():
    """Scaled linear schedules with different T follow nearly the same alpha_bar(t/T) curve."""
    a, b = make_schedule("linear", 1000), make_schedule("linear", 250)
    coarse = b.alphas_cumprod
    fine = a.alphas_cumprod[3::4]
    assert (coarse - fine).abs().max() < 0.01


@pytest.mark.parametrize("bad", [[0.1, 1.0], [0.0, 0.5], [-0.1, 0.2], [float("nan")], [0.2, 1.5]])
def test_betas_outside_open_unit_interval_rejected(bad):
    with pytest.raises(ValueError, match=r"strictly between 0 and 1"):
        schedule_from_betas(bad)


@pytest.mark.parametrize("T", [10, 19, 20])
def test_scaled_linear_with_tiny_T_is_rejected_clearly(T):
    # the last scaled beta is 0.02 * 1000 / T: above 1 below T = 20 and exactly 1 at T = 20
    with pytest.raises(ValueError, match="between 0 and 1"):
        make_schedule("linear", T)


def test_scaled_linear_is_valid_from_T_21():
    s = make_schedule("linear", 21)
    assert s.betas[-1].item() == pytest.approx(0.02 * 1000 / 21) and s.betas[-1].item() < 1


@pytest.mark.parametrize("T", [0, -3])
def test_T_below_one_rejected(T):
    with pytest.raises(ValueError, match="T must be at least 1"):
        make_schedule("cosine", T)


def test_T_not_int_rejected():
    with pytest.raises(TypeError, match="T must be an int"):
        make_schedule("cosine", 10.0)


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match=r"unknown schedule kind 'quadratic'.*cosine.*linear.*sigmoid"):
        make_schedule("quadratic", 100)


def test_betas_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        schedule_from_betas(torch.full((2, 3), 0.1))


def test_linear_betas_function():
    torch.testing.assert_close(linear_betas(4, 0.1, 0.4, scale_to_T=False),
                               torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))


def test_sigmoid_alphas_cumprod_matches_closed_formula():
    s = make_schedule("sigmoid", 500)
    u = torch.arange(1, 501, dtype=torch.float64) / 500
    sig = torch.sigmoid
    v0, v1 = sig(torch.tensor(-3.0, dtype=torch.float64)), sig(torch.tensor(3.0, dtype=torch.float64))
    closed = (v1 - sig(u * 6 - 3)) / (v1 - v0)
    unclipped = s.betas < 0.999
    torch.testing.assert_close(s.alphas_cumprod[unclipped], closed[unclipped], rtol=1e-9, atol=1e-12)
