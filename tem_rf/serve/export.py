"""SavedModel export of a trained network and its metadata asset (`tem_rf.serve.predictor` loads it).

A trained network is deployed as a TensorFlow SavedModel that stock TensorFlow (and TF Serving)
can run without this package::

    loaded = tf.saved_model.load(export_dir)
    probs = loaded.signatures["serving_default"](image=images)["particle_probability"]

``serving_default`` takes float32 ``[batch, height, width, 1]`` images (already preprocessed the
way training preprocessed them: x-ray outliers removed, standardised) of any height and width of
at least the size divisor, and returns the particle probability, float32 ``[batch, height, width]``.
Sizes that are not multiples of the size divisor are padded by reflection inside the graph (at the
bottom and right) and the output is cropped back, the same padding `tem_rf.serve.tiling` uses.

Next to it, ``assets/tem_rf.json`` (`METADATA_FILENAME`) holds what a user of the model needs and
cannot read off a graph: receptive field (px, nm), the tiling halo, size divisor, training pixel
size, normalisation, class names, the training config and the package version.

The export folder is written under a temporary name beside it and renamed into place when
complete. It never deletes what it did not make: an existing file, a folder that is not empty
and not a previous tem_rf export (or one that is, unless ``overwrite``), and a folder that is or
contains the model's run directory are refused (`ExportError`, naming the path).

Networks trained under ``mixed_float16`` are exported in float32 by default (the variables are
float32 anyway; float16 convolutions are slow or unsupported on CPUs, where deployment usually
happens); ``keep_mixed_precision=True`` keeps float16 compute for GPU serving. Either way the
output is float32.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tem_rf.core.classes import CLASS_NAMES, PARTICLE_CLASS
from tem_rf.core.files import json_safe, read_json_object
from tem_rf.core.units import pixel_size_or_none
from tem_rf.train.rundir import ModelLoadError, load_run

logger = logging.getLogger(__name__)

METADATA_FILENAME = "tem_rf.json"
METADATA_SCHEMA_VERSION = 1
SIGNATURE_KEY = "serving_default"
SIGNATURE_INPUT = "image"
SIGNATURE_OUTPUT = "particle_probability"
PADDING_MODE = "reflect"  # how images are padded to the size divisor (numpy / tf.pad "REFLECT")
# What a SavedModel written by `export_saved_model` holds at its top level.
EXPORT_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables", "assets"})


class ExportError(ValueError):
    """An export that cannot be written: the message is ``<path>: <problem>``."""


def is_tem_rf_export(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by `export_saved_model` and holds nothing else.

    That is ``saved_model.pb`` and ``assets/tem_rf.json`` (a JSON object), SavedModel files and
    ``variables/variables.*`` besides, and no other file or folder: replacing it loses nothing
    that a new export does not write again.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    entries = {entry.name: entry for entry in path.iterdir()}
    if not {"saved_model.pb", "assets"} <= set(entries) or set(entries) - EXPORT_ENTRIES:
        return False
    for name, entry in entries.items():
        if name in ("variables", "assets"):
            if entry.is_symlink() or not entry.is_dir():
                return False
        elif entry.is_symlink() or not entry.is_file():
            return False
    assets = list(entries["assets"].iterdir())
    if [entry.name for entry in assets] != [METADATA_FILENAME] or not assets[0].is_file():
        return False
    try:
        read_json_object(assets[0])
    except ValueError:
        return False
    if "variables" in entries:
        for entry in entries["variables"].iterdir():
            named = entry.name == "variables.index" or entry.name.startswith("variables.data-")
            if not named or entry.is_symlink() or not entry.is_file():
                return False
    return True


def model_folders(model_path: str | os.PathLike) -> list[Path]:
    """The folders an export of ``model_path`` must leave alone: the run directory, or the folder
    of a ``.keras`` file (its ``config.json``)."""
    path = Path(model_path)
    return [path.parent if path.suffix == ".keras" and not path.is_dir() else path]


def check_export_target(
    export_dir: str | os.PathLike, *, overwrite: bool = False, protected: Iterable[str | os.PathLike] = ()
) -> None:
    """Raises `ExportError` naming ``export_dir`` unless an export may be written there.

    It may when ``export_dir`` does not exist, is an empty folder, or (with ``overwrite``) is a
    previous tem_rf export (`is_tem_rf_export`). Refused are: a file or symbolic link, any other
    folder with something in it, and a folder that is, or contains, one of ``protected`` (the
    model's run directory: `model_folders`) or the current working directory.
    """
    target = Path(export_dir)
    try:
        _check_export_target(target, overwrite, protected)
    except (OSError, RuntimeError) as error:  # unreadable folder, symbolic link loop
        raise ExportError(f"{target}: cannot inspect it: {error}") from error


def _check_export_target(target: Path, overwrite: bool, protected: Iterable[str | os.PathLike]) -> None:
    resolved = target.resolve()
    guarded = [(Path(folder).resolve(), "the model's run directory") for folder in protected]
    guarded.append((Path.cwd().resolve(), "the current working directory"))
    for folder, what in guarded:
        if resolved == folder:
            raise ExportError(f"{target}: is {what}; choose another output folder")
        if resolved in folder.parents:
            raise ExportError(f"{target}: contains {what} {folder}; choose another output folder")
    if target.is_symlink():
        raise ExportError(f"{target}: is a symbolic link; give the folder itself")
    if not target.exists():
        return
    if not target.is_dir():
        raise ExportError(f"{target}: exists and is not a folder; refusing to replace it")
    contents = sorted(entry.name for entry in target.iterdir())
    if not contents:
        return
    if is_tem_rf_export(target):
        if overwrite:
            return
        raise ExportError(f"{target}: holds a previous tem_rf export; pass --overwrite to replace it")
    shown = ", ".join(contents[:4]) + (f", ... ({len(contents)} entries)" if len(contents) > 4 else "")
    raise ExportError(
        f"{target}: folder is not empty and not a tem_rf export (holds {shown}); refusing to replace it"
    )


def float32_model(model: Any) -> Any:
    """A copy of ``model`` that computes in float32 (same weights), e.g. of a mixed_float16 model.

    Returns ``model`` itself when every layer already computes in float32.
    """
    import keras

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone


def model_compute_dtype(model: Any) -> str:
    """``"float32"``, or ``"mixed_float16"`` when some layers compute in float16."""
    dtypes = {layer.dtype_policy.compute_dtype for layer in model.layers}
    return "float32" if dtypes <= {"float32"} else "mixed_float16"


def check_model(model: Any) -> None:
    """The export and the tiling assume one 1-channel image in, per-pixel class probabilities out."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(f"model {model.name!r} must have one input and one output")
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 1:
        raise ModelLoadError(f"model {model.name!r} input {in_shape} is not [batch, H, W, 1]")
    if len(out_shape) != 4 or (out_shape[-1] or 0) <= PARTICLE_CLASS:
        raise ModelLoadError(
            f"model {model.name!r} output {out_shape} is not [batch, H, W, classes>=2]"
        )


def particle_probability_fn(model: Any, size_divisor: int) -> Callable:
    """A ``tf.function`` from float32 ``[B, H, W, 1]`` to the particle probability ``[B, H, W]``.

    Any ``H, W >= size_divisor`` is accepted: the image is padded by reflection at the bottom and
    right to multiples of ``size_divisor`` and the output cropped back. Output is float32 whatever
    the model's compute dtype. This is both the exported serving function and the in-process
    predictor, so a SavedModel and its Keras model run the same graph.
    """
    import tensorflow as tf

    divisor = int(size_divisor)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name=SIGNATURE_INPUT)]
    )
    def serve(image):
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        pad_h, pad_w = (-height) % divisor, (-width) % divisor
        padded = tf.pad(image, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode=PADDING_MODE.upper())
        probabilities = model(padded, training=False)
        particle = tf.cast(probabilities[..., PARTICLE_CLASS], tf.float32)
        return {SIGNATURE_OUTPUT: particle[:, :height, :width]}

    return serve


