r"""Which architecture for my pixel size and particles? The paper's rule of thumb, checked on
your images, or answered from your own sweep.

  # 5 nm particles at 0.02152 nm/px; --images decides high vs low resolution from the spectrum
  python -m experiments.recommend --pixel_size_nm=0.02152 --particle_diameter_nm=5 --images=raw/images
  # from a finished sweep: the lightest architecture within one std of the best
  python -m experiments.recommend --sweep_dir=sweeps/au5nm

Prints the rule and its source in the paper, the lightest architectures whose receptive field
spans the particle (or the lightest of all at low resolution) with RF in px and nm, trainable
parameters and size divisor, and the `experiments.sweep` command that confirms the choice.
Writes nothing unless --json_out is given.
"""

from __future__ import annotations

from absl import flags

from tem_rf.core import cli

_PIXEL_SIZE_NM = flags.DEFINE_float("pixel_size_nm", None, "Pixel size in nm (default: from the --images files).")
_DIAMETER_NM = flags.DEFINE_float("particle_diameter_nm", None, "Typical particle diameter in nm.")
_IMAGES = flags.DEFINE_string("images", None, "Micrographs (folder, glob or file): high vs low resolution "
                              "from their power spectrum, and their pixel size.")
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "A sweep's folder: answer from its results as well.")
_RESOLUTION = flags.DEFINE_enum("resolution", "auto", ["auto", "high", "low"],
                                "high: lattice fringes; low: amplitude contrast; auto: from --images.")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 512, "Patch size of the dataset (limits pools and RF).")
_NUM_BLOCKS = cli.define_int_list("num_blocks", (2, 3, 4), "Depths N to consider.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the advice as JSON here.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing --json_out file.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bar while building the architectures.")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.core.outputs import check_new_files
    from tem_rf.study import recommend

    try:
        if _JSON_OUT.value:
            check_new_files([_JSON_OUT.value], _OVERWRITE.value)  # before the architectures are built
        advice = recommend.recommend(
            _DIAMETER_NM.value, _PIXEL_SIZE_NM.value, images=_IMAGES.value, sweep_dir=_SWEEP_DIR.value,
            resolution=_RESOLUTION.value, patch_size=_PATCH_SIZE.value, num_blocks=_NUM_BLOCKS.value,
            progress=_PROGRESS.value,
        )
        if _JSON_OUT.value:
            recommend.write_advice(advice, _JSON_OUT.value, overwrite=_OVERWRITE.value)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    print(recommend.format_recommendation(advice))
    if _JSON_OUT.value:
        print(f"wrote {_JSON_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
