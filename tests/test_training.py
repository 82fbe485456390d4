"""Training: losses and weights by hand, EMA, label dropout, config, learning rate, a tiny resumable training run."""
import dataclasses
import math

import pytest
import torch

from conftest import TINY_UNET
from course_utils import (
    EMA, DiffusionConfig, UNet, autocast_for, default_config, guidance_config, load_checkpoint, loss_weights,
    make_schedule, diffusion_loss, measure_training_speed, predict_noise, q_sample, train, train_step,
)


TINY = dataclasses.replace(TINY_UNET, attention=False, num_classes=3)
TINY_V = dataclasses.replace(TINY, prediction="v")


def tiny_config(**kw):
    return DiffusionConfig(image_size=8, T=20, model=TINY, batch_size=8, warmup_steps=2, **kw)


def tiny_data(n=32):
    return torch.rand(n, 1, 8, 8) * 2 - 1, torch.randint(0, 3, (n,))


def test_loss_equals_hand_computation():
    schedule = make_schedule("cosine", 20)
    model = UNet(TINY)
    x_0, noise, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 19])
    loss, per_sample, t_out = diffusion_loss(model, schedule, x_0, t=t, noise=noise)
    abar = schedule.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    x_t = abar.sqrt() * x_0 + (1 - abar).sqrt() * noise
    with autocast_for("cpu"):  # the loss runs the model under the course's precision policy
        noise_pred = model(x_t, t).float()
    expected = ((noise - noise_pred) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(per_sample, expected)
    torch.testing.assert_close(loss, expected.mean())
    assert t_out is t and loss.dtype == torch.float32


def test_loss_draws_t_uniformly():
    schedule = make_schedule("cosine", 20)
    _, _, t = diffusion_loss(UNet(TINY), schedule, torch.zeros(400, 1, 8, 8), generator=torch.Generator().manual_seed(0))
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


class LabelRecorder(UNet):
    """A tiny U-Net that remembers every label batch it was trained on."""

    def __init__(self, config):
        super().__init__(config)
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append(y.clone())
        return super().forward(x, t, y)


@pytest.mark.parametrize("p_uncond", [0.0, 0.3])
def test_label_dropout_replaces_a_share_p_uncond_by_the_null_label(p_uncond):
    config = DiffusionConfig(image_size=8, T=20, model=TINY, batch_size=64, warmup_steps=2, p_uncond=p_uncond)
    model = LabelRecorder(TINY)
    images, labels = torch.rand(256, 1, 8, 8) * 2 - 1, torch.randint(0, 3, (256,))
    train(config, model=model, data=(images, labels), n_images=20 * 64, progress=False)
    seen = torch.cat(model.seen)
    assert seen.numel() == 20 * 64 and seen.min() >= 0 and seen.max() <= 3
    # 1,280 labels: the share of null labels (3) has a standard deviation of 0.013 around p_uncond
    assert abs((seen == 3).float().mean().item() - p_uncond) < 0.05
    assert ((seen == 3).float().mean().item() > 0) == (p_uncond > 0)


def test_train_stops_at_n_images_and_loss_falls():
    config = tiny_config()
    result = train(config, data=tiny_data(), n_images=320, log_every=10, progress=False)
    h = result.history
    assert result.step == 40 and h["step"] == [10, 20, 30, 40] and h["images"] == [80, 160, 240, 320]
    assert result.images_seen == 320 and h["stopped_by"] == "images"
    assert len(h["bucket_loss"][0]) == 10 and all(v > 0 for v in h["images_per_s"])
    assert h["loss"][-1] < h["loss"][0]
    assert not result.ema_model.training
    assert not torch.equal(result.ema_model.conv_in.weight, result.model.conv_in.weight)


def test_train_time_budget_and_callback():
    calls = []
    result = train(tiny_config(), data=tiny_data(), time_budget_s=0.2, progress=False)
    assert result.history["train_seconds"] >= 0.2 and result.history["stopped_by"] == "time"
    train(tiny_config(), data=tiny_data(), n_images=80, progress=False,
          callback=lambda step, r: calls.append((step, r.images_seen)), callback_every=20)
    assert calls == [(3, 24), (5, 40), (8, 64), (10, 80)]  # batch 8: the first step past each multiple of 20 images
    with pytest.raises(ValueError, match="n_images, time_budget_s"):
        train(tiny_config(), data=tiny_data())


def test_train_resumes_from_checkpoint(tmp_path):
    path, config = tmp_path / "run.pt", tiny_config()
    first = train(config, data=tiny_data(), n_images=48, checkpoint_path=path, progress=False, log_every=3)
    assert load_checkpoint(path, expected_config=config)["step"] == 6
    second = train(config, data=tiny_data(), n_images=80, checkpoint_path=path, progress=False, log_every=3)
    assert second.step == 10 and second.history["step"] == [3, 6, 9, 10] and second.images_seen == 80
    assert load_checkpoint(path)["step"] == 10
    with pytest.raises(ValueError, match=r"lr: checkpoint has 0.001, expected 0.5\. To train this config from scratch, "
                                         r"delete .*run\.pt or pass another checkpoint_path"):
        train(dataclasses.replace(config, lr=0.5), data=tiny_data(), n_images=96, checkpoint_path=path, progress=False)
    assert first.step == 6


def test_keyboard_interrupt_keeps_the_model_and_saves(tmp_path):
    path = tmp_path / "run.pt"

    def interrupt(step, result):
        raise KeyboardInterrupt

    result = train(tiny_config(), data=tiny_data(), n_images=400, checkpoint_path=path, progress=False,
                   callback=interrupt, callback_every=24)
    assert result.step == 3 and result.history["stopped_by"] == "interrupt"
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


def test_min_snr_weights_follow_the_formula():
    schedule = make_schedule("cosine", 50)
    t = torch.arange(50)
    snr = schedule.alphas_cumprod / (1 - schedule.alphas_cumprod)
    expected = (torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / snr).float()
    torch.testing.assert_close(loss_weights(schedule, t, "min_snr", gamma=5.0), expected)
    w = loss_weights(schedule, t, "min_snr", gamma=5.0)
    assert w[-1] == 1.0 and w[0] < 0.01  # noisy steps keep weight 1, nearly clean steps are damped
    torch.testing.assert_close(loss_weights(schedule, t, "uniform"), torch.ones(50))
    with pytest.raises(ValueError, match="weighting must be one of"):
        loss_weights(schedule, t, "p2")


def test_weighted_loss_is_the_weighted_mean_of_the_per_sample_errors():
    schedule, model = make_schedule("cosine", 20), UNet(TINY)
    x_0, noise, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 19])
    loss, per_sample, _ = diffusion_loss(model, schedule, x_0, t=t, noise=noise, weighting="min_snr", gamma=2.0)
    plain, per_sample_plain, _ = diffusion_loss(model, schedule, x_0, t=t, noise=noise)
    torch.testing.assert_close(per_sample, per_sample_plain)
    snr = schedule.snr[t]
    torch.testing.assert_close(loss, (per_sample * (snr.clamp(max=2.0) / snr).float()).mean())
    assert loss < plain  # every weight is <= 1 and t = 0 is damped


