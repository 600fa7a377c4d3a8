r"""Scores the Fourier-filter baseline (paper "Fourier Filtering", Table S3) on a dataset split.

  python -m experiments.fourier_baseline --data_dir=DATA --out_csv=fourier_test.csv
  python -m experiments.fourier_baseline --data_dir=DATA --lattice_spacings_nm=0.235,0.204 \
      --out_csv=fourier_test.csv                      # Au {111}, {200} +-10 %
  python -m experiments.fourier_baseline --data_dir=DATA --band_nm_inv=3.9,5.4 --out_csv=...
  python -m experiments.fourier_baseline --data_dir=DATA --band_px=44,60 --out_csv=...

Each unaugmented patch is band-passed around the first-order lattice peaks, the magnitude of the
inverse FFT is blurred (sigma 9 px) and thresholded by Otsu; the hard dice against the label goes
into a per-patch CSV, the pooled dice and the settings into a JSON beside it. The band is given
in FFT pixels of the patch, in nm^-1, or as lattice spacings (nm); by default it is read from
the split's radial power spectrum (labels are not used).
"""

from __future__ import annotations

import logging

from absl import app, flags

from tem_rf.core import cli

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory (made by data_prep.make_tfrecords).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to score.")
_BAND_PX = flags.DEFINE_string("band_px", None, "Band 'low,high' as radii in FFT pixels of a patch.")
_BAND_NM_INV = flags.DEFINE_string("band_nm_inv", None, "Band 'low,high' in nm^-1 (needs the pixel size).")
_SPACINGS = flags.DEFINE_string("lattice_spacings_nm", None, "Lattice spacings in nm, e.g. 0.235,0.204 "
                                "(Au {111}, {200}); the band spans 1/d of all, widened by --relative_width.")
_RELATIVE_WIDTH = flags.DEFINE_float("relative_width", 0.1, "Widening of a --lattice_spacings_nm band, each side.")
_PIXEL_SIZE = flags.DEFINE_float("pixel_size_nm", None, "Pixel size in nm; default: the dataset's.")
_SIGMA = flags.DEFINE_float("sigma_px", 9.0, "Gaussian blur of the filtered magnitude, in pixels.")
_MIN_CONTRAST = flags.DEFINE_float("min_contrast", 1.25, "Keep Otsu's threshold only if its bright class "
                                   "averages this many times the amorphous-background envelope; 0 = plain Otsu (the paper).")
_NOISE_FLOOR = flags.DEFINE_float("noise_floor", 1.5, "Otherwise threshold at this many times that envelope.")
_MAX_PATCHES = flags.DEFINE_integer("max_patches", None, "Score only the first N patches.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Patches read at a time.")
_OUT_CSV = flags.DEFINE_string("out_csv", None, "Per-patch CSV to write.")
_OUT_JSON = flags.DEFINE_string("out_json", None, "Summary JSON; default: --out_csv with .json.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing --out_csv / --out_json.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over the patches.")
flags.mark_flags_as_required(["data_dir", "out_csv"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.study.baseline import run_fourier_baseline

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    s = run_fourier_baseline(
        _DATA_DIR.value, _SPLIT.value, _OUT_CSV.value, _OUT_JSON.value, band_px=_BAND_PX.value,
        band_nm_inv=_BAND_NM_INV.value, lattice_spacings_nm=_SPACINGS.value,
        relative_width=_RELATIVE_WIDTH.value, pixel_size_nm=_PIXEL_SIZE.value, sigma_px=_SIGMA.value,
        min_contrast=_MIN_CONTRAST.value, noise_floor=_NOISE_FLOOR.value, batch_size=_BATCH_SIZE.value,
        max_patches=_MAX_PATCHES.value, progress=_PROGRESS.value, overwrite=_OVERWRITE.value,
    )
    (low, high), (low_px, high_px) = s["band_cycles_per_px"], s["band_fft_px"]
    nm = f" = {s['band_nm_inv'][0]:.2f}-{s['band_nm_inv'][1]:.2f} nm^-1" if s["band_nm_inv"] else ""
    print(f"band ({s['band_source']}): {low:.4f}-{high:.4f} cycles/px "
          f"({low_px:.1f}-{high_px:.1f} FFT px of {s['patch_size']}){nm}")
    print(f"{s['split']}: Fourier-filter hard dice {s['hard_dice']:.4f} (pooled), "
          f"{s['mean_patch_hard_dice']:.4f} ± {s['std_patch_hard_dice']:.4f} per patch, over {s['patches']} patches")
    print(f"per-patch CSV: {s['csv']}\nsummary: {s['json']}")


if __name__ == "__main__":
    cli.run(main)
