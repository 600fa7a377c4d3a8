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

import json
import math
from pathlib import Path

from absl import app, flags

from tem_rf.core import cli as tem_flags

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory (made by data_prep.make_tfrecords).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to score.")
_BAND_PX = flags.DEFINE_string("band_px", None, "Band 'low,high' as radii in FFT pixels of a patch.")
_BAND_NM_INV = flags.DEFINE_string("band_nm_inv", None, "Band 'low,high' in nm^-1 (needs the pixel size).")
_SPACINGS = flags.DEFINE_string(
    "lattice_spacings_nm", None, "Lattice spacings in nm, e.g. 0.235,0.204 (Au {111}, {200}); "
    "the band spans 1/d of all of them, widened by --relative_width."
)
_RELATIVE_WIDTH = flags.DEFINE_float("relative_width", 0.1, "Widening of a --lattice_spacings_nm band, each side.")
_PIXEL_SIZE = flags.DEFINE_float("pixel_size_nm", None, "Pixel size in nm; default: the dataset's.")
_SIGMA = flags.DEFINE_float("sigma_px", 9.0, "Gaussian blur of the filtered magnitude, in pixels.")
_MIN_CONTRAST = flags.DEFINE_float(
    "min_contrast", 1.25, "Keep Otsu's threshold only if its bright class averages this many times "
    "the amorphous-background envelope; 0 = plain Otsu (the paper)."
)
_NOISE_FLOOR = flags.DEFINE_float(
    "noise_floor", 1.5, "Otherwise threshold at this many times the amorphous-background envelope."
)
_MAX_PATCHES = flags.DEFINE_integer("max_patches", None, "Score only the first N patches.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Patches read at a time.")
_OUT_CSV = flags.DEFINE_string("out_csv", None, "Per-patch CSV to write.")
_OUT_JSON = flags.DEFINE_string("out_json", None, "Summary JSON; default: --out_csv with .json.")
flags.mark_flags_as_required(["data_dir", "out_csv"])


def _floats(text: str | None, name: str, count: int | None = None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"--{name} is empty")
    if count is not None and len(values) != count:
        raise ValueError(f"--{name} must be two values 'low,high', got {text!r}")
    if count == 2 and not 0 < values[0] < values[1]:
        raise ValueError(f"--{name} must be 'low,high' with 0 < low < high, got {text!r}")
    return values


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.data import read_dataset_info  # light: no TensorFlow yet

    try:
        # Flags and the dataset's existence are checked before TensorFlow is imported.
        band_px = _floats(_BAND_PX.value, "band_px", 2)
        band_nm_inv = _floats(_BAND_NM_INV.value, "band_nm_inv", 2)
        spacings = _floats(_SPACINGS.value, "lattice_spacings_nm")
        info = read_dataset_info(_DATA_DIR.value)
        pixel_size = _PIXEL_SIZE.value
        if pixel_size is None and info.get("pixel_size_nm") is not None:
            pixel_size = float(info["pixel_size_nm"])
            if not math.isfinite(pixel_size):
                pixel_size = None
        if (band_nm_inv or spacings) and pixel_size is None:
            raise ValueError(
                f"{_DATA_DIR.value}: the dataset has no pixel size, which a band in nm^-1 or lattice "
                "spacings need; give --pixel_size_nm or --band_px"
            )
        from tem_rf.core.files import write_csv
        from tem_rf.study import baseline, fourier
        from tem_rf.core.files import atomic_write_text

        automatic = not (band_px or band_nm_inv or spacings)
        spectrum = None
        if automatic:
            print("choosing the band from the split's radial power spectrum ...")
            spectrum = baseline.split_radial_spectrum(
                _DATA_DIR.value, _SPLIT.value, batch_size=_BATCH_SIZE.value, max_patches=_MAX_PATCHES.value
            )
        band = fourier.resolve_band(
            band_px=band_px,
            band_nm_inv=band_nm_inv,
            lattice_spacings_nm=spacings,
            relative_width=_RELATIVE_WIDTH.value,
            pixel_size_nm=pixel_size,
            fft_size=int(info["patch_size"]),
            images=spectrum,
        )
        summary, rows = baseline.score_fourier_filter(
            _DATA_DIR.value,
            _SPLIT.value,
            band,
            sigma_px=_SIGMA.value,
            min_contrast=_MIN_CONTRAST.value,
            noise_floor=_NOISE_FLOOR.value,
            batch_size=_BATCH_SIZE.value,
            max_patches=_MAX_PATCHES.value,
            progress=True,
        )
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None

    patch_size = int(info["patch_size"])
    summary.update(
        data_dir=str(_DATA_DIR.value),
        band_source="automatic" if automatic else "given",
        band_fft_px=list(band.fft_pixels(patch_size)),
        band_nm_inv=list(band.nm_inv(pixel_size)) if pixel_size else None,
        pixel_size_nm=pixel_size,
    )
    out_csv = Path(_OUT_CSV.value)
    out_json = Path(_OUT_JSON.value) if _OUT_JSON.value else out_csv.with_suffix(".json")
    for path in (out_csv, out_json):
        if path.is_dir():
            raise SystemExit(f"error: {path}: is a folder; --out_csv/--out_json name files")
    try:
        write_csv(out_csv, rows)
        atomic_write_text(out_json, json.dumps(summary, indent=2) + "\n")
    except OSError as err:  # name the file asked for, not the temporary one
        raise SystemExit(f"error: {out_csv.parent}: cannot write the results: {err.strerror or err}") from None
    nm = f" = {band.nm_inv(pixel_size)[0]:.2f}-{band.nm_inv(pixel_size)[1]:.2f} nm^-1" if pixel_size else ""
    low_px, high_px = band.fft_pixels(patch_size)
    print(f"band ({summary['band_source']}): {band.low:.4f}-{band.high:.4f} cycles/px "
          f"({low_px:.1f}-{high_px:.1f} FFT px of {patch_size}){nm}")
    print(f"{_SPLIT.value}: Fourier-filter hard dice {summary['hard_dice']:.4f} (pooled), "
          f"{summary['mean_patch_hard_dice']:.4f} ± {summary['std_patch_hard_dice']:.4f} per patch, "
          f"over {summary['patches']} patches")
    print(f"per-patch CSV: {out_csv}\nsummary: {out_json}")


if __name__ == "__main__":
    tem_flags.run(main)