def test_elbo_weight_is_proportional_to_ho_et_al_eq_12():
    schedule = make_schedule("linear", 100)
    t = torch.arange(1, 100)
    b, a, ab = schedule.betas[t], schedule.alphas[t], schedule.alphas_cumprod[t]
    ho = b**2 / (2 * schedule.posterior_variance[t] * a * (1 - ab))  # weight of the noise error in L_{t-1}
    ours = loss_weights(schedule, t, "elbo", prediction="noise").double()
    torch.testing.assert_close(ours / ours[0], ho / ho[0], rtol=1e-5, atol=0)
    full = loss_weights(schedule, torch.arange(100), "elbo", prediction="noise")
    assert full.mean().item() == pytest.approx(1.0, rel=1e-5) and full[0] == full[1]
    # the same weighting expressed on x_0 and v errors: multiply back by what each error is worth in noise units
    snr = schedule.snr[t].float()
    torch.testing.assert_close(loss_weights(schedule, t, "elbo", prediction="x0") / snr, ours.float())
    torch.testing.assert_close(loss_weights(schedule, t, "elbo", prediction="v") * (snr + 1) / snr, ours.float())


def test_train_step_is_one_clipped_adamw_step_on_the_loss():
    config, schedule = tiny_config(grad_clip=0.01), make_schedule("cosine", 20)
    model = UNet(TINY)
    twin = UNet(TINY)
    twin.load_state_dict(model.state_dict())
    x_0 = torch.rand(4, 1, 8, 8) * 2 - 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss, per_sample, t = train_step(model, opt, schedule, config, x_0, generator=torch.Generator().manual_seed(1))
    # by hand, with the same t and noise: the clipped gradient has norm 0.01
    loss_hand, _, _ = diffusion_loss(twin, schedule, x_0, generator=torch.Generator().manual_seed(1),
                                     weighting=config.loss_weighting, gamma=config.min_snr_gamma)
    torch.testing.assert_close(loss, loss_hand.detach())
    loss_hand.backward()
    norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.01)
    assert norm > 0.01
    clipped = torch.sqrt(sum((p.grad ** 2).sum() for p in twin.parameters()))
    torch.testing.assert_close(clipped, torch.tensor(0.01), rtol=1e-4, atol=0)
    assert per_sample.shape == (4,) and t.shape == (4,) and not loss.requires_grad
    assert not torch.equal(model.conv_in.weight, twin.conv_in.weight)  # the step moved the weights


