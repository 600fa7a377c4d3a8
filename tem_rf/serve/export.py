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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tem_rf.core.classes import CLASS_NAMES, PARTICLE_CLASS
from tem_rf.core.files import json_safe
from tem_rf.core.units import pixel_size_or_none
from tem_rf.train.rundir import ModelLoadError, load_run

logger = logging.getLogger(__name__)

METADATA_FILENAME = "tem_rf.json"
METADATA_SCHEMA_VERSION = 1
SIGNATURE_KEY = "serving_default"
SIGNATURE_INPUT = "image"
SIGNATURE_OUTPUT = "particle_probability"
PADDING_MODE = "reflect"  # how images are padded to the size divisor (numpy / tf.pad "REFLECT")


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
) -> dict[str, Any]:
    """Writes ``model`` as a SavedModel with ``serving_default`` and ``assets/tem_rf.json``.

    The directory is written under a temporary name and renamed when complete, so an existing
    export is replaced only by a whole one. Returns the metadata written.
    """
    import keras

    from tem_rf.core.files import atomic_path

    check_model(model)
    serving_model = model if keep_mixed_precision else float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=model_compute_dtype(serving_model), source=source
    )
    serve = particle_probability_fn(serving_model, metadata["size_divisor"])

    export_dir = Path(export_dir)
    with atomic_path(export_dir, directory=True) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(serving_model)
        archive.add_endpoint("serve", serve)  # the first endpoint becomes serving_default
        archive.write_out(str(tmp), verbose=False)
        # A plain file in assets/ travels with the SavedModel and is ignored by TF Serving.
        assets = tmp / "assets"
        assets.mkdir(exist_ok=True)
        (assets / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def export_run(
    model_path: str | os.PathLike, export_dir: str | os.PathLike, *, keep_mixed_precision: bool = False
) -> dict[str, Any]:
    """Exports a run directory's network (or a ``.keras`` file) with its run config."""
    model, config, model_file = load_run(model_path)
    return export_saved_model(
        model, export_dir, config, keep_mixed_precision=keep_mixed_precision, source=str(model_file)
    )


