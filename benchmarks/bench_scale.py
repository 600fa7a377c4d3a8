r"""What applying a network at its training pixel size costs: `segment_image` of a micrograph whose
pixel size is half or twice the training one (resampled to it and back), against the same network
work on a micrograph already at that grid.

  python3 -m benchmarks.bench_scale                               # 4096x4096, N=2, 3 pairs each
  python3 -m benchmarks.bench_scale --size=1024 --repeats=1       # quick

For each factor three runs alternate: the micrograph at its own pixel size with
``--resample=auto`` (resample there, network, resample back); a micrograph already on the
network's grid (network only, the same number of network pixels: the difference is what
resampling costs); and the micrograph with ``--resample=never`` (what segment did before it
resampled: the network at the micrograph's grid). Medians of the per-round ratios are reported
(the machine may be shared). Untrained weights: the time does not depend
on them. Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
from absl import flags

from tem_rf.core import cli as tem_flags

_SIZE = flags.DEFINE_integer("size", 4096, "Micrograph height and width in px.")
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 2, "Depth N of the network.")
_TILE_SIZE = flags.DEFINE_integer("tile_size", 1024, "segment's tile size.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed pairs per factor.", lower_bound=1)
_OUT = flags.DEFINE_string("out", "benchmarks/results/scale.json", "Where to write JSON.")

TRAINING_NM = 0.1


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.core.files import write_json
    from tem_rf.models import residual_unet
    from tem_rf.serve.predictor import Predictor
    from tem_rf.serve.scale import plan_scale
    from tem_rf.serve.segment import segment_image
    from tem_rf.models.geometry import model_geometry

    model = residual_unet(_NUM_BLOCKS.value, seed=0)
    geometry = model_geometry(model)
    metadata = {"size_divisor": geometry.size_divisor, "halo_px": geometry.halo_px,
                "pixel_size_nm": TRAINING_NM, "architecture": model.name}

    def network(images):
        return {"particle_probability": model(images, training=False)[..., 1]}

    predictor = Predictor(network, metadata, "untrained")
    rng = np.random.default_rng(0)
    rows = []
    for factor in (0.5, 2.0):  # the micrograph's pixel size over the training one
        micrograph = rng.normal(1000, 30, (_SIZE.value, _SIZE.value)).astype(np.float32)
        plan = plan_scale(None, micrograph.shape, TRAINING_NM * factor, "file", TRAINING_NM)
        on_grid = rng.normal(1000, 30, plan.network_shape).astype(np.float32)
        segment_image(on_grid[:256, :256], predictor, tile_size=_TILE_SIZE.value)  # warm up the traces
        with_s, without_s, native_s = [], [], []
        for _ in range(_REPEATS.value):
            for times, image, scale in ((with_s, micrograph, plan), (without_s, on_grid, None),
                                        (native_s, micrograph, None)):
                start = time.perf_counter()
                segment_image(image, predictor, tile_size=_TILE_SIZE.value, scale=scale)
                times.append(time.perf_counter() - start)
        rows.append({
            "pixel_size_factor": factor, "resample_factor": plan.factor, "micrograph": list(micrograph.shape),
            "network_grid": list(plan.network_shape), "resampled_s": [round(s, 3) for s in with_s],
            "on_grid_s": [round(s, 3) for s in without_s], "native_grid_s": [round(s, 3) for s in native_s],
            "overhead": round(statistics.median(w / o for w, o in zip(with_s, without_s)) - 1, 4),
            "vs_native": round(statistics.median(w / n for w, n in zip(with_s, native_s)) - 1, 4),
        })
    print(f"segment_image, N={_NUM_BLOCKS.value}, tile {_TILE_SIZE.value}, {_SIZE.value}x{_SIZE.value} micrographs "
          f"({os.cpu_count()} CPUs)")
    print(f"{'pixel size':>11} {'network grid':>13} {'resampled s':>12} {'on grid s':>10} {'resampling adds':>16} "
          f"{'native grid s':>14} {'vs native':>10}")
    for row in rows:
        grid = "x".join(map(str, row["network_grid"]))
        print(f"{row['pixel_size_factor']:>10}x {grid:>13} {statistics.median(row['resampled_s']):>12.2f} "
              f"{statistics.median(row['on_grid_s']):>10.2f} {100 * row['overhead']:>+15.1f}% "
              f"{statistics.median(row['native_grid_s']):>14.2f} {100 * row['vs_native']:>+9.1f}%")
    write_json(_OUT.value, {
        "benchmark": "scale", "size": _SIZE.value, "num_blocks": _NUM_BLOCKS.value, "tile_size": _TILE_SIZE.value,
        "rows": rows, "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_average_at_end": list(os.getloadavg()),
    })
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    tem_flags.run(main)