@pytest.mark.parametrize("field, value, message", [
    ("T", 0, "T must be an int >= 2"), ("T", 2.5, "T must be an int >= 2"), ("batch_size", 0, "batch_size"),
    ("lr", -1.0, "lr must be > 0"), ("schedule", "quadratic", "schedule must be one of"),
    ("warmup_steps", -1, "warmup_steps"), ("grad_clip", 0.0, "grad_clip"), ("ema_decay", 1.0, "ema_decay"),
    ("loss_weighting", "p2", "loss_weighting must be one of"), ("min_snr_gamma", 0.0, "min_snr_gamma"),
])
def test_config_rejects_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        default_config(**{field: value})


def test_v_loss_by_hand_and_its_weight():
    """v = sqrt(abar) noise - sqrt(1 - abar) x_0; Min-SNR on v: min(SNR, gamma) / (SNR + 1), which equals
    min(SNR, gamma) / SNR on the noise error because |noise - noise'|^2 = abar |v - v'|^2."""
    schedule, model = make_schedule("cosine", 20), UNet(TINY_V)
    x_0, noise, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 19])
    loss, per_sample, _ = diffusion_loss(model, schedule, x_0, t=t, noise=noise, weighting="min_snr", gamma=5.0)
    abar = schedule.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    x_t = abar.sqrt() * x_0 + (1 - abar).sqrt() * noise
    v = abar.sqrt() * noise - (1 - abar).sqrt() * x_0
    with autocast_for("cpu"):
        v_pred = model(x_t, t).float()
    expected = ((v - v_pred) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(per_sample, expected)
    snr = schedule.snr[t]
    w_v = (snr.clamp(max=5.0) / (snr + 1)).float()
    torch.testing.assert_close(loss, (w_v * expected).mean())
    noise_pred = abar.sqrt() * v_pred + (1 - abar).sqrt() * x_t
    noise_error = ((noise - noise_pred) ** 2).mean(dim=(1, 2, 3))
    w_noise = (snr.clamp(max=5.0) / snr).float()
    torch.testing.assert_close(w_v * expected, w_noise * noise_error, rtol=1e-4, atol=1e-6)


def test_measure_training_speed_counts_images_per_second():
    speed = measure_training_speed(tiny_config(), n_steps=2)
    assert 0 < speed < 1e6


def test_notebook_05_trains_the_images_the_checkpoint_records():
    """The visible parameter of notebook 05, cu.TRAIN_IMAGES and the committed checkpoint's record agree."""
    import json
    import re
    from pathlib import Path

    from course_utils import TRAIN_IMAGES

    root = Path(__file__).resolve().parent.parent
    cells = json.loads((root / "notebooks" / "05_ddpm_training.ipynb").read_text())["cells"]
    parameters = "".join(next(c for c in cells if c.get("id") == "parameters")["source"])
    full = int(re.search(r"n_images = cu\.pick\(full=([\d_]+),", parameters).group(1).replace("_", ""))
    assert full == TRAIN_IMAGES
    record = json.loads((root / "checkpoints" / "ddpm_fashion16.json").read_text())
    assert record["images_seen"] >= TRAIN_IMAGES and record["precision"] in ("float32", "bfloat16")


def test_learning_rate_warms_up_then_follows_its_decay():
    from course_utils import learning_rate

    constant = dataclasses.replace(tiny_config(lr=1e-2, lr_decay="none"), warmup_steps=10)
    assert [learning_rate(constant, s) for s in (0, 4, 9, 500)] == pytest.approx([1e-3, 5e-3, 1e-2, 1e-2])
    cosine = dataclasses.replace(constant, lr_decay="cosine")
    for p in (0.0, 0.25, 0.5, 1.0):  # after warm-up: lr (1 + cos(pi p)) / 2, p the share of the run done
        assert learning_rate(cosine, 50, p) == pytest.approx(1e-2 * (1 + math.cos(math.pi * p)) / 2)
    assert learning_rate(cosine, 4, 0.5) == pytest.approx(5e-3 * 0.5)  # warm-up and decay multiply
    wsd = dataclasses.replace(constant, lr_decay="wsd", decay_share=0.4)
    # constant until 1 - decay_share of the run, then linear to 0 at its end
    expected = {0.0: 1e-2, 0.3: 1e-2, 0.6: 1e-2, 0.7: 7.5e-3, 0.8: 5e-3, 0.9: 2.5e-3, 1.0: 0.0, 1.5: 0.0}
    assert [learning_rate(wsd, 50, p) for p in expected] == pytest.approx(list(expected.values()))
    for config in (cosine, wsd):
        with pytest.raises(ValueError, match="needs progress"):
            learning_rate(config, 50)
    with pytest.raises(ValueError, match="lr_decay must be one of"):
        tiny_config(lr_decay="linear")
    for share in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="decay_share must be in"):
            tiny_config(lr_decay="wsd", decay_share=share)


