r"""Seconds and peak memory to segment one full-size micrograph, per network depth.

  python3 -m benchmarks.bench_inference                          # N=2,3,4, pools 2, 4096x4096
  python3 -m benchmarks.bench_inference --num_blocks=2 --size=1024 --tile_size=512   # quick

Each network (untrained: timing does not depend on the weights) is exported as a SavedModel and
run in its own process, so peak memory (``ru_maxrss``) is that network's alone. A synthetic
high-resolution demo micrograph (uint16 TIFF with pixel size) is segmented end to end with
`tem_rf.serve.segment.segment_file` (read, preprocess, tiled inference, write mask + overlay), after
one warm-up call that traces the graph. ``preprocess_s`` and ``inference_s`` time
`preprocess_micrograph` and `predict_probability` alone. Each stage is timed ``--repeats`` times
and the fastest is reported (the machine may be shared), with the CPU seconds of segmenting
(all threads; on an idle 2-core machine wall time is about half of it when both cores work);
peak RSS covers everything. Prints a
table and writes JSON (``--json_out``).

**Measuring particles** (``--measure``, default on): the first network also segments the
micrograph with and without measuring its particles (`segment_file(measure=True)`:
``<stem>_particles.csv``, ``<stem>_labels.tif``, instance outlines in the overlay), in
``--measure_pairs`` pairs (which of the two goes first alternates, so a drift in the machine's
speed hits both alike). The figure is the median over the pairs of the added seconds over that
pair's time without measuring (a pair's ratio is what this noisy machine measures well); the
fastest of each is given too. An untrained network's mask is noise, not particles,
so for these two rows the network still runs in full but its output is replaced by a seeded
particle mask (`benchmarks.particle_masks.synthetic_mask`, ``--particles_diameter_px``: ~3200
particles of 20-60 px at 4096x4096, some touching, a few with holes; all counted,
``min_particle_area_px=16``), the case the particles budget is set for: measuring may add at
most 20 % to segment's time.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

_NUM_BLOCKS = flags.DEFINE_list("num_blocks", ["2", "3", "4"], "Network depths N to time.")
_POOL_SIZE = flags.DEFINE_integer("pool_size", 2, "Pool size at every level.")
_SIZE = flags.DEFINE_integer("size", 4096, "Micrograph height and width in px.")
_TILE_SIZE = flags.DEFINE_integer("tile_size", 1024, "Core tile size (0: one pass).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Tiles per network call.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 3, "Time each stage this many times and report the fastest (shared machines).",
    lower_bound=1,
)
_JSON_OUT = flags.DEFINE_string(
    "json_out", "benchmarks/results/inference_cpu.json", "Where to write the results."
)
_MEASURE = flags.DEFINE_boolean("measure", True, "Also time segment with vs without measuring particles (first N).")
_PARTICLES_DIAMETER = flags.DEFINE_list("particles_diameter_px", ["20", "60"],
                                        "Particle diameters (px) of the mask that replaces the network's output "
                                        "in the measuring rows.")
_MEASURE_PAIRS = flags.DEFINE_integer("measure_pairs", 11, "Pairs of segment calls with and without measuring.",
                                      lower_bound=1)
_WORKER = flags.DEFINE_string("worker_micrograph", None, "Internal: time one network on this file.")
_WORKER_MEASURE = flags.DEFINE_boolean("worker_measure", False, "Internal: time the measuring rows too.")

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _worker(micrograph: Path, num_blocks: int) -> dict:
    """Runs in a fresh process: export, load, warm up, segment; returns one result row."""
    import numpy as np

    from tem_rf.data import preprocess_micrograph
    from tem_rf.serve.export import export_saved_model
    from tem_rf.serve.predictor import load_predictor
    from tem_rf.serve.tiling import predict_probability
    from tem_rf.serve.segment import segment_file
    from tem_rf.serve.segment_command import frozen_heap
    from tem_rf.data.reading import read_micrograph
    from tem_rf.models import count_trainable_parameters, residual_unet

    model = residual_unet(num_blocks, _POOL_SIZE.value, seed=0)
    params = count_trainable_parameters(model)
    with tempfile.TemporaryDirectory() as tmp:
        export_saved_model(model, Path(tmp) / "model", {"pixel_size_nm": 0.02152})
        del model
        start = time.perf_counter()
        predictor = load_predictor(Path(tmp) / "model")
        load_s = time.perf_counter() - start
        tile = _TILE_SIZE.value or None
        window = _SIZE.value if tile is None else min(tile + 2 * predictor.halo_px, _SIZE.value)
        start = time.perf_counter()
        predictor(np.zeros((_BATCH_SIZE.value, window, window, 1), np.float32))  # trace
        warmup_s = time.perf_counter() - start
        rss_ready_mb = _peak_rss_mb()

        # As the segment command does (`segment_micrographs`): the loaded model's objects out of
        # full garbage collections while micrographs are segmented.
        with frozen_heap():
            segment_s, segment_cpu_s, preprocess_s, inference_s = [], [], [], []
            for _ in range(_REPEATS.value):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = segment_file(
                    micrograph, predictor, Path(tmp) / "out", tile_size=tile,
                    batch_size=_BATCH_SIZE.value, measure=False,
                )
                segment_s.append(time.perf_counter() - start)
                segment_cpu_s.append(time.process_time() - start_cpu)
            peak_mb = _peak_rss_mb()

            image = read_micrograph(micrograph).data
            for _ in range(_REPEATS.value):
                start = time.perf_counter()
                standardised = preprocess_micrograph(image, predictor.xray_threshold)
                preprocess_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                predict_probability(
                    standardised, predictor, tile_size=tile, batch_size=_BATCH_SIZE.value
                )
                inference_s.append(time.perf_counter() - start)
            measuring = {}
            if _WORKER_MEASURE.value:
                measuring = _measure_rows(micrograph, predictor, Path(tmp) / "measure", tile)
    return {
        "num_blocks": num_blocks,
        "pool_sizes": [_POOL_SIZE.value] * num_blocks,
        "trainable_params": params,
        "receptive_field_px": predictor.metadata["receptive_field_px"],
        "halo_px": predictor.halo_px,
        "tile_size": _TILE_SIZE.value,
        "window_px": window,
        "batch_size": _BATCH_SIZE.value,
        "load_s": round(load_s, 3),
        "warmup_s": round(warmup_s, 3),
        "repeats": _REPEATS.value,
        "segment_s": round(min(segment_s), 3),  # fastest of the repeats
        "preprocess_s": round(min(preprocess_s), 3),
        "inference_s": round(min(inference_s), 3),
        "segment_s_all": [round(t, 3) for t in segment_s],
        # CPU seconds (all threads): less sensitive to other processes than wall time.
        "segment_cpu_s": round(min(segment_cpu_s), 3),
        "rss_ready_mb": round(rss_ready_mb, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "particle_fraction": round(result.particle_fraction, 4),
        **measuring,
    }


def _measure_rows(micrograph: Path, predictor, out: Path, tile: int | None) -> dict:
    """Segment with and without measuring, alternately; the network's output replaced by a
    particle mask (module docstring). Fastest of ``--repeats`` each."""
    from unittest import mock

    import numpy as np

    from benchmarks.particle_masks import synthetic_mask
    from tem_rf.serve import segment as segment_lib

    diameter = (float(_PARTICLES_DIAMETER.value[0]), float(_PARTICLES_DIAMETER.value[1]))
    particles = synthetic_mask(_SIZE.value, diameter, 0.15, 0)
    replacement = np.where(particles, np.float32(0.9), np.float32(0.1))
    real = segment_lib.predict_probability

    def predict(*args, **kwargs):
        real(*args, **kwargs)  # the network's full cost
        return replacement

    seconds: dict[bool, list[float]] = {False: [], True: []}
    with mock.patch.object(segment_lib, "predict_probability", predict):
        for pair in range(_MEASURE_PAIRS.value):
            for measure in (False, True) if pair % 2 == 0 else (True, False):
                start = time.perf_counter()
                result = segment_lib.segment_file(micrograph, predictor, out, tile_size=tile,
                                                  batch_size=_BATCH_SIZE.value, measure=measure,
                                                  min_particle_area_px=16)
                seconds[measure].append(time.perf_counter() - start)
                if measure:
                    count = result.particles["count"]
        start = time.perf_counter()
        from tem_rf.particles import measure_particles

        measure_particles(particles, 0.02152, probability=replacement, min_area_px=16, return_labels=True)
        alone = time.perf_counter() - start
    without, with_ = np.array(seconds[False]), np.array(seconds[True])
    added = 100 * (with_ - without) / without
    return {
        "measure_particles": count,
        "measure_pairs": len(added),
        "measure_added_percent": round(float(np.median(added)), 1),
        "measure_added_s": round(float(np.median(with_ - without)), 3),
        "measure_added_percent_pairs": [round(float(a), 1) for a in added],
        "segment_nomeasure_s": round(float(np.median(without)), 3),
        "segment_measure_s": round(float(np.median(with_)), 3),
        "segment_nomeasure_fastest_s": round(float(without.min()), 3),
        "segment_measure_fastest_s": round(float(with_.min()), 3),
        "measure_particles_alone_s": round(alone, 3),
        "segment_nomeasure_s_all": [round(float(t), 3) for t in without],
        "segment_measure_s_all": [round(float(t), 3) for t in with_],
    }


def _write_micrograph(path: Path, size: int) -> None:
    import numpy as np
    import tifffile

    from tem_rf.data.synthetic import make_micrograph

    image, _ = make_micrograph("high_res", size=size, rng=0)
    tifffile.imwrite(
        path, np.clip(np.rint(image), 0, 65535).astype(np.uint16), imagej=True,
        resolution=(1 / 0.02152, 1 / 0.02152), metadata={"unit": "nm"},
    )


def main(argv: list[str]) -> None:
    del argv
    if _WORKER.value:
        print("RESULT " + json.dumps(_worker(Path(_WORKER.value), int(_NUM_BLOCKS.value[0]))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        micrograph = Path(tmp) / f"demo_{_SIZE.value}.tif"
        _write_micrograph(micrograph, _SIZE.value)
        for n in _NUM_BLOCKS.value:
            command = [
                sys.executable, "-m", "benchmarks.bench_inference", f"--worker_micrograph={micrograph}",
                f"--num_blocks={n}", f"--pool_size={_POOL_SIZE.value}", f"--size={_SIZE.value}",
                f"--tile_size={_TILE_SIZE.value}", f"--batch_size={_BATCH_SIZE.value}",
                f"--repeats={_REPEATS.value}", f"--particles_diameter_px={','.join(_PARTICLES_DIAMETER.value)}",
                f"--worker_measure={_MEASURE.value and n == _NUM_BLOCKS.value[0]}",
                f"--measure_pairs={_MEASURE_PAIRS.value}",
            ]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
            lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if out.returncode or not lines:
                sys.exit(f"error: worker N={n} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(lines[-1][len("RESULT "):]))
            row = rows[-1]
            print(
                f"N={n}: segment {row['segment_s']:.2f} s (preprocess {row['preprocess_s']:.2f} s, "
                f"inference {row['inference_s']:.2f} s), peak RSS {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            if "segment_measure_s" in row:
                print(
                    f"N={n}: segment with measuring {row['segment_measure_s']:.2f} s vs without "
                    f"{row['segment_nomeasure_s']:.2f} s (medians of {row['measure_pairs']} pairs): "
                    f"+{row['measure_added_s']:.2f} s, +{row['measure_added_percent']:.1f} % (median of the "
                    f"pairs' ratios) for {row['measure_particles']} particles "
                    f"(measure_particles alone {row['measure_particles_alone_s']:.2f} s)",
                    flush=True,
                )
    import tensorflow as tf

    report = {
        "what": f"segment one {_SIZE.value}x{_SIZE.value} micrograph (SavedModel, CPU)",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
        },
        "load_average_at_end": list(os.getloadavg()),
        "rows": rows,
    }
    header = (
        f"{'N':>2}{'params':>8}{'RF':>5}{'halo':>6}{'window':>8}{'load s':>8}{'warmup s':>10}"
        f"{'segment s':>11}{'(cpu s)':>9}{'preproc s':>11}{'infer s':>9}{'peak MB':>9}"
    )
    print(
        f"\n{report['what']}, tile {_TILE_SIZE.value}, batch {_BATCH_SIZE.value}, "
        f"{os.cpu_count()} CPU cores, fastest of {_REPEATS.value}\n{header}\n{'-' * len(header)}"
    )
    for r in rows:
        print(
            f"{r['num_blocks']:>2}{r['trainable_params']:>8}{r['receptive_field_px']:>5}"
            f"{r['halo_px']:>6}{r['window_px']:>8}{r['load_s']:>8.2f}{r['warmup_s']:>10.2f}"
            f"{r['segment_s']:>11.2f}{r['segment_cpu_s']:>9.2f}{r['preprocess_s']:>11.2f}{r['inference_s']:>9.2f}"
            f"{r['peak_rss_mb']:>9.0f}"
        )
    for r in rows:
        if "segment_measure_s" in r:
            print(
                f"\nN={r['num_blocks']}, measuring {r['measure_particles']} particles: segment "
                f"{r['segment_nomeasure_s']:.2f} s -> {r['segment_measure_s']:.2f} s with measuring "
                f"(+{r['measure_added_percent']:.1f} %, median of {r['measure_pairs']} paired ratios; "
                f"budget 20 %)"
            )
    if _JSON_OUT.value:
        from tem_rf.core.files import write_json

        write_json(_JSON_OUT.value, report)
        print(f"wrote {_JSON_OUT.value}")


if __name__ == "__main__":
    app.run(main)
