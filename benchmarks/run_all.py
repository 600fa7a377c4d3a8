r"""Runs every benchmark and writes ``BENCHMARKS.md`` (a table) and ``benchmarks/results/all.json``.

  python3 -m benchmarks.run_all            # full: the figures in BENCHMARKS.md (~20 min on 2 CPU cores)
  python3 -m benchmarks.run_all --quick    # smaller sizes, a few minutes; writes under benchmarks/results/quick/
  python3 -m benchmarks.run_all --precisions=float32,mixed_float16   # on a GPU: mixed-precision speed-up

Each benchmark runs in its own process (`bench_input_pipeline`, `bench_training` with the PyTorch
reference when torch is installed, `profile_training`, `bench_inference` (with the particle
measuring rows), `bench_data_prep`, `bench_particles`),
writes its JSON, and
the report collects them with the machine's description (CPU model, cores, memory, load,
TensorFlow and PyTorch versions, GPU). Ratios inside one benchmark come from one process with
alternating rounds; absolute times hold for the machine named in the report.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import statistics
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from absl import flags

from tem_rf.core import cli

_QUICK = flags.DEFINE_bool("quick", False, "Small sizes and few rounds: checks that everything runs.")
_PRECISIONS = flags.DEFINE_string(
    "precisions", None, "Training precisions (default: float32, plus mixed_float16 when a GPU is visible)."
)
_ONLY = flags.DEFINE_list(
    "only", None,
    "Run only these (input_pipeline, training, profile, inference, data_prep, particles, scale); the other figures "
    "are kept from the last all.json of the same mode.",
)
_REPORT = flags.DEFINE_string("report", None, "Markdown report (default: BENCHMARKS.md; quick: under results/quick).")
_NOTE = flags.DEFINE_string("note", "", "A line about the run's conditions (e.g. shared machine) for the report.")

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("input_pipeline", "training", "profile", "inference", "data_prep", "particles", "scale")


def machine_info() -> dict[str, Any]:
    """What the absolute figures depend on."""
    import tensorflow as tf

    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpus = tf.config.list_physical_devices("GPU")
    torch_version = None
    if importlib.util.find_spec("torch"):
        import torch

        torch_version = torch.__version__
    return {
        "cpu_model": cpu_model, "cpu_count": os.cpu_count(), "memory_gib": memory_gib,
        "platform": platform.platform(), "python": platform.python_version(),
        "tensorflow": tf.__version__, "torch": torch_version,
        "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus],
    }


def plan(quick: bool, precisions: str, results: Path, torch: bool) -> dict[str, list[str]]:
    """The command line of each benchmark (module and flags)."""
    out = lambda name: f"--out={results / (name + '.json')}"  # noqa: E731
    if quick:
        return {
            "input_pipeline": ["benchmarks.bench_input_pipeline", "--patch_size=128", "--steps=10",
                               "--rounds=3", out("input_pipeline")],
            "training": ["benchmarks.bench_training", "--num_blocks=2", "--patch_size=256", "--steps=2",
                         "--rounds=2", "--bn=fused,keras", "--xla=false,true", f"--precisions={precisions}",
                         f"--torch={torch}", out("training")],
            "profile": ["benchmarks.profile_training", "--num_blocks=2", "--patch_size=256", "--steps=2",
                        out("profile_training")],
            "inference": ["benchmarks.bench_inference", "--num_blocks=2", "--size=2048", "--repeats=1",
                          f"--json_out={results / 'inference.json'}"],
            "data_prep": ["benchmarks.bench_data_prep", "--num_images=3", "--size=2048", "--repeats=1",
                          out("data_prep")],
            "particles": ["benchmarks.bench_particles", "--size=1024", "--repeats=1", out("particles")],
            "scale": ["benchmarks.bench_scale", "--size=1024", "--repeats=1", out("scale")],
        }
    return {
        "input_pipeline": ["benchmarks.bench_input_pipeline", "--patch_size=512", "--batch_size=8",
                           "--steps=6", "--rounds=4", out("input_pipeline")],
        "training": ["benchmarks.bench_training", "--num_blocks=2,3,4", "--patch_size=512", "--steps=2",
                     "--rounds=3", "--bn=fused,keras", "--xla=false,true", f"--precisions={precisions}",
                     f"--torch={torch}", out("training")],
        "profile": ["benchmarks.profile_training", "--num_blocks=2", "--patch_size=512", "--batch_size=8",
                    "--steps=3", out("profile_training")],
        "inference": ["benchmarks.bench_inference", "--num_blocks=2,3,4", "--size=4096", "--repeats=3",
                      f"--json_out={results / 'inference.json'}"],
        "data_prep": ["benchmarks.bench_data_prep", "--num_images=6", "--size=4096", "--repeats=2",
                      out("data_prep")],
        "particles": ["benchmarks.bench_particles", "--size=4096", "--repeats=5", out("particles")],
        "scale": ["benchmarks.bench_scale", "--size=4096", "--repeats=3", out("scale")],
    }


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def report_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(what, configuration, figure, command)`` rows for the Markdown table."""
    rows = []
    if "input_pipeline" in results:
        r, cmd = results["input_pipeline"]["result"], results["input_pipeline"]["command"]
        config = f"N={r['num_blocks']}, {r['patch_size']} px, batch {r['batch_size']}, best of {r['rounds']} rounds"
        rows.append(("Input pipeline: training fed by TFRecords vs in memory (goal: <= 5 % overhead)", config,
                     f"{_fmt(r['train_patches_per_s']['reader'], 1)} vs {_fmt(r['train_patches_per_s']['memory'], 1)} "
                     f"patches/s: wall {r['reader_overhead_percent']:+.1f} % (medians "
                     f"{r['reader_overhead_percent_median']:+.1f} %), CPU time {r['reader_cpu_overhead_percent']:+.1f} %",
                     cmd))
        rows.append(("Input pipeline: reader alone", config,
                     f"{_fmt(r['reader_alone_patches_per_s'], 0)} patches/s", cmd))
    if "training" in results:
        r, cmd = results["training"]["result"], results["training"]["command"]
        rows.append(("float32 matrix multiply (tf.linalg.matmul 2048^2)", "reference rate of this machine",
                     f"{r['matmul_gflops']} GFLOP/s", cmd))
        torch_best = {}
        for row in r["rows"]:
            if row["framework"] != "keras":
                n = row["num_blocks"]
                torch_best[n] = max(torch_best.get(n, 0.0), row["patches_per_second"])
        for row in r["rows"]:
            size = f"{row['patch_size']}^2, batch {row['batch_size']}, {row['precision']}"
            if row["framework"] == "keras":
                config = f"Keras N={row['num_blocks']}, {size}, BN {row['bn']}, XLA {'on' if row['xla'] else 'off'}"
            else:
                config = (f"PyTorch {row['framework'].split()[-1]} N={row['num_blocks']}, {size}, "
                          f"{'channels-last' if row['channels_last'] else 'channels-first'}")
            figure = f"{_fmt(row['patches_per_second'])} patches/s (median {_fmt(row['patches_per_second_median'])})"
            if row.get("gflops"):
                figure += f", {_fmt(row['gflops'], 1)} GFLOP/s = {100 * row['gflops'] / r['matmul_gflops']:.0f} % of matmul"
            if row["framework"] == "keras" and row["num_blocks"] in torch_best:
                figure += f", {row['patches_per_second'] / torch_best[row['num_blocks']]:.2f}x best PyTorch"
            rows.append((f"Training step ({r['device']})", config, figure, cmd))
    if "profile" in results:
        r, cmd = results["profile"]["result"], results["profile"]["command"]
        for row in r["rows"]:
            top = ", ".join(f"{op} {100 * share:.0f} %" for op, share in list(row["op_share"].items())[:6])
            rows.append((
                "Training step profile (TF profiler, kernel time by op type)",
                f"N={r['num_blocks']}, {r['patch_size']}^2, batch {r['batch_size']}, float32, BN {row['bn']}",
                f"convolutions {100 * row['convolution_share']:.0f} % of kernel time; {top}",
                cmd,
            ))
    if "inference" in results:
        r, cmd = results["inference"]["result"], results["inference"]["command"]
        for row in r["rows"]:
            config = (f"N={row['num_blocks']}, pools 2, {r['what'].split()[2]}, tile {row['tile_size']} + halo "
                      f"{row['halo_px']}, best of {row['repeats']}")
            rows.append(("Whole-micrograph segmentation (goal N=2: < 10 s)", config,
                         f"{_fmt(row['segment_s'])} s end to end (preprocess {_fmt(row['preprocess_s'])} s, "
                         f"network {_fmt(row['inference_s'])} s), peak RSS {row['peak_rss_mb']:.0f} MB", cmd))
            if "measure_added_percent" in row and "measure_pairs" in row:
                rows.append((
                    "Measuring particles in segment (goal: adds <= 20 %)",
                    f"N={row['num_blocks']}, {r['what'].split()[2]}, {row['measure_particles']} particles of a "
                    f"synthetic mask, {row['measure_pairs']} pairs with/without",
                    f"+{row['measure_added_percent']:.1f} % (median of the pairs' ratios; "
                    f"+{_fmt(row['measure_added_s'])} s: {_fmt(row['segment_nomeasure_s'])} -> "
                    f"{_fmt(row['segment_measure_s'])} s, medians)", cmd))
    if "data_prep" in results:
        r, cmd = results["data_prep"]["result"], results["data_prep"]["command"]
        rows.append(("Data prep: build_dataset (make_tfrecords)",
                     f"{r['num_images']} micrographs {r['size']}^2 uint16, {r['patch_size']} px patches",
                     f"{_fmt(r['micrographs_per_second'])} micrographs/s (read {_fmt(r['read_s'])} s, "
                     f"preprocess {_fmt(r['preprocess_s'])} s per micrograph)", cmd))
    if "particles" in results:
        r, cmd = results["particles"]["result"], results["particles"]["command"]
        for row in r["configurations"]:
            rows.append((
                "measure_particles alone",
                f"{r['size']}^2 mask, {row['particles']} particles ({row['configuration'].split(', 1 thread')[0]}), "
                f"{row['threads']} thread{'' if row['threads'] == 1 else 's'}, best of {len(row['seconds'])}",
                f"{_fmt(row['best_s'], 3)} s (CPU {_fmt(row['cpu_s'], 3)} s)", cmd))
    if "scale" in results:
        r, cmd = results["scale"]["result"], results["scale"]["command"]
        for row in r["rows"]:
            resampled = statistics.median(row["resampled_s"])
            rows.append((
                "Applying the network at its training pixel size (resampling there and back)",
                f"N={r['num_blocks']}, {r['size']}^2 micrograph at {row['pixel_size_factor']:g}x the training pixel "
                f"size (network grid {'x'.join(map(str, row['network_grid']))}), median of {len(row['resampled_s'])}",
                f"{_fmt(resampled)} s: {100 * row['overhead']:+.1f} % on the network alone at that grid "
                f"({_fmt(statistics.median(row['on_grid_s']))} s), {100 * row['vs_native']:+.1f} % on the native grid "
                f"({_fmt(statistics.median(row['native_grid_s']))} s)", cmd))
    return rows