def test_train_decays_the_rate_over_the_images_or_the_time_budget():
    from course_utils import learning_rate

    config = tiny_config(lr_decay="wsd", decay_share=0.5, lr=1e-2)
    result = train(config, data=tiny_data(), n_images=80, progress=False, log_every=1)
    # step s runs when 8 s of the 80 images are done: the logged rate of every step follows learning_rate
    assert result.step == 10
    assert result.history["lr"] == pytest.approx([learning_rate(config, s, 8 * s / 80) for s in range(10)])
    assert result.history["lr"][2:5] == pytest.approx([1e-2] * 3) and result.history["lr"][-1] == pytest.approx(2e-3)
    # a run stopped by its time budget decays over the time: its last steps run at a small share of lr
    timed = train(config, data=tiny_data(), time_budget_s=2.0, progress=False, log_every=1)
    assert timed.history["stopped_by"] == "time" and timed.step > 20
    assert timed.history["lr"][2] == pytest.approx(1e-2) and timed.history["lr"][-1] < 0.2e-2


def test_snr_weighting_is_l_simple_for_every_target():
    """x_0 weight SNR: 1 on the noise error, SNR on the x_0 error, alpha_bar on the v error, so the "snr" v loss
    is exactly the squared error of the noise prediction the v output implies (Ho et al. 2020, eq. 14)."""
    schedule, t = make_schedule("cosine", 50), torch.arange(50)
    torch.testing.assert_close(loss_weights(schedule, t, "snr", prediction="noise"), torch.ones(50))
    torch.testing.assert_close(loss_weights(schedule, t, "snr", prediction="x0"), schedule.snr.float())
    torch.testing.assert_close(loss_weights(schedule, t, "snr", prediction="v"), schedule.alphas_cumprod.float())
    # Min-SNR-gamma with a cap above every SNR of the schedule is the same weighting
    torch.testing.assert_close(loss_weights(schedule, t, "min_snr", gamma=1e9, prediction="v"),
                               loss_weights(schedule, t, "snr", prediction="v"))

    schedule, model = make_schedule("cosine", 20), UNet(TINY_V)
    x_0, noise, t = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8), torch.tensor([0, 7, 19])
    loss, _, _ = diffusion_loss(model, schedule, x_0, t=t, noise=noise, weighting="snr")
    x_t = q_sample(schedule, x_0, t, noise)
    with autocast_for("cpu"):
        noise_pred = predict_noise(model, x_t, t, schedule=schedule).float()
    torch.testing.assert_close(loss, ((noise - noise_pred) ** 2).mean())
