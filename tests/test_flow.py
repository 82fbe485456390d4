"""Flow matching (course_utils.flow, notebook 10): the path, its velocity, the exact field of a mixture,
the samplers, time sampling, training integration and bad input."""
import math

import pytest
import torch

import course_utils as cu
from course_utils.flow import flow_path, flow_target, mixture_velocity


def gaussian(mean, std):
    return cu.GaussianMixture(torch.tensor([mean]), torch.tensor([std]), torch.tensor([1.0]))


def test_path_ends_and_velocity_is_its_time_derivative():
    g = torch.Generator().manual_seed(0)
    x_0, noise = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(flow_path(x_0, noise, torch.zeros(5)), x_0)
    torch.testing.assert_close(flow_path(x_0, noise, torch.ones(5)), noise)
    t, h = torch.full((5,), 0.3, dtype=torch.float64), 1e-6
    x_0, noise = x_0.double(), noise.double()
    derivative = (flow_path(x_0, noise, t + h) - flow_path(x_0, noise, t - h)) / (2 * h)
    torch.testing.assert_close(derivative, flow_target(x_0, noise))


def test_mixture_velocity_of_one_gaussian_matches_the_closed_form():
    # x_0 ~ N(m, s^2): x_t ~ N((1 - t) m, c), c = (1 - t)^2 s^2 + t^2, and E[noise - x_0 | x_t] is linear in x_t
    # with slope Cov(noise - x_0, x_t) / c = (t - (1 - t) s^2) / c; at x_t = (1 - t) m it equals -m.
    m, s, t = 1.5, 0.4, 0.35
    x = torch.tensor([[0.2], [(1 - t) * m], [-1.0]], dtype=torch.float64)
    c = (1 - t) ** 2 * s**2 + t**2
    expected = -m + (t - (1 - t) * s**2) / c * (x - (1 - t) * m)
    torch.testing.assert_close(mixture_velocity(gaussian([m], s), x, t), expected)


def test_mixture_velocity_is_the_conditional_mean_by_monte_carlo():
    # Draw (x_0, noise), form x_t, and regress noise - x_0 on the exact field: the residual has mean zero
    # and is uncorrelated with the field (the defining property of a conditional expectation).
    mix = cu.GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.3, 0.5]), torch.tensor([0.4, 0.6]))
    g = torch.Generator().manual_seed(1)
    x_0 = mix.sample(100_000, generator=g).double()
    noise = torch.randn(x_0.shape, generator=g, dtype=torch.float64)
    t = 0.6
    x_t = flow_path(x_0, noise, torch.full((x_0.shape[0],), t, dtype=torch.float64))
    field = mixture_velocity(mix, x_t, t)
    residual = flow_target(x_0, noise) - field
    assert residual.mean(0).abs().max() < 0.015
    assert (residual * field).mean(0).abs().max() < 0.03


def test_euler_with_many_steps_transports_a_gaussian_exactly():
    # For Gaussian data the flow ODE is linear: the noise z lands on m + s z.
    m, s = 0.7, 0.5
    model = cu.ExactVelocityModel(gaussian([m, -m], s))
    z = torch.randn(256, 2, generator=torch.Generator().manual_seed(2))
    exact = torch.tensor([m, -m]) + s * z
    error = {n: (cu.flow_sample(model, z.shape, n, x_1=z, progress=False) - exact).abs().max() for n in (500, 1000)}
    assert error[1000] < 3e-3
    assert 1.7 < error[500] / error[1000] < 2.3  # Euler is first order: twice the steps, half the error
    heun = {n: (cu.flow_sample(model, z.shape, n, method="heun", x_1=z, progress=False) - exact).abs().max()
            for n in (8, 16)}
    assert heun[16] < error[500]  # 32 calls of Heun beat 500 of Euler
    assert heun[8] / heun[16] > 3.0  # second order: twice the steps, about a quarter of the error


