r"""Exports a trained network as a TensorFlow SavedModel with its tem_rf metadata asset.

  python -m experiments.export --model=runs/N2_k2-2_d1-1-1/seed0 --out_dir=exported/N2
  python -m experiments.export --model=path/to/best.keras --out_dir=exported/N2 --overwrite

The SavedModel's ``serving_default`` takes float32 ``[batch, height, width, 1]`` preprocessed
images and returns the particle probability, float32 ``[batch, height, width]``;
``assets/tem_rf.json`` holds receptive field, halo, size divisor, training pixel size,
normalisation, class names, the run's config and the package version.

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
tem_flags.define_deprecated_alias("export_dir", "out_dir")
flags.mark_flags_as_required(["model", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tem_rf.serve.predictor import ModelLoadError
    from tem_rf.serve.export import ExportError, export_run

    try:
        metadata = export_run(
            _MODEL.value, _OUT_DIR.value, keep_mixed_precision=_KEEP_MIXED.value, overwrite=_OVERWRITE.value
        )
    except (ModelLoadError, ExportError) as error:
        sys.exit(f"error: {error}")
    except OSError as error:  # reading the model; writing errors are ExportError
        sys.exit(f"error: {_MODEL.value}: {error}")
    except KeyboardInterrupt:
        print(f"error: {_OUT_DIR.value}: interrupted; nothing was exported", file=sys.stderr)
        sys.exit(130)
    nm = metadata["receptive_field_nm"]
    pixel = metadata["pixel_size_nm"]
    print(f"exported {metadata['architecture']} to {_OUT_DIR.value}")
    print(
        "  serving_default: float32 image [batch, height, width, 1] -> "
        "particle_probability [batch, height, width] float32"
    )
    print(
        f"  receptive field {metadata['receptive_field_px']} px"
        + (f" = {nm:.2f} nm" if nm is not None else "")
        + f", size divisor {metadata['size_divisor']}, tiling halo {metadata['halo_px']} px"
    )
    print(
        "  training pixel size "
        + (f"{pixel:.4g} nm" if pixel is not None else "unknown")
        + f", compute dtype {metadata['signature']['compute_dtype']}, metadata assets/tem_rf.json"
    )


if __name__ == "__main__":
    tem_flags.run(main)
