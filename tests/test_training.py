"""Training: the simple loss by hand, the EMA formula, the config, and a tiny resumable training run."""
import dataclasses

import pytest
import torch

from course_utils import (
    EMA, DiffusionConfig, UNet, UNetConfig, default_config, guidance_config, load_checkpoint,
    make_schedule, noise_prediction_loss, train,
)


TINY = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_groups=4, time_embed_dim=16,
                  attention=False, num_classes=3)


def tiny_config(**kw):
    return DiffusionConfig(image_size=8, T=20, model=TINY, batch_size=8, warmup_steps=2, **kw)


def tiny_data(n=32):
    return torch.rand(n, 1, 8, 8) * 2 - 1, torch.randint(0, 3, (n,))


def test_loss_equals_hand_computation():
    schedule = make_schedule("cosine", 20)
    model = UNet(TINY)
    x_0, noise, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 19])
    loss, per_sample, t_out = noise_prediction_loss(model, schedule, x_0, t=t, noise=noise)
    abar = schedule.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    x_t = abar.sqrt() * x_0 + (1 - abar).sqrt() * noise
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the loss runs the model under the same autocast
        noise_pred = model(x_t, t).float()
    expected = ((noise - noise_pred) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(per_sample, expected)
    torch.testing.assert_close(loss, expected.mean())
    assert t_out is t and loss.dtype == torch.float32


def test_loss_draws_t_uniformly():
    schedule = make_schedule("cosine", 20)
    _, _, t = noise_prediction_loss(UNet(TINY), schedule, torch.zeros(400, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert t.min() == 0 and t.max() == 19 and len(t.unique()) == 20


def test_ema_update_formula():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    start = ema.shadow["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # update 0 uses min(0.9, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["weight"], 0.1 * start + 0.9 * model.weight)
    for _ in range(200):
        ema.update(model)
    assert ema.current_decay() == 0.9  # warm-up over: the configured decay
    before = ema.shadow["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], 0.9 * before + 0.1 * model.weight)
    copy = ema.copy_to(torch.nn.Linear(2, 1))
    torch.testing.assert_close(copy.weight, ema.shadow["weight"])


def test_config_round_trip_and_checks():
    config = default_config()
    assert DiffusionConfig.from_dict(config.to_dict()) == config
    assert config.make_schedule().alphas_cumprod[-1] < 1e-3, "the default must end (nearly) at pure noise"
    with pytest.raises(ValueError, match="model.image_size=16 differs from image_size=28"):
        dataclasses.replace(config, image_size=28)
    with pytest.raises(ValueError, match="p_uncond"):
        default_config(p_uncond=1.5)


def test_default_is_unconditional_and_guidance_config_adds_labels():
    default, guided = default_config(), guidance_config()
    assert default == DiffusionConfig() and default.model.num_classes is None
    assert guided.model.num_classes == 10 and guided.p_uncond == 0.1
    # the two differ in the labels only: same sizes, schedule and training recipe
    assert dataclasses.replace(guided, model=default.model, p_uncond=default.p_uncond) == default
    assert guidance_config(T=100).T == 100


def test_train_stops_at_n_steps_and_loss_falls():
    config = tiny_config()
    result = train(config, data=tiny_data(), n_steps=40, log_every=10, progress=False)
    h = result.history
    assert result.step == 40 and h["step"] == [10, 20, 30, 40]
    assert len(h["bucket_loss"][0]) == 10 and all(v > 0 for v in h["images_per_s"])
    assert h["loss"][-1] < h["loss"][0]
    assert not result.ema_model.training
    assert not torch.equal(result.ema_model.conv_in.weight, result.model.conv_in.weight)


def test_train_time_budget_and_callback():
    calls = []
    result = train(tiny_config(), data=tiny_data(), time_budget_s=0.5, progress=False,
                   callback=lambda step, r: calls.append(step), callback_every=2)
    assert result.history["train_seconds"] >= 0.5 and calls[:2] == [2, 4]
    with pytest.raises(ValueError, match="n_steps, time_budget_s"):
        train(tiny_config(), data=tiny_data())


def test_train_resumes_from_checkpoint(tmp_path):
    path, config = tmp_path / "run.pt", tiny_config()
    first = train(config, data=tiny_data(), n_steps=6, checkpoint_path=path, progress=False, log_every=3)
    assert load_checkpoint(path, expected_config=config)["step"] == 6
    second = train(config, data=tiny_data(), n_steps=10, checkpoint_path=path, progress=False, log_every=3)
    assert second.step == 10 and second.history["step"] == [3, 6, 9, 10]
    assert load_checkpoint(path)["step"] == 10
    with pytest.raises(ValueError, match="lr: checkpoint has 0.001, expected 0.5"):
        train(dataclasses.replace(config, lr=0.5), data=tiny_data(), n_steps=12, checkpoint_path=path, progress=False)
    assert first.step == 6


def test_keyboard_interrupt_keeps_the_model_and_saves(tmp_path):
    path = tmp_path / "run.pt"

    def interrupt(step, result):
        raise KeyboardInterrupt

    result = train(tiny_config(), data=tiny_data(), n_steps=50, checkpoint_path=path, progress=False,
                   callback=interrupt, callback_every=3)
    assert result.step == 3 and result.history["interrupted"]
    assert load_checkpoint(path)["step"] == 3


def test_elbo_term_is_weighted_noise_error():
    """KL(q(x_{t-1}|x_t,x_0) || p_theta(x_{t-1}|x_t)) with equal variance sigma^2 = beta_t is
    ||mu_tilde - mu_theta||^2 / (2 sigma^2) = beta_t^2 / (2 sigma^2 alpha_t (1 - abar_t)) ||noise - noise_pred||^2."""
    from course_utils import p_mean_variance, q_posterior_mean_variance, q_sample

    schedule, model = make_schedule("cosine", 20), UNet(TINY)
    x_0, noise, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8), torch.tensor([1, 9, 15])
    x_t = q_sample(schedule, x_0, t, noise)
    out = p_mean_variance(model, schedule, x_t, t, clip_x0=False)
    mu_tilde, _ = q_posterior_mean_variance(schedule, x_0, x_t, t)
    beta, alpha, abar = (a[t].float() for a in (schedule.betas, schedule.alphas, schedule.alphas_cumprod))
    kl = ((mu_tilde - out["mean"]) ** 2).flatten(1).sum(1) / (2 * beta)
    weighted = beta**2 / (2 * beta * alpha * (1 - abar)) * ((noise - out["noise_pred"]) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(kl, weighted, rtol=1e-3, atol=1e-5)
