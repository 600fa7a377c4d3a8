r"""Segments full-size micrographs with an exported (or trained) network.

  python -m experiments.segment --model=exported/N2 --input='session3/*.tif' --out_dir=masks
  python -m experiments.segment --model=runs/N2_k2-2_d1-1-1/seed0 --input=a.dm4,b.tif \
      --out_dir=masks --save_probability --tile_size=512

Each micrograph gets the training preprocessing (x-ray outlier removal, standardisation), is
padded (reflection) to the network's size divisor and segmented in tiles of ``--tile_size`` plus
a halo that covers the network's dependency extent, so the stitched result equals a single pass.
Writes ``<stem>_mask.tif`` (uint8 0/255), ``<stem>_overlay.png``, optionally ``<stem>_prob.tif``
(float32), and ``segmentation.json``. The particles are measured (``--nomeasure`` skips it):
``<stem>_particles.csv`` (one row per particle: centroid, area, equivalent-circle and Feret
diameters in nm, shape, mean probability, edge flag), ``<stem>_labels.tif`` (uint16 instance ids)
and, per micrograph in ``segmentation.json``, the count and the diameter distribution; for
several micrographs also the pooled ``particles.csv`` and the histogram ``particle_sizes.png``.
Particles smaller than ``--min_particle_area_nm2`` (default 1 nm^2; 16 px without a pixel size) or
``--min_particle_area_px`` are not counted. A file that cannot be read or segmented is reported and
skipped; the exit status is 1 when any file failed. Stacks and time series are segmented one
frame at a time (``--frame``); in files with several signals (DM, Velox EMD) ``--signal`` picks
one by title. Outputs of an earlier run found among the inputs are left out.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tem_rf.core import cli as tem_flags

_MODEL = flags.DEFINE_string(
    "model", None, "SavedModel from experiments/export.py, a run directory or a .keras file."
)
_INPUT = flags.DEFINE_list(
    "input", None, "Micrographs: comma-separated files, glob patterns (quoted) or folders."
)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for masks, overlays, probabilities.")
_TILE_SIZE = flags.DEFINE_integer(
    "tile_size",
    1024,
    "Core tile size in px (rounded up to the size divisor); bounds memory. 0: one pass per image.",
    lower_bound=0,
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Tiles per network call.", lower_bound=1)
# Checked by the library (one message for NaN and for values outside [0, 1]).
_THRESHOLD = flags.DEFINE_float("threshold", 0.5, "Particle where the probability exceeds this (0-1).")
_FRAME = flags.DEFINE_integer(
    "frame", None, "Segment this frame (0-based) of stacks and time series; refused for single images."
)
_SIGNAL = flags.DEFINE_string(
    "signal", None, "In files with several signals (DM, Velox EMD), segment the one with this title."
)
_SAVE_PROB = flags.DEFINE_boolean("save_probability", False, "Also write <stem>_prob.tif.")
_OVERLAY = flags.DEFINE_boolean("overlay", True, "Write <stem>_overlay.png (mask outlines in red).")
_OVERLAY_MAX = flags.DEFINE_integer(
    "overlay_max_size", 1024, "Overlays of larger images are downsampled to this.", lower_bound=16
)
_MEASURE = flags.DEFINE_boolean(
    "measure", True, "Measure the particles: <stem>_particles.csv, <stem>_labels.tif, counts and sizes."
)
_MIN_AREA_NM2 = flags.DEFINE_float(
    "min_particle_area_nm2", None, "Smallest particle counted, in nm^2 (default 1; needs the pixel size)."
)
_MIN_AREA_PX = flags.DEFINE_float(
    "min_particle_area_px", None, "Smallest particle counted, in px (instead of --min_particle_area_nm2)."
)
_PIXEL_SIZE = flags.DEFINE_float("pixel_size_nm", None, "Pixel size (nm) of micrographs whose file records none.")
_RESAMPLE = flags.DEFINE_enum("resample", "auto", ["auto", "never"], "auto: the network sees each micrograph "
                              "resampled to its training pixel size; never: at the micrograph's own grid.")
_RESCALE = flags.DEFINE_enum("rescale", "never", ["auto", "never"], "auto: a network trained without a pixel size "
                             "sees micrographs rescaled so their particles have the trained sizes in px (see README).")
_BURNED_IN = tem_flags.define_burned_in_flags()
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Replace outputs already in --out_dir under this run's file names."
)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over files.")
_KEEP_MIXED = flags.DEFINE_boolean(
    "keep_mixed_precision", False, "Run a mixed_float16 .keras/run-dir network in float16 (GPU)."
)
tem_flags.define_deprecated_alias("output_dir", "out_dir")
flags.mark_flags_as_required(["model", "input", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.data.reading import InputError
    from tem_rf.serve.segment import segment_micrographs
    from tem_rf.train.rundir import ModelLoadError

    try:
        run = segment_micrographs(
            _MODEL.value, _INPUT.value, _OUT_DIR.value, keep_mixed_precision=_KEEP_MIXED.value,
            on_model_loaded=print, overwrite=_OVERWRITE.value, tile_size=_TILE_SIZE.value or None, batch_size=_BATCH_SIZE.value,
            threshold=_THRESHOLD.value, save_probability=_SAVE_PROB.value, overlay=_OVERLAY.value,
            overlay_max_size=_OVERLAY_MAX.value, progress=_PROGRESS.value,
            frame=_FRAME.value, signal=_SIGNAL.value, measure=_MEASURE.value,
            min_particle_area_nm2=_MIN_AREA_NM2.value, min_particle_area_px=_MIN_AREA_PX.value,
            pixel_size_nm=_PIXEL_SIZE.value, resample=_RESAMPLE.value, rescale=_RESCALE.value,
            **{name: holder.value for name, holder in _BURNED_IN.items()},
        )
    except (InputError, ModelLoadError) as error:
        sys.exit(f"error: {error}")
    print("\n".join(run.summary_lines()))
    if run.failures:
        sys.exit(f"error: {run.failure_line()}")


if __name__ == "__main__":
    tem_flags.run(main)
