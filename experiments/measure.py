r"""Scores particle instances against instance ground truth: a network, or the Fourier baseline.

  python -m experiments.measure --model=exported/N2 --images=emps/images --labels=emps/segmaps \
      --out_dir=scores/N2
  python -m experiments.measure --method=fourier --lattice_spacings_nm=0.235,0.204 \
      --images=session/images --labels=session/labels --out_dir=scores/fourier

Each micrograph is segmented whole (``--method=network``: the network of ``--model`` with the
tiling and preprocessing of ``segment``; ``--method=fourier``: the Fourier-filter baseline, its
band given as in ``fourier_baseline`` or read from each micrograph's power spectrum), its
particles found as ``segment`` finds them (holes filled, touching particles split, smaller than
``--min_particle_area_nm2`` dropped) and matched one to one with the particles of its mask in
``--labels`` (instance ids 0 background, 1..n particles, as EMPS ships them; a binary mask is split
into connected components; masks are matched to micrographs by name as in make_tfrecords).
Reported per micrograph and pooled: instance precision, recall and F1 at IoU >= ``--iou_threshold``,
mean matched IoU, count error, median diameter error (nm and %) and the two-sample
Kolmogorov-Smirnov statistic of the diameter distributions (edge particles left out). Writes
``instances.csv`` (per micrograph) and ``instances.json`` (pooled) into ``--out_dir``.
"""

from __future__ import annotations

import logging

from absl import app, flags

from tem_rf.core import cli
from tem_rf.study.instances import MeasureOptions  # no TensorFlow: flags and --help stay fast

_MODEL = flags.DEFINE_string("model", None, "SavedModel, run directory or .keras file (--method=network).")
_IMAGES = flags.DEFINE_string("images", None, "Micrographs: a folder, a quoted glob or one file.")
_LABELS = flags.DEFINE_string("labels", None, "Folder of their instance-id (or binary) masks.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for instances.csv and instances.json.")
_OPTIONS = cli.define_flags_from_dataclass(MeasureOptions)  # one flag per option, its default and help
_BAND_PX = flags.DEFINE_string("band_px", None, "Fourier band 'low,high' in FFT pixels (of --band_fft_size).")
_BAND_FFT_SIZE = flags.DEFINE_integer("band_fft_size", None, "FFT size --band_px refers to (default: each "
                                      "micrograph's smaller side).", lower_bound=1)
_BAND_NM_INV = flags.DEFINE_string("band_nm_inv", None, "Fourier band 'low,high' in nm^-1.")
_SPACINGS = flags.DEFINE_string("lattice_spacings_nm", None, "Fourier band from lattice spacings in nm, e.g. 0.235,0.204.")
_RELATIVE_WIDTH = flags.DEFINE_float("relative_width", 0.1, "Widening of a --lattice_spacings_nm band, each side.")
_SIGMA = flags.DEFINE_float("sigma_px", 9.0, "Fourier filter: Gaussian blur of the magnitude, px.")
_MIN_CONTRAST = flags.DEFINE_float("min_contrast", 1.25, "Fourier filter: Otsu kept above this contrast; 0 = plain Otsu.")
_NOISE_FLOOR = flags.DEFINE_float("noise_floor", 1.5, "Fourier filter: else threshold at this many times the envelope.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace instances.csv/.json already in --out_dir.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over micrographs.")
flags.mark_flags_as_required(["images", "labels", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.core.parsing import parse_band, parse_list
    from tem_rf.study.instances import FourierOptions, measure_instances

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    fourier = FourierOptions(
        band_px=parse_band(_BAND_PX.value, "band_px"), band_fft_size=_BAND_FFT_SIZE.value,
        band_nm_inv=parse_band(_BAND_NM_INV.value, "band_nm_inv"),
        lattice_spacings_nm=(parse_list(_SPACINGS.value, "lattice_spacings_nm", float)
                             if _SPACINGS.value is not None else None),
        relative_width=_RELATIVE_WIDTH.value, sigma_px=_SIGMA.value, min_contrast=_MIN_CONTRAST.value,
        noise_floor=_NOISE_FLOOR.value,
    )
    options = cli.options_from_flags(MeasureOptions, _OPTIONS)
    run = measure_instances(
        _IMAGES.value, _LABELS.value, _OUT_DIR.value, model=_MODEL.value, fourier=fourier, overwrite=_OVERWRITE.value,
        progress=_PROGRESS.value, on_ready=print, **options.library_options(),
    )
    print("\n".join(run.table_lines()))
    print(f"per micrograph: {run.csv}\npooled: {run.json}")


if __name__ == "__main__":
    cli.run(main)
