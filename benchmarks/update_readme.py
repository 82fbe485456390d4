"""Paste the result files of benchmarks/results/ into benchmarks/README.md, verbatim, between two marker comments.

    .venv/bin/python benchmarks/update_readme.py

Each file becomes a "###" section named after its own title and the command that wrote it; the text
between ``<!-- results:start -->`` and ``<!-- results:end -->`` is replaced, nothing else is touched.
tests/test_docs.py checks that benchmarks/README.md holds every result file as it is.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCH_README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# result file -> the command that writes it (in the order the README shows them)
SECTIONS = {
    "images_to_target_default_dpm10.md": "images_to_target.py --images 25000 50000 100000 --sampler dpm2m --steps 10 --seeds 5; "
                                         "the 150000 and 300000 rows: --images 150000, --images 300000; merged",
    "images_to_target_default_dpm10_bf16.md": "COURSE_PRECISION=bf16 images_to_target.py --images 25000 50000 100000 150000 "
                                              "--sampler dpm2m --steps 10 --seeds 5 --tag default_dpm10_bf16",
    "sample_speed_cpu_fp32.md": "COURSE_PRECISION=fp32 sample_speed.py --tag fp32",
    "sample_speed_cpu_bf16.md": "COURSE_PRECISION=bf16 sample_speed.py --tag bf16",
    "sample_speed_cpu_fp32_avx2.md": "ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 COURSE_PRECISION=fp32 "
                                     "sample_speed.py --tag fp32_avx2",
    "samplers_cpu.md": "samplers.py --checkpoint checkpoints/ddpm_fashion16.pt",
    "fid_spread_cpu.md": "fid_spread.py --checkpoint checkpoints/ddpm_fashion16.pt",
    "train_quality_3min_cpu.md": "COURSE_PRECISION=fp32 train_quality.py --minutes 3",
    "train_quality_3min_cpu_bf16.md": "COURSE_PRECISION=bf16 train_quality.py --minutes 3 --tag bf16",
    "train_quality_6min_cpu.md": "COURSE_PRECISION=fp32 train_quality.py --minutes 6",
    "train_quality_12min_cpu.md": "COURSE_PRECISION=fp32 train_quality.py --minutes 12 --sampler ddim --steps 50 "
                                  "--save runs/bench_quality_12min.pt",
    "peer_3min_cpu.md": "COURSE_PRECISION=fp32 peer.py --minutes 3",
    "peer_12min_cpu.md": "COURSE_PRECISION=fp32 peer.py --minutes 12 --ours-checkpoint runs/bench_quality_12min.pt",
    "peer_25k_images_cpu.md": "COURSE_PRECISION=fp32 peer.py --images 25000",
    "design_space.md": "design_space.py (all runs: noise-uniform noise-elbo noise-min_snr x0-uniform v-uniform v-min_snr v-snr zsnr-off zsnr-on)",
    "notebook10_flow_vs_ddim.md": "notebook_tables.py, after notebook 10's full run",
    "notebook11_solvers.md": "notebook_tables.py, after notebook 11's full run",
}


def section(name, command):
    """'### <title> (`<command>`)' followed by the result file without its own '####' title line."""
    title, body = (RESULTS / name).read_text().split("\n", 1)
    return f"### {title.removeprefix('#### ')} (`{command}`)\n{body}"


def main():
    readme = BENCH_README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{BENCH_README} needs the markers {START} and {END} around the results")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    missing = [name for name in SECTIONS if not (RESULTS / name).is_file()]
    if missing:
        raise SystemExit(f"no result file for {', '.join(missing)}: run the benchmark first")
    body = "\n".join(section(name, command) for name, command in SECTIONS.items())
    BENCH_README.write_text(f"{head}{START}\n\n{body}\n{END}{tail}")
    print(f"benchmarks/README.md: pasted {len(SECTIONS)} result files")


if __name__ == "__main__":
    main()
