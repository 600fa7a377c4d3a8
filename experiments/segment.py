r"""Segments full-size micrographs with an exported (or trained) network.

  python -m experiments.segment --model=exported/N2 --images='session3/*.tif' --out_dir=masks
  python -m experiments.segment --model=runs/N2_k2-2_d1-1-1/seed0 --images=a.dm4,b.tif \
      --out_dir=masks --save_probability --tile_size=512
  python -m experiments.segment --model=exported/N2 --images=insitu.tif --out_dir=movie --frames=all

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
skipped; the exit status is 1 when any file failed. One frame of a stack or time series is
segmented with ``--frame``; ``--frames=all`` (or 0:100:2, 0,5,9) segments every chosen frame
into one hyperstack per movie (``<stem>_masks.tif``, ``_labels.tif``, ``_particles.csv`` with the
frame and time, ``_movie.json``; tem_rf.serve.movie); in files with several signals (DM, Velox EMD) ``--signal`` picks
one by title. Outputs of an earlier run found among the inputs are left out. The info bar that
microscope software appends is found and left out (``--info_bar``), and ``--exclude_regions``
leaves out scale bars or letters inside the image. A network trained with --target=boundary
finds particles from the interiors it learned instead of the distance-transform split.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tem_rf.core import cli
from tem_rf.serve.options import SegmentOptions  # no TensorFlow: flags and --help stay fast

_MODEL = flags.DEFINE_string(
    "model", None, "SavedModel from experiments/export.py, a run directory or a .keras file."
)
_IMAGES = flags.DEFINE_list(
    "images", None, "Micrographs: comma-separated files, glob patterns (quoted) or folders."
)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for masks, overlays, probabilities.")
_OPTIONS = cli.define_flags_from_dataclass(SegmentOptions)  # one flag per option, its default and help
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Replace outputs already in --out_dir under this run's file names."
)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over files.")
_KEEP_MIXED = flags.DEFINE_boolean(
    "keep_mixed_precision", False, "Run a mixed_float16 .keras/run-dir network in float16 (GPU)."
)
cli.define_deprecated_alias("output_dir", "out_dir")
cli.define_deprecated_alias("input", "images")  # --images, as in make_tfrecords and measure
flags.mark_flags_as_required(["model", "images", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.serve.segment_command import segment_micrographs

    options = cli.options_from_flags(SegmentOptions, _OPTIONS)
    run = segment_micrographs(
        _MODEL.value, _IMAGES.value, _OUT_DIR.value, keep_mixed_precision=_KEEP_MIXED.value, on_model_loaded=print,
        overwrite=_OVERWRITE.value, progress=_PROGRESS.value, **options.library_options(),
    )
    print("\n".join(run.summary_lines()))
    if run.failures:
        sys.exit(f"error: {run.failure_line()}")


if __name__ == "__main__":
    cli.run(main)
