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
import shutil
import statistics
import tempfile
import time

import numpy as np
import tifffile
from absl import flags

from tem_rf.core import cli

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
    from tem_rf.serve.segment import segment_file, segment_image
    from tem_rf.models.geometry import model_geometry

    model = residual_unet(_NUM_BLOCKS.value, seed=0)
    geometry = model_geometry(model)
    metadata = {"size_divisor": geometry.size_divisor, "halo_px": geometry.halo_px,
                "pixel_size_nm": TRAINING_NM, "architecture": model.name}

    def network(images):
        return {"particle_probability": model(images, training=False)[..., 1]}

    predictor = Predictor(network, metadata, "untrained")
    steps_s = _time_resampling_steps()
    rng = np.random.default_rng(0)
    rows = []
    out_dir = tempfile.mkdtemp(prefix="bench_scale_")
    for factor in (0.5, 2.0):  # the micrograph's pixel size over the training one
        micrograph = rng.normal(1000, 30, (_SIZE.value, _SIZE.value)).astype(np.float32)
        plan = plan_scale(None, micrograph.shape, TRAINING_NM * factor, "file", TRAINING_NM)
        on_grid = rng.normal(1000, 30, plan.network_shape).astype(np.float32)
        segment_image(on_grid[:256, :256], predictor, tile_size=_TILE_SIZE.value)  # warm up the traces
        with_s, without_s, native_s, step_shares, file_s, file_shares = [], [], [], [], [], []
        path = os.path.join(out_dir, f"micrograph_{factor:g}.tif")
        tifffile.imwrite(path, micrograph, imagej=True, metadata={"unit": "nm"},
                         resolution=(1 / (TRAINING_NM * factor),) * 2)
        for _ in range(_REPEATS.value):
            for times, image, scale in ((with_s, micrograph, plan), (without_s, on_grid, None),
                                        (native_s, micrograph, None)):
                steps_s.clear()
                start = time.perf_counter()
                segment_image(image, predictor, tile_size=_TILE_SIZE.value, scale=scale)
                times.append(time.perf_counter() - start)
                if scale is not None:
                    step_shares.append(sum(steps_s) / times[-1])
            steps_s.clear()
            start = time.perf_counter()
            segment_file(path, predictor, out_dir, tile_size=_TILE_SIZE.value)
            file_s.append(time.perf_counter() - start)
            file_shares.append(sum(steps_s) / file_s[-1])
        rows.append({
            "pixel_size_factor": factor, "resample_factor": plan.factor, "micrograph": list(micrograph.shape),
            "network_grid": list(plan.network_shape), "resampled_s": [round(s, 3) for s in with_s],
            "on_grid_s": [round(s, 3) for s in without_s], "native_grid_s": [round(s, 3) for s in native_s],
            "overhead": round(statistics.median(w / o for w, o in zip(with_s, without_s)) - 1, 4),
            "vs_native": round(statistics.median(w / n for w, n in zip(with_s, native_s)) - 1, 4),
            # the two resampling steps' own time, as a share of segment_image and of segment_file
            "resampling_share_of_segment_image": round(statistics.median(step_shares), 4),
            "segment_file_s": [round(s, 3) for s in file_s],
            "resampling_share_of_segment_file": round(statistics.median(file_shares), 4),
        })
    print(f"segment_image, N={_NUM_BLOCKS.value}, tile {_TILE_SIZE.value}, {_SIZE.value}x{_SIZE.value} micrographs "
          f"({os.cpu_count()} CPUs)")
    print(f"{'pixel size':>11} {'network grid':>13} {'resampled s':>12} {'on grid s':>10} {'resampling adds':>16} "
          f"{'native grid s':>14} {'vs native':>10} {'steps share':>12} {'segment_file s':>15} {'steps share':>12}")
    for row in rows:
        grid = "x".join(map(str, row["network_grid"]))
        print(f"{row['pixel_size_factor']:>10}x {grid:>13} {statistics.median(row['resampled_s']):>12.2f} "
              f"{statistics.median(row['on_grid_s']):>10.2f} {100 * row['overhead']:>+15.1f}% "
              f"{statistics.median(row['native_grid_s']):>14.2f} {100 * row['vs_native']:>+9.1f}% "
              f"{100 * row['resampling_share_of_segment_image']:>11.1f}% {statistics.median(row['segment_file_s']):>15.2f} "
              f"{100 * row['resampling_share_of_segment_file']:>11.1f}%")
    write_json(_OUT.value, {
        "benchmark": "scale", "size": _SIZE.value, "num_blocks": _NUM_BLOCKS.value, "tile_size": _TILE_SIZE.value,
        "rows": rows, "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_average_at_end": list(os.getloadavg()),
    })
    shutil.rmtree(out_dir, ignore_errors=True)
    print(f"wrote {_OUT.value}")


def _time_resampling_steps() -> list[float]:
    """Wraps segment's two resampling steps so that each call's seconds are appended to the list
    returned."""
    from tem_rf.serve import segment

    seconds: list[float] = []

    def timed(step):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                seconds.append(time.perf_counter() - start)
        return run

    segment.to_network_grid = timed(segment.to_network_grid)
    segment.to_micrograph_grid = timed(segment.to_micrograph_grid)
    return seconds


if __name__ == "__main__":
    cli.run(main)
