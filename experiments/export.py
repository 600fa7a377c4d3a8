r"""Exports a trained network as a TensorFlow SavedModel with its tem_rf metadata asset, or as a
BioImage Model Zoo package for Fiji (deepImageJ), ilastik and napari.

  python -m experiments.export --model=runs/N2_k2-2_d1-1-1/seed0 --out_dir=exported/N2
  python -m experiments.export --model=path/to/best.keras --out_dir=exported/N2 --overwrite
  python -m experiments.export --model=runs/N2_k2-2_d1-1-1/seed0 --format=bioimageio \
      --out_dir=exported --authors="Jane Doe" --license=CC-BY-4.0

The SavedModel's ``serving_default`` (also ``serving_preprocessed``) takes float32
``[batch, height, width, 1]`` preprocessed images and returns the particle probability, float32
``[batch, height, width]``; ``serving_raw_<dtype>`` (uint8, uint16, int16, int32, float32,
float64) takes raw micrographs ``[batch, height, width]`` or ``[batch, height, width, 1]`` and
does tem_rf's preprocessing inside the graph, returning ``particle_probability`` and
``particle_mask``. ``assets/tem_rf.json`` holds receptive field, halo, size divisor, training
pixel size, normalisation, class names, the run's config (no absolute paths) and the package
version.

``--format=bioimageio`` writes ``--out_dir/<architecture>.bioimageio.zip`` (or ``--out_dir``
itself when it ends in ``.bioimageio.zip``): raw-micrograph weights, test tensors from a patch of
the run's dataset, cover, documentation, ``tem_rf.json`` (`tem_rf.serve.bioimageio`); it needs
``pip install "tem_rf[bioimageio]"``. An existing zip is replaced only with ``--overwrite`` and
only when it is a tem_rf package.

``--out_dir`` must be a new or empty folder, or a previous tem_rf export together with
``--overwrite``. Refused, with one ``error: <path>: <problem>`` line and exit status 1, and
nothing written or deleted: an existing file, a folder with anything else in it (your files, a
dataset, a run directory), a previous export without ``--overwrite``, and a folder that is or
contains the model's run directory (or the ``.keras`` file's folder). The export is written
beside ``--out_dir`` under a temporary name and renamed into place when complete; a replaced
export is deleted only after that, and a failed or interrupted export leaves nothing behind.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tem_rf.core import cli as tem_flags

_MODEL = flags.DEFINE_string(
    "model", None, "Run directory (best.keras, else model.keras, + config.json) or a .keras file."
)
_OUT_DIR = flags.DEFINE_string(
    "out_dir",
    None,
    "SavedModel folder to write: new, empty, or a previous tem_rf export with --overwrite. A file, "
    "a folder holding anything else, and a folder that is or contains the model's run directory "
    "are refused; nothing is deleted.",
)
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite",
    False,
    "Replace a previous tem_rf export at --out_dir (only once the new one is complete).",
)
_KEEP_MIXED = flags.DEFINE_boolean(
    "keep_mixed_precision",
    False,
    "Keep float16 compute of a mixed_float16 network (GPU serving); default exports float32. "
    "The output is float32 either way.",
)
_FORMAT = flags.DEFINE_enum(
    "format", "saved_model", ["saved_model", "bioimageio"],
    "saved_model: a SavedModel folder; bioimageio: a BioImage Model Zoo package "
    "<out_dir>/<architecture>.bioimageio.zip (needs the bioimageio extra).",
)
_AUTHORS = flags.DEFINE_multi_string(
    "authors", [], "bioimageio: an author of the model, one name per flag (required)."
)
_LICENSE = flags.DEFINE_string(
    "license", None, "bioimageio: the model's licence, an SPDX id such as CC-BY-4.0 or MIT (required)."
)
_TEST_IMAGE = flags.DEFINE_string(
    "test_image", None,
    "bioimageio: a micrograph whose centre crop becomes the package's test input, when the run's "
    "dataset (config.json data_dir) is not there.",
)
_RAW_DTYPES = flags.DEFINE_list(
    "raw_dtypes", "uint8,uint16,int16,int32,float32,float64",
    "Raw-micrograph signatures to export, serving_raw_<dtype> for each (comma-separated; empty for "
    "none). Each one adds about half a second to the export.",
)
tem_flags.define_deprecated_alias("export_dir", "out_dir")
flags.mark_flags_as_required(["model", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.serve.predictor import ModelLoadError
    from tem_rf.core.errors import InputError
    from tem_rf.serve.export import ExportError, check_raw_dtypes, export_run, format_export_summary

    if _FORMAT.value == "bioimageio":
        return _export_bioimageio()
    if _AUTHORS.value or _LICENSE.value or _TEST_IMAGE.value:
        sys.exit("error: --authors, --license and --test_image belong to --format=bioimageio")
    try:
        raw_dtypes = check_raw_dtypes(_RAW_DTYPES.value)
    except ValueError as error:
        sys.exit(f"error: --raw_dtypes: {error}")
    try:
        metadata = export_run(
            _MODEL.value, _OUT_DIR.value, keep_mixed_precision=_KEEP_MIXED.value, overwrite=_OVERWRITE.value,
            raw_dtypes=raw_dtypes,
        )
    except (ModelLoadError, ExportError, InputError) as error:
        sys.exit(f"error: {error}")
    except OSError as error:  # reading the model; writing errors are ExportError
        sys.exit(f"error: {_MODEL.value}: {error}")
    except KeyboardInterrupt:
        print(f"error: {_OUT_DIR.value}: interrupted; nothing was exported", file=sys.stderr)
        sys.exit(130)
    print(format_export_summary(metadata, _OUT_DIR.value))


def _export_bioimageio() -> None:
    from tem_rf.core.errors import InputError
    from tem_rf.serve.predictor import ModelLoadError
    from tem_rf.serve.export import ExportError

    try:
        from tem_rf.serve import bioimageio

        bioimageio.check_extra()
        path, metadata = bioimageio.export_bioimageio(
            _MODEL.value, _OUT_DIR.value, authors=_AUTHORS.value, license_id=_LICENSE.value,
            overwrite=_OVERWRITE.value, test_image=_TEST_IMAGE.value,
        )
    except (ModelLoadError, ExportError, InputError) as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        sys.exit(f"error: {_MODEL.value}: {error}")
    except KeyboardInterrupt:
        print(f"error: {_OUT_DIR.value}: interrupted; nothing was exported", file=sys.stderr)
        sys.exit(130)
    sizes = metadata["bioimageio"]["sizes"]
    pixel = metadata["pixel_size_nm"]
    print(f"exported {metadata['architecture']} to {path}")
    print(
        f"  bioimage.io model (spec 0.5): raw micrograph float32 [batch, y, x, 1] -> particle_probability "
        f"[batch, y, x]; y, x = {sizes['min']} + n x {sizes['step']} px, halo {sizes['halo']} px"
    )
    print(
        "  training pixel size "
        + (f"{pixel:.4g} nm: resample micrographs to it" if pixel is not None else "unknown")
        + f"; test input: {metadata['bioimageio']['test_input']}"
    )


if __name__ == "__main__":
    tem_flags.run(main)
