r"""Particle measurement speed: `tem_rf.particles.measure_particles` on a full-size mask.

  python3 -m benchmarks.bench_particles                        # 4096x4096, ~2900 particles, 20-60 px
  python3 -m benchmarks.bench_particles --size=1024 --repeats=2  # quick

The mask is synthetic and seeded: elliptical particles (equivalent diameter ``--diameter_px``,
aspect ratio 1-1.5) on a jittered grid, so that about ``--touching`` of them touch or overlap a
neighbour (the watershed splits those) and a few have holes (filled); particles are cut by the
image edge as in a micrograph. A probability map is given too (for ``mean_probability``), and
the labels image is made (``return_labels``), as a binary measuring a segmentation would; one configuration
also gives the micrograph (intensity mean and standard deviation, as ``segment`` measures).
Every configuration includes the ImageJ-style descriptors (`tem_rf.particles.descriptors`).
Each configuration is timed ``--repeats`` times and the fastest counts (the machine may be
shared; the process's CPU seconds, all threads, are given too); `measure_particles` uses up to 4
threads (``threads``), and one configuration uses one. Whole-image hole filling and labelling are
timed separately once, for scale.
Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
from absl import flags

from tem_rf.core import cli

from benchmarks.particle_masks import synthetic_mask
_SIZE = flags.DEFINE_integer("size", 4096, "Mask height and width in px.")
_DIAMETER = flags.DEFINE_list("diameter_px", ["20", "60"], "Range of particle diameters in px.")
_TOUCHING = flags.DEFINE_float("touching", 0.15, "Fraction of particles drawn touching a neighbour.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the fastest counts.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic mask.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/particles.json", "Where to write JSON.")


def main(argv: list[str]) -> None:
    del argv
    from scipy import ndimage

    from tem_rf.core.files import write_json
    from tem_rf.particles import measure_particles, summarise
    from tem_rf.particles.masks import fill_holes
    from tem_rf.particles.measure import default_threads

    size = _SIZE.value
    diameter_px = (float(_DIAMETER.value[0]), float(_DIAMETER.value[1]))
    mask = synthetic_mask(size, diameter_px, _TOUCHING.value, _SEED.value)
    probability = np.where(mask, np.float32(0.9), np.float32(0.1))
    # a micrograph under the mask, for the particles' intensity mean and standard deviation
    image = np.random.default_rng(_SEED.value).normal(1000.0, 30.0, mask.shape).astype(np.float32) - 300.0 * mask
    pixel_size_nm = 0.1243
    components = ndimage.label(mask, structure=np.ones((3, 3)))[1]

    configurations = {
        "mask only": {},
        "mask + probability + labels": {"probability": probability, "return_labels": True},
        "mask + probability + image + labels": {"probability": probability, "image": image, "return_labels": True},
        "mask + probability + labels, 1 thread": {"probability": probability, "return_labels": True, "threads": 1},
        "no splitting": {"split_touching": False},
    }
    rows = []
    particles = None
    threads = default_threads()
    for name, options in configurations.items():
        seconds, cpu_seconds = [], []
        for _ in range(_REPEATS.value):
            start, cpu_start = time.perf_counter(), time.process_time()
            result = measure_particles(mask, pixel_size_nm, **options)
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
        found = result[0] if isinstance(result, tuple) else result
        if particles is None:
            particles = found
        rows.append({"configuration": name, "threads": options.get("threads", threads),
                     "particles": len(found), "seconds": [round(s, 3) for s in seconds],
                     "best_s": round(min(seconds), 3), "cpu_s": round(min(cpu_seconds), 3)})
    start = time.perf_counter()
    filled = fill_holes(mask)
    fill_s = time.perf_counter() - start
    start = time.perf_counter()
    ndimage.label(filled, structure=np.ones((3, 3)))
    label_s = time.perf_counter() - start
    summary = summarise(particles, mask.shape, pixel_size_nm)

    print(f"measure_particles on a {size}x{size} mask: {components} components, "
          f"{len(particles)} particles after splitting, {summary['count_edge']} at the edge")
    print(f"{'configuration':<40} {'threads':>7} {'particles':>9} {'best s':>8} {'CPU s':>8}  runs")
    for row in rows:
        print(f"{row['configuration']:<40} {row['threads']:>7} {row['particles']:>9} {row['best_s']:>8.3f} "
              f"{row['cpu_s']:>8.3f}  {row['seconds']}")
    print(f"whole-image stages alone: fill holes {fill_s:.3f} s, label {label_s:.3f} s")
    result = {
        "benchmark": "particles", "size": size, "diameter_px": list(diameter_px), "touching": _TOUCHING.value,
        "seed": _SEED.value, "components": components, "particles": len(particles),
        "edge_particles": summary["count_edge"], "configurations": rows,
        "fill_holes_s": round(fill_s, 3), "label_s": round(label_s, 3),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_average_at_end": list(os.getloadavg()),
    }
    write_json(_OUT.value, result)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
