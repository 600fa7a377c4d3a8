r"""Exports a trained network as a TensorFlow SavedModel with its tem_rf metadata asset, or as a
BioImage Model Zoo package for Fiji (deepImageJ), ilastik and napari.

  python -m experiments.export --model=runs/N2_k2-2_d1-1-1/seed0 --out_dir=exported/N2
  python -m experiments.export --model=runs/N2_k2-2_d1-1-1/seed0 --format=bioimageio \
      --out_dir=exported --authors="Jane Doe" --license=CC-BY-4.0

The SavedModel's ``serving_default`` (also ``serving_preprocessed``) takes float32 preprocessed
images ``[batch, height, width, 1]`` and returns the particle probability ``[batch, height,
width]`` (and ``boundary_probability`` for a --target=boundary network); ``serving_raw_<dtype>``
takes raw micrographs and preprocesses them in the graph, returning ``particle_probability`` and
``particle_mask`` too. ``assets/tem_rf.json`` holds receptive field, halo, size divisor, training
pixel size, normalisation, class names, the instance rule, the run's config (no absolute paths).
``--format=bioimageio`` writes ``--out_dir/<architecture>.bioimageio.zip`` (needs
``pip install "tem_rf[bioimageio]"``). Nothing is ever overwritten without ``--overwrite``, and
then only a previous tem_rf export; the export is written under a temporary name and renamed into
place when complete, so a failed or interrupted one leaves nothing behind.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tem_rf.core import cli

_MODEL = flags.DEFINE_string("model", None, "Run directory (best.keras, else model.keras) or a .keras file.")
_OUT_DIR = flags.DEFINE_string(
    "out_dir", None, "SavedModel folder to write: new, empty, or a previous tem_rf export with --overwrite. A file, a "
    "folder holding anything else, and a folder that is or contains the model's run directory are refused.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace a previous tem_rf export at --out_dir (once the new one "
                                  "is complete).")
_KEEP_MIXED = flags.DEFINE_boolean("keep_mixed_precision", False, "Keep float16 compute of a mixed_float16 network "
                                   "(GPU serving); default exports float32. The output is float32 either way.")
_FORMAT = flags.DEFINE_enum("format", "saved_model", ["saved_model", "bioimageio"], "saved_model: a SavedModel folder; "
                            "bioimageio: a BioImage Model Zoo package <out_dir>/<architecture>.bioimageio.zip.")
_AUTHORS = flags.DEFINE_multi_string("authors", [], "bioimageio: an author of the model, one name per flag (required).")
_LICENSE = flags.DEFINE_string("license", None, "bioimageio: the model's licence, an SPDX id such as CC-BY-4.0 or MIT.")
_TEST_IMAGE = flags.DEFINE_string("test_image", None, "bioimageio: a micrograph whose centre crop becomes the test "
                                  "input; default: one of the run's dataset's micrographs, else a patch.")
_RAW_DTYPES = flags.DEFINE_list("raw_dtypes", "uint8,uint16,int16,int32,float32,float64", "Raw-micrograph signatures "
                                "to export, serving_raw_<dtype> each (empty for none); each adds about half a second.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over the SavedModel signatures traced.")
cli.define_deprecated_alias("export_dir", "out_dir")
flags.mark_flags_as_required(["model", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.serve.signatures import check_raw_dtypes
    from tem_rf.serve.export import export_run, format_export_summary

    if _FORMAT.value == "saved_model" and (_AUTHORS.value or _LICENSE.value or _TEST_IMAGE.value):
        sys.exit("error: --authors, --license and --test_image belong to --format=bioimageio")
    try:
        raw_dtypes = check_raw_dtypes(_RAW_DTYPES.value)
    except ValueError as error:
        sys.exit(f"error: --raw_dtypes: {error}")
    try:
        if _FORMAT.value == "bioimageio":
            from tem_rf.serve import bioimageio

            bioimageio.check_extra()
            print(bioimageio.format_package_summary(*bioimageio.export_bioimageio(
                _MODEL.value, _OUT_DIR.value, authors=_AUTHORS.value, license_id=_LICENSE.value,
                overwrite=_OVERWRITE.value, test_image=_TEST_IMAGE.value)))
        else:
            metadata = export_run(_MODEL.value, _OUT_DIR.value, keep_mixed_precision=_KEEP_MIXED.value,
                                  overwrite=_OVERWRITE.value, raw_dtypes=raw_dtypes, progress=_PROGRESS.value)
            print(format_export_summary(metadata, _OUT_DIR.value))
    except OSError as error:  # reading the model; writing errors are ExportError
        sys.exit(f"error: {_MODEL.value}: {error}")
    except KeyboardInterrupt:
        print(f"error: {_OUT_DIR.value}: interrupted; nothing was exported", file=sys.stderr)
        sys.exit(130)

if __name__ == "__main__":
    cli.run(main)
