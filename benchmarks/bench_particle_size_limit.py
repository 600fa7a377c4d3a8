r"""How small a particle can be, in pixels, and still be sized: the demo's particles (ideal masks,
no network) shrunk to coarser pixel sizes and measured against their native sizes. It decides
`tem_rf.serve.scale.MIN_MEASURABLE_PARTICLE_PX`.

  python3 -m benchmarks.bench_particle_size_limit                   # 2 particle sizes x 3 seeds
  python3 -m benchmarks.bench_particle_size_limit --seeds=1         # quick

Each mask is drawn at 0.5 nm/px, area-averaged to 1/2 ... 1/8 of its sampling (scikit-image's
anti-aliased resize, kept where at least half a pixel is particle, as a perfect segmentation at
that pixel size would be) and measured with `measure_particles`; the table gives the particles'
median diameter in px of the coarse grid, the change of the median diameter (nm) and of the count
against the native mask. Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import os
import platform

import numpy as np
from absl import flags

from tem_rf.core import cli

_SEEDS = flags.DEFINE_integer("seeds", 3, "Micrographs drawn per particle size.", lower_bound=1)
_SIZE = flags.DEFINE_integer("size", 1024, "Micrograph height and width in px.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/particle_size_limit.json", "Where to write JSON.")

PIXEL_SIZE_NM = 0.5
DIAMETERS_NM = ((8.0, 14.0), (4.0, 7.0))  # the demo's low-res particles, and half of them
SHRINK = (2, 3, 4, 5, 6, 8)


def _median_nm(particles) -> float:
    return float(np.median([p.diameter_nm for p in particles if not p.touches_edge]))


def main(argv: list[str]) -> None:
    del argv
    from skimage.transform import resize

    from tem_rf.core.files import write_json
    from tem_rf.data.synthetic import make_micrograph
    from tem_rf.particles import measure_particles

    rows = []
    for diameter_nm in DIAMETERS_NM:
        for seed in range(11, 11 + _SEEDS.value):
            _, mask = make_micrograph("low_res", size=_SIZE.value, pixel_size_nm=PIXEL_SIZE_NM, rng=seed,
                                      diameter_nm=diameter_nm)
            native = measure_particles(mask, PIXEL_SIZE_NM, min_area_px=0)
            native_nm = _median_nm(native)
            for shrink in SHRINK:
                shape = (round(mask.shape[0] / shrink),) * 2
                coarse = resize(mask.astype(np.float32), shape, order=1, anti_aliasing=True) > 0.5
                found = measure_particles(coarse, PIXEL_SIZE_NM * shrink, min_area_px=0)
                rows.append({
                    "diameter_nm": list(diameter_nm), "seed": seed, "shrink": shrink,
                    "median_px": round(native_nm / PIXEL_SIZE_NM / shrink, 2),
                    "diameter_change": round(_median_nm(found) / native_nm - 1, 4),
                    "count_change": round(len(found) / len(native) - 1, 4),
                })
    print(f"demo particles shrunk from {PIXEL_SIZE_NM} nm/px, ideal masks, {_SEEDS.value} seed(s) each")
    print(f"{'particles nm':>13} {'seed':>5} {'shrink':>7} {'median px':>10} {'diameter':>9} {'count':>7}")
    for row in sorted(rows, key=lambda r: -r["median_px"]):
        print(f"{'-'.join(f'{d:g}' for d in row['diameter_nm']):>13} {row['seed']:>5} {row['shrink']:>6}x "
              f"{row['median_px']:>10.1f} {100 * row['diameter_change']:>+8.1f}% {100 * row['count_change']:>+6.0f}%")
    write_json(_OUT.value, {"benchmark": "particle_size_limit", "pixel_size_nm": PIXEL_SIZE_NM, "rows": rows,
                            "cpu_count": os.cpu_count(), "machine": platform.machine()})
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