def test_trained_toy_velocity_approaches_the_exact_field():
    mix = cu.GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.3, 0.5]), torch.tensor([0.4, 0.6]))
    torch.manual_seed(0)
    net = cu.ToyNoiseMLP(hidden=64)
    g = torch.Generator().manual_seed(3)
    probe_t = torch.tensor([0.2, 0.5, 0.8])
    probe_x = flow_path(mix.sample(3, generator=g), torch.randn(3, 2, generator=g), probe_t)

    def error():
        with torch.no_grad():
            got = torch.cat([cu.flow_velocity(net, probe_x[i:i + 1], probe_t[i:i + 1]) for i in range(3)])
        want = torch.cat([mixture_velocity(mix, probe_x[i:i + 1], probe_t[i].item()).float() for i in range(3)])
        return (got - want).norm() / want.norm()

    before = error()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(250):
        loss, _, _ = cu.flow_loss(net, mix.sample(256, generator=g), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert after < 0.25 and after < before / 3, (before, after)


def test_time_sampling_and_shift():
    g = torch.Generator().manual_seed(0)
    t = cu.sample_flow_times(100_000, "logit_normal", generator=g)
    assert 0 < t.min() and t.max() < 1 and abs(t.median().item() - 0.5) < 0.01
    # logit-normal(0, 1) puts more mass in the middle than uniform
    assert ((t > 0.25) & (t < 0.75)).float().mean() > 0.6
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    shifted = cu.shift_times(u, 3.0)
    torch.testing.assert_close(shifted[[0, 5, 10]], torch.tensor([0.0, 0.75, 1.0], dtype=torch.float64))
    assert (shifted >= u).all() and (shifted.diff() > 0).all()
    torch.testing.assert_close(cu.shift_times(u, 1.0), u)
    grid = cu.flow_time_grid(4)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))


def test_straightness_is_one_for_a_line_and_less_for_a_bend():
    line = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]])]
    bend = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])]
    assert cu.straightness(line).item() == pytest.approx(1.0)
    assert cu.straightness(bend).item() == pytest.approx(math.sqrt(2) / 2)


def test_flow_config_trains_a_velocity_unet_and_resumes_buckets():
    tiny = cu.UNetConfig(image_size=8, base_channels=16, channel_mults=(1, 2), prediction="velocity")
    config = cu.flow_config(image_size=8, model=tiny, T=20, batch_size=8, warmup_steps=2)
    data = (torch.rand(64, 1, 8, 8) * 2 - 1, torch.zeros(64, dtype=torch.long))
    result = cu.train(config, data=data, n_images=64, progress=False, log_every=4)
    assert result.images_seen == 64 and len(result.history["bucket_loss"][-1]) == 10
    x = cu.flow_sample(result.ema_model, (2, 1, 8, 8), 3, method="heun", progress=False)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="flow matching velocity"):
        cu.p_sample_loop(result.ema_model, config.make_schedule(), (2, 1, 8, 8), progress=False)


def test_bad_input_is_named():
    x = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="float tensor"):
        flow_path(x, x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flow_path(x, x, torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="shape"):
        flow_path(x, x, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="time sampling"):
        cu.sample_flow_times(3, "gaussian")
    with pytest.raises(ValueError, match="shift"):
        cu.shift_times(torch.tensor([0.5]), 0.0)
    with pytest.raises(ValueError, match="method"):
        cu.flow_sample(cu.ExactVelocityModel(gaussian([0.0], 1.0)), (2, 1), 2, method="rk4", progress=False)
    with pytest.raises(ValueError, match="loss_weighting='uniform'"):
        cu.flow_config(loss_weighting="min_snr")
    with pytest.raises(ValueError, match="time_sampling"):
        cu.flow_config(time_sampling="beta")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mixture_velocity(gaussian([0.0], 1.0), torch.zeros(1, 1), 1.0)


def test_exact_velocity_model_takes_one_time_per_row_and_gives_the_loss_floor():
    # Data N(0, s^2) in 1-D: the least flow matching loss is E_t[Var(noise - x_0 | x_t)], and
    # Var(noise - x_0 | x_t) = (1 + s^2) - (t - (1-t) s^2)^2 / c_t = s^2 / c_t with c_t = (1-t)^2 s^2 + t^2.
    s = 0.5
    model = cu.ExactVelocityModel(gaussian([0.0], s))
    x, t = torch.tensor([[0.3], [0.3]]), torch.tensor([0.2, 0.7])
    rows = torch.cat([mixture_velocity(gaussian([0.0], s), x[:1], 0.2), mixture_velocity(gaussian([0.0], s), x[1:], 0.7)])
    torch.testing.assert_close(model(x, cu.FLOW_TIME_SCALE * t), rows.float())
    u = torch.linspace(0.0005, 0.9995, 1000, dtype=torch.float64)
    floor = (s**2 / ((1 - u) ** 2 * s**2 + u**2)).mean().item()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        loss = sum(cu.flow_loss(model, s * torch.randn(4096, 1, generator=g), generator=g)[0].item() for _ in range(8)) / 8
    assert loss == pytest.approx(floor, rel=0.05)