def _normalisation(config: dict[str, Any]) -> dict[str, Any]:
    """How images must be preprocessed before the network: the training preprocessing.

    Read from the run's config only (``preprocessing``, recorded from the dataset at training
    time), so an export never needs the dataset; runs from before it was recorded get
    ``preprocess_micrograph``'s default x-ray threshold, with a warning.
    """
    from tem_rf.data.preprocess import DEFAULT_XRAY_THRESHOLD

    settings = dict(config.get("preprocessing") or {})
    if config.get("xray_threshold") is not None:
        settings["xray_threshold"] = config["xray_threshold"]
    if "xray_threshold" not in settings:
        logger.warning(
            "the run config records no dataset preprocessing (trained before tem_rf recorded it, "
            "or no config.json): assuming the default x-ray threshold %s",
            DEFAULT_XRAY_THRESHOLD,
        )
    return {
        "function": "tem_rf.data.preprocess_micrograph",
        "description": (
            "x-ray outlier pixels removed, then each whole micrograph standardised to mean 0, "
            "std 1 (before tiling)"
        ),
        "xray_threshold": settings.get("xray_threshold", DEFAULT_XRAY_THRESHOLD),
        "dataset_preprocessing": json_safe(settings) or None,
    }


def build_metadata(
    model: Any,
    config: dict[str, Any] | None = None,
    *,
    compute_dtype: str = "float32",
    source: str | None = None,
) -> dict[str, Any]:
    """The ``tem_rf.json`` asset: everything needed to preprocess, tile and interpret the model."""
    import tem_rf
    from tem_rf.models import count_trainable_parameters
    from tem_rf.models.geometry import model_geometry

    config = dict(config or {})
    pixel_size_nm = pixel_size_or_none(config.get("pixel_size_nm"))
    geometry = model_geometry(model)
    rf_px = geometry.receptive_field.pixels
    class_names = list(config.get("class_names") or CLASS_NAMES)
    return {
        "schema_version": METADATA_SCHEMA_VERSION,
        "tem_rf_version": tem_rf.__version__,
        "architecture": config.get("architecture", model.name),
        "trainable_params": count_trainable_parameters(model),
        "receptive_field_px": rf_px,
        "receptive_field_nm": None if pixel_size_nm is None else rf_px * pixel_size_nm,
        "dependency_extent_px": geometry.dependency_extent_px,
        "halo_px": geometry.halo_px,
        "size_divisor": geometry.size_divisor,
        "pixel_size_nm": pixel_size_nm,
        "normalisation": _normalisation(config),
        "padding": f"{PADDING_MODE} at the bottom and right to multiples of size_divisor",
        "class_names": class_names,
        "particle_class": PARTICLE_CLASS,
        "signature": {
            "key": SIGNATURE_KEY,
            "input": SIGNATURE_INPUT,
            "input_shape": [None, None, None, 1],
            "input_dtype": "float32",
            "output": SIGNATURE_OUTPUT,
            "output_shape": [None, None, None],
            "output_dtype": "float32",
            "compute_dtype": compute_dtype,
        },
        "config": json_safe(config),
        "source": source,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_saved_model(
    model: Any,
    export_dir: str | os.PathLike,
    config: dict[str, Any] | None = None,
    *,
    keep_mixed_precision: bool = False,
    source: str | None = None,
    overwrite: bool = False,
    protected: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Writes ``model`` as a SavedModel with ``serving_default`` and ``assets/tem_rf.json``.

    ``export_dir`` must pass `check_export_target` (``overwrite``: a previous tem_rf export there
    is replaced; ``protected``: folders it must not be or contain). The folder is written under a
    temporary name beside it and renamed into place when complete; a replaced export is deleted
    only after that. On any failure nothing is left behind and nothing existing is changed;
    failures to write are `ExportError` naming ``export_dir``. Returns the metadata written.
    """
    import keras
    import tensorflow as tf

    from tem_rf.core.files import atomic_directory

    protected = list(protected)

    def check(target: Path) -> None:
        check_export_target(target, overwrite=overwrite, protected=protected)

    check(Path(export_dir))
    check_model(model)
    serving_model = model if keep_mixed_precision else float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=model_compute_dtype(serving_model), source=source
    )
    serve = particle_probability_fn(serving_model, metadata["size_divisor"])

    try:
        with atomic_directory(export_dir, check) as tmp:
            archive = keras.export.ExportArchive()
            archive.track(serving_model)
            archive.add_endpoint("serve", serve)  # the first endpoint becomes serving_default
            archive.write_out(str(tmp), verbose=False)
            # A plain file in assets/ travels with the SavedModel and is ignored by TF Serving.
            assets = tmp / "assets"
            assets.mkdir(exist_ok=True)
            (assets / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
    except OSError as error:
        raise ExportError(f"{export_dir}: cannot write the export: {error}") from error
    except tf.errors.OpError as error:
        raise ExportError(f"{export_dir}: cannot write the export: {error.message}") from error
    return metadata


def export_run(
    model_path: str | os.PathLike,
    export_dir: str | os.PathLike,
    *,
    keep_mixed_precision: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Exports a run directory's network (or a ``.keras`` file) with its run config.

    ``export_dir`` is checked (`check_export_target`, the run directory protected) before the
    model is loaded.
    """
    protected = model_folders(model_path)
    check_export_target(export_dir, overwrite=overwrite, protected=protected)
    model, config, model_file = load_run(model_path)
    return export_saved_model(
        model, export_dir, config, keep_mixed_precision=keep_mixed_precision, source=str(model_file),
        overwrite=overwrite, protected=protected,
    )
