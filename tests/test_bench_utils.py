"""benchmarks/bench_utils: ``sample`` runs the course sampler each name names, seeded, and refuses others;
``mean_over_seeds`` reduces several seeds' scores as the quality target does; ``cpu_capability`` names the code a
run used."""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

import course_utils as cu
from course_utils.samplers import ddim_sample_loop, p_sample_loop
from course_utils.solvers import dpm_solver_2m_sample

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_utils import cpu_capability, mean_over_seeds, sample  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    """A small untrained v-prediction U-Net on a short schedule, and its config."""
    base = cu.default_config()
    config = dataclasses.replace(base, T=20, model=dataclasses.replace(base.model, base_channels=8, attention=False))
    torch.manual_seed(0)
    return cu.UNet(config.model).eval(), config


@pytest.mark.parametrize("name, steps", [("ddpm", None), ("ddim", 5), ("dpm2m", 5)])
def test_sample_runs_the_named_sampler_with_the_seed(tiny, name, steps):
    model, config = tiny
    schedule, shape = config.make_schedule(), (3, 1, config.image_size, config.image_size)
    g = torch.Generator().manual_seed(7)
    expected = {"ddpm": lambda: p_sample_loop(model, schedule, shape, generator=g, progress=False),
                "ddim": lambda: ddim_sample_loop(model, schedule, shape, steps, generator=g, progress=False),
                "dpm2m": lambda: dpm_solver_2m_sample(model, schedule, shape, steps, generator=g, progress=False)}[name]()
    got = sample(model, config, 3, name, steps, torch.device("cpu"), seed=7)
    torch.testing.assert_close(got, expected)
    assert not torch.equal(got, sample(model, config, 3, name, steps, torch.device("cpu"), seed=8))


def test_sample_refuses_an_unknown_sampler(tiny):
    model, config = tiny
    with pytest.raises(ValueError, match="sampler must be 'ddpm', 'ddim' or 'dpm2m'.*'euler'"):
        sample(model, config, 2, "euler", 5, torch.device("cpu"))


def test_dpm2m_takes_the_spacing_it_is_given(tiny):
    model, config = tiny
    schedule, shape = config.make_schedule(), (3, 1, config.image_size, config.image_size)
    expected = dpm_solver_2m_sample(model, schedule, shape, 5, spacing="trailing",
                                    generator=torch.Generator().manual_seed(7), progress=False)
    got = sample(model, config, 3, "dpm2m", 5, torch.device("cpu"), seed=7, spacing="trailing")
    torch.testing.assert_close(got, expected)
    assert not torch.equal(got, sample(model, config, 3, "dpm2m", 5, torch.device("cpu"), seed=7))


def test_mean_over_seeds_averages_the_fid_and_keeps_the_rarest_class():
    seeds = [{"fid": 18.0, "min_class_share": 0.07, "confident_share": 0.6},
             {"fid": 21.0, "min_class_share": 0.048, "confident_share": 0.5},
             {"fid": 15.0, "min_class_share": 0.06, "confident_share": 0.7}]
    assert mean_over_seeds(seeds) == {"fid": pytest.approx(18.0), "min_class_share": 0.048}


def test_cpu_capability_says_when_onednn_is_held_to_older_code(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    plain = cpu_capability()
    assert plain.startswith(torch.backends.cpu.get_cpu_capability()) and "held" not in plain
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_capability() == plain + ", oneDNN held to AVX2"
