r"""The paper's interpretation figures from a finished sweep (Fig. 2-8, S7, S8) in one command.

  python -m experiments.analyze --sweep_dir=SWEEP --out_dir=SWEEP/analysis
  python -m experiments.analyze --sweep_dir=SWEEP --out_dir=OUT --data_dir=DATA \
      --architectures=N2_k2-2_d1-1-1,N2_k4-4_d1-1-1,N2_k8-8_d1-1-1 --lattice_spacings_nm=0.235,0.204

Writes into --out_dir: dice_vs_receptive_field.png (unless the sweep drew it), segmentation
overlays of the same test patches for growing receptive fields with the receptive fields drawn
to scale, max pooling vs dilation at a matched receptive field, false-negative maps of the
networks vs Fourier filtering with their overlap (CSV + figures), effective receptive field maps
and radial profiles (CSV + figure), and analysis.json listing what was chosen. Patches are the
unaugmented patches of --split of the dataset the runs were trained on (or --data_dir).
"""

from __future__ import annotations

import logging

from absl import app, flags

from tem_rf.core import cli

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory (runs/<architecture>/seed<seed>/).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for the figures and tables.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory; default: the one the runs used.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split whose patches are analysed.")
_ARCHITECTURES = flags.DEFINE_list(
    "architectures", None, "Networks to compare (names as in runs/); default: three of the "
    "fewest-block pool networks spanning the receptive-field range."
)
_SEED = flags.DEFINE_integer("seed", None, "Seed of the runs to use; default: the smallest all share.")
_WEIGHTS = flags.DEFINE_enum("weights", "best", ["best", "model"], "best.keras or model.keras (last epoch).")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 3, "Patches shown in the figures.", lower_bound=1)
_EXAMPLES = flags.DEFINE_list("example_indices", None, "Patch indices (in split order) to show instead.")
_MAX_PATCHES = flags.DEFINE_integer("max_patches", None, "Analyse only the first N patches of the split.")
_ERF_IMAGES = flags.DEFINE_integer("erf_images", 8, "Patches the effective receptive field averages over.",
                                   lower_bound=1)
_BAND_PX = flags.DEFINE_list("band_px", None, "Fourier band 'low,high' in FFT pixels of a patch.")
_BAND_NM_INV = flags.DEFINE_list("band_nm_inv", None, "Fourier band 'low,high' in nm^-1.")
_SPACINGS = flags.DEFINE_list("lattice_spacings_nm", None, "Lattice spacings (nm) the band spans, e.g. 0.235,0.204.")
_RELATIVE_WIDTH = flags.DEFINE_float("relative_width", 0.1, "Widening of a lattice-spacing band, each side.")
_PIXEL_SIZE = flags.DEFINE_float("pixel_size_nm", None, "Pixel size in nm; default: the dataset's.")
_REDRAW = flags.DEFINE_boolean("redraw_dice_vs_rf", False, "Draw dice vs receptive field even if the sweep has it.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Patches per forward/gradient pass.", lower_bound=1)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an earlier analysis in --out_dir (all of its files).")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over the networks segmenting the patches.")
flags.mark_flags_as_required(["sweep_dir", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.getLogger("tem_rf").setLevel(logging.INFO)
    from tem_rf.core.parsing import parse_number_list
    from tem_rf.study import sweep_figures

    report = sweep_figures.analyze_sweep(
        _SWEEP_DIR.value, _OUT_DIR.value, data_dir=_DATA_DIR.value, split=_SPLIT.value,
        architectures=_ARCHITECTURES.value, seed=_SEED.value, weights=_WEIGHTS.value,
        num_examples=_NUM_EXAMPLES.value, example_indices=parse_number_list(_EXAMPLES.value, "example_indices", int),
        max_patches=_MAX_PATCHES.value, erf_images=_ERF_IMAGES.value, pixel_size_nm=_PIXEL_SIZE.value,
        band_options={flag.name: parse_number_list(flag.value, flag.name) for flag in (_BAND_PX, _BAND_NM_INV, _SPACINGS)}
        | {"relative_width": _RELATIVE_WIDTH.value},
        redraw_dice_vs_rf=_REDRAW.value, batch_size=_BATCH_SIZE.value, overwrite=_OVERWRITE.value,
        progress=_PROGRESS.value,
    )
    print("\n".join(sweep_figures.report_lines(report)))


if __name__ == "__main__":
    cli.run(main)