def write_report(
    path: Path, machine: dict[str, Any], results: dict[str, Any], quick: bool, note: str, results_dir: str
) -> None:
    from tem_rf.core.files import atomic_write_text

    gpu = ", ".join(machine["gpus"]) or "none"
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python3 -m benchmarks.run_all{' --quick' if quick else ''}` on "
        f"{datetime.date.today().isoformat()}. Each figure's command is in its row; raw results: "
        f"`{results_dir}/*.json` (`all.json`: everything, with per-round figures).",
        "",
        f"**Machine:** {machine['cpu_model']}, {machine['cpu_count']} CPU cores, {machine['memory_gib']} GiB; "
        f"GPU: {gpu}; TensorFlow {machine['tensorflow']}, PyTorch {machine['torch'] or 'not installed'}, "
        f"Python {machine['python']}. Load average before/after: {machine['load_before']} / {machine['load_after']}.",
    ]
    if note:
        lines += ["", f"**Conditions:** {note}"]
    if not machine["gpus"]:
        lines += ["", "**GPU:** none on this machine, so mixed_float16 vs float32 training and GPU inference "
                  "are not measured here; on a GPU machine `python3 -m benchmarks.run_all "
                  "--precisions=float32,mixed_float16` measures both (the report names the card)."]
    lines += ["", "| what | configuration | figure | command |", "|---|---|---|---|"]
    for what, config, figure, cmd in report_rows(results):
        lines.append(f"| {what} | {config} | {figure} | `{cmd}` |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    del argv
    machine = machine_info()
    quick = _QUICK.value
    results_dir = ROOT / "benchmarks" / "results" / ("quick" if quick else "")
    results_dir.mkdir(parents=True, exist_ok=True)
    precisions = _PRECISIONS.value or ("float32,mixed_float16" if machine["gpus"] else "float32")
    commands = plan(quick, precisions, results_dir.relative_to(ROOT), machine["torch"] is not None)
    selected = _ONLY.value or list(NAMES)
    unknown = set(selected) - set(NAMES)
    if unknown:
        sys.exit(f"error: --only: unknown benchmark(s) {sorted(unknown)}; choose from {NAMES}")
    machine["load_before"] = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    previous = results_dir / "all.json"
    if _ONLY.value and previous.exists():
        # A partial rerun refreshes the selected benchmarks and keeps the rest of the report.
        earlier = json.loads(previous.read_text())
        if earlier.get("quick") == quick:
            results = {k: v for k, v in earlier["benchmarks"].items() if k in NAMES}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in selected:
        args = commands[name]
        command = " ".join(["python3", "-m", *map(shlex.quote, args)])
        print(f"[{name}] {command}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env)
        if done.returncode:
            sys.exit(f"error: benchmark {name} failed (exit {done.returncode}): {command}")
        out = next(a.split("=", 1)[1] for a in args if a.startswith(("--out=", "--json_out=")))
        results[name] = {
            "command": command, "seconds": round(time.perf_counter() - start, 1),
            "result": json.loads((ROOT / out).read_text()),
        }
    machine["load_after"] = [round(x, 2) for x in os.getloadavg()]
    from tem_rf.core.files import write_json

    payload = {"quick": quick, "machine": machine, "note": _NOTE.value, "benchmarks": results}
    write_json(results_dir / "all.json", payload)
    report = Path(_REPORT.value) if _REPORT.value else (results_dir / "BENCHMARKS.md" if quick else ROOT / "BENCHMARKS.md")
    write_report(report, machine, results, quick, _NOTE.value, str(results_dir.relative_to(ROOT)))
    print(f"wrote {results_dir / 'all.json'} and {report}")


if __name__ == "__main__":
    cli.run(main)
