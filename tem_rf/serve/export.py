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

from tem_rf.core.pretrained import model_source, resolve_model
from tem_rf.core.errors import TemRfError

import datetime
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tem_rf.core.classes import BOUNDARY_CLASS, PARTICLE_CLASS, class_names
# median_filter_3x3_tf, remove_xray_outliers_tf: public here before, until tem_rf 0.3.0 (core.cli.SHIMS_REMOVED_IN)
from tem_rf.serve.graph_preprocess import (  # noqa: F401
    median_filter_3x3_tf, preprocess_micrograph_tf, remove_xray_outliers_tf,
)
from tem_rf.core.files import json_safe, read_json_object
from tem_rf.core.units import pixel_size_or_none
from tem_rf.train.rundir import CONFIG_FILE, ModelLoadError, RunDir, load_run

logger = logging.getLogger(__name__)

METADATA_FILENAME = "tem_rf.json"
METADATA_SCHEMA_VERSION = 1
SIGNATURE_KEY = "serving_default"  # preprocessed input, as before 0.3; kept for compatibility
PREPROCESSED_ENDPOINT = "serve"  # Keras' TFSMLayer default endpoint: the same function
SIGNATURE_INPUT = "image"
SIGNATURE_OUTPUT = "particle_probability"
PREPROCESSED_SIGNATURE_KEY = "serving_preprocessed"  # the same function as serving_default
RAW_SIGNATURE_PREFIX = "serving_raw_"  # + dtype: raw micrographs, tem_rf's preprocessing in the graph
RAW_DTYPES = ("uint8", "uint16", "int16", "int32", "float32", "float64")
RAW_SIGNATURE_INPUT = "micrograph"
SCALED_SIGNATURE_KEY = "serving_raw_float32_scaled"  # raw float32 + its pixel size: resampled in the graph
PIXEL_SIZE_INPUT = "pixel_size_nm"
# A function (not a signature) of the SavedModel, traced once per exported raw dtype: called with a
# NumPy array it runs the trace of that array's own dtype and refuses any other dtype, where a
# typed signature would convert it silently (float32 -> uint16 truncates, int64 wraps).
DTYPE_DISPATCH_FUNCTION = "segment"
MASK_OUTPUT = "particle_mask"
BOUNDARY_OUTPUT = "boundary_probability"  # boundary-target networks only (`tem_rf.data.instance_masks`)
MASK_THRESHOLD = 0.5
PADDING_MODE = "reflect"  # how images are padded to the size divisor (numpy / tf.pad "REFLECT")
# What a SavedModel written by `export_saved_model` holds at its top level.
EXPORT_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables", "assets"})


class ExportError(TemRfError, ValueError):
    """An export that cannot be written: the message is ``<path>: <problem>``."""


def check_raw_dtypes(raw_dtypes: Iterable[str]) -> tuple[str, ...]:
    """``raw_dtypes`` as a tuple in `RAW_DTYPES`' order, each once; unknown names are a ValueError."""
    raw_dtypes = [str(dtype).strip() for dtype in raw_dtypes]
    unknown = [dtype for dtype in raw_dtypes if dtype not in RAW_DTYPES]
    if unknown:
        raise ValueError(f"raw dtype(s) {', '.join(unknown)} not among {', '.join(RAW_DTYPES)}")
    return tuple(dtype for dtype in RAW_DTYPES if dtype in raw_dtypes)


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
    of a ``.keras`` file (its ``config.json``); for ``pretrained:NAME``, the package's copy."""
    path = resolve_model(model_path)
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
    if len(out_shape) != 4 or out_shape[-1] not in (2, 3):
        raise ModelLoadError(
            f"model {model.name!r} output {out_shape} is not [batch, H, W, 2 or 3 classes]"
        )


def has_boundary_class(model: Any) -> bool:
    """Whether a network was trained with the boundary target (three output classes)."""
    return model.outputs[0].shape[-1] == 3


def _reflect_indices(size: Any, total: Any) -> Any:
    """Indices ``[0, total)`` into an axis of ``size`` values, extended by repeated reflection.

    ``d c b | a b c d | c b a b c ...``: numpy's ``np.pad(mode="reflect")`` (and ``tf.pad``
    ``REFLECT`` where that works, i.e. a pad shorter than the axis), for pads of any length; an
    axis of one value is repeated.
    """
    import tensorflow as tf

    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(total), period)
    return tf.minimum(tf.where(index < size, index, period - index), size - 1)


def pad_reflect(image: Any, pad_h: Any, pad_w: Any) -> Any:
    """``[B, H, W, ...]`` padded at the bottom and right by reflection (pads of any length)."""
    import tensorflow as tf

    height, width = tf.shape(image)[1], tf.shape(image)[2]
    image = tf.gather(image, _reflect_indices(height, height + pad_h), axis=1)
    return tf.gather(image, _reflect_indices(width, width + pad_w), axis=2)


def minimum_input_size(receptive_field_px: int) -> int:
    """The smallest height and width the exported signatures accept: a quarter of the receptive
    field (smaller images hold too little of what the network looks at to mean anything)."""
    return max(1, -(-int(receptive_field_px) // 4))


def _check_size(height: Any, width: Any, min_size: int | None, receptive_field_px: int | None) -> list:
    import tensorflow as tf

    if not min_size or min_size <= 1:
        return []
    message = (
        f"image smaller than {min_size} px (a quarter of the receptive field, {receptive_field_px} px) "
        "in height or width: too small to segment"
    )
    return [tf.debugging.assert_greater_equal(tf.minimum(height, width), min_size, message=message)]


def particle_probability_fn(
    model: Any, size_divisor: int, *, min_size: int | None = None, receptive_field_px: int | None = None
) -> Callable:
    """A ``tf.function`` from float32 ``[B, H, W, 1]`` to the particle probability ``[B, H, W]``
    (``particle_probability``) and, for a boundary-target network, the particle boundary's
    ``[B, H, W]`` (``boundary_probability``; the particle probability is interior + boundary).

    Any ``H, W`` is accepted (with ``min_size``: at least that, else an InvalidArgumentError
    saying so; a NaN or infinite value is one too): the image is padded by reflection at the bottom and right to multiples of
    ``size_divisor`` (repeatedly for images smaller than the divisor) and the output cropped
    back. Output is float32 whatever the model's compute dtype. This is both the exported
    preprocessed-input serving function and the in-process predictor, so a SavedModel and its
    Keras model run the same graph.
    """
    import tensorflow as tf

    divisor = int(size_divisor)
    boundary = has_boundary_class(model)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name=SIGNATURE_INPUT)]
    )
    def serve(image):
        # a NaN would otherwise come out as a finite, meaningless probability
        image = tf.debugging.assert_all_finite(image, "image holds NaN or infinite values; preprocessed images are finite")
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        with tf.control_dependencies(_check_size(height, width, min_size, receptive_field_px)):
            pad_h, pad_w = (-height) % divisor, (-width) % divisor
        padded = pad_reflect(image, pad_h, pad_w)
        probabilities = tf.cast(model(padded, training=False), tf.float32)[:, :height, :width]
        if not boundary:
            return {SIGNATURE_OUTPUT: probabilities[..., PARTICLE_CLASS]}
        return {SIGNATURE_OUTPUT: tf.reduce_sum(probabilities[..., PARTICLE_CLASS:], axis=-1),
                BOUNDARY_OUTPUT: probabilities[..., BOUNDARY_CLASS]}

    return serve



def raw_micrograph_fn(
    probability_fn: Callable,
    dtype: str,
    *,
    xray_threshold: float | None,
    min_size: int | None = None,
    receptive_field_px: int | None = None,
    mask_threshold: float = MASK_THRESHOLD,
    rank: int | None = None,
    outputs: tuple[str, ...] | None = None,
    statistics_margin: int = 0,
) -> Callable:
    """A ``tf.function`` from raw micrographs of ``dtype``, ``[B, H, W]`` or ``[B, H, W, 1]``
    (``rank`` None: either, or one micrograph as read, ``[H, W]``, answered ``[H, W]``), to
    ``particle_probability`` float32 ``[B, H, W]``, ``particle_mask``
    uint8 0/1 (probability > ``mask_threshold``) and, from a boundary-target network,
    ``boundary_probability``; ``outputs`` None: all of them, else those named.

    Inside the graph: tem_rf's preprocessing (`preprocess_micrograph_tf`: x-ray outliers
    removed with ``xray_threshold``, each micrograph standardised), then ``probability_fn`` (the
    preprocessed-input function, `particle_probability_fn`).
    """
    import tensorflow as tf

    shape = None if rank is None else [None, None, None] + [1] * (rank - 3)
    rank_allows_single = rank is None

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.as_dtype(dtype), name=RAW_SIGNATURE_INPUT)])
    def serve_raw(micrograph):
        dims = tf.shape(micrograph)
        rank = tf.size(dims)
        layout = "raw micrograph must be [height, width], [batch, height, width] or [batch, height, width, 1]"
        known = tf.logical_or(tf.logical_or(tf.equal(rank, 2), tf.equal(rank, 3)),
                              tf.logical_and(tf.equal(rank, 4), tf.equal(dims[-1], 1)))
        with tf.control_dependencies([tf.debugging.assert_equal(known, True, message=layout)]):
            # one micrograph as read, [H, W], is a batch of one, answered as [H, W]
            single = tf.equal(rank, 2)
            height_width = tf.cond(single, lambda: dims[:2], lambda: dims[1:3])
            images = tf.reshape(micrograph, tf.concat([[-1], height_width], axis=0))
        with tf.control_dependencies(_check_size(height_width[0], height_width[1], min_size, receptive_field_px)):
            standardised = preprocess_micrograph_tf(images, xray_threshold, statistics_margin)
        result = dict(probability_fn(standardised[..., None]))
        result[MASK_OUTPUT] = tf.cast(result[SIGNATURE_OUTPUT] > mask_threshold, tf.uint8)
        if rank_allows_single:
            out_shape = tf.cond(single, lambda: height_width, lambda: tf.shape(images))
            result = {name: tf.reshape(value, out_shape) for name, value in result.items()}  # all [B, H, W]
        return result if outputs is None else {name: result[name] for name in outputs}

    return serve_raw


def scaled_micrograph_fn(
    probability_fn: Callable,
    training_pixel_size_nm: float,
    *,
    xray_threshold: float | None,
    min_size: int | None = None,
    receptive_field_px: int | None = None,
    mask_threshold: float = MASK_THRESHOLD,
) -> Callable:
    """A ``tf.function`` from raw float32 micrographs ``[B, H, W]`` and their pixel size
    (``pixel_size_nm``, a float64 scalar) to ``particle_probability`` and ``particle_mask`` on the
    micrographs' own grid, the network applied at ``training_pixel_size_nm`` as `segment` applies
    it (`tem_rf.serve.scale`): preprocessing on the micrograph's grid, bilinear resampling to the
    network's (anti-aliased when shrinking) and standardising there, the probability resampled
    back. Within `SCALE_TOLERANCE` of the training pixel size nothing is resampled; a factor
    beyond `MAX_SCALE_FACTOR` either way, or a pixel size that is not a positive number, is an
    InvalidArgumentError saying so.
    """
    import tensorflow as tf

    from tem_rf.serve.scale import MAX_SCALE_FACTOR, SCALE_TOLERANCE

    training = float(training_pixel_size_nm)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float32, name=RAW_SIGNATURE_INPUT),
                                  tf.TensorSpec([], tf.float64, name=PIXEL_SIZE_INPUT)])
    def serve_scaled(micrograph, pixel_size_nm):
        factor = pixel_size_nm / training
        checks = [tf.debugging.assert_equal(
            tf.logical_and(tf.math.is_finite(factor), tf.logical_and(
                factor >= 1.0 / MAX_SCALE_FACTOR, factor <= MAX_SCALE_FACTOR)), True,
            message=f"pixel_size_nm must be a positive number within {MAX_SCALE_FACTOR:g}x of the training "
                    f"pixel size {training:g} nm either way",
        )]
        height, width = tf.shape(micrograph)[1], tf.shape(micrograph)[2]
        with tf.control_dependencies(checks):  # everything below waits for the pixel size check
            factor = tf.identity(factor)
            standardised = preprocess_micrograph_tf(micrograph, xray_threshold)[..., None]

        # the particle's, and the boundary's if any
        names = tuple(probability_fn.get_concrete_function().structured_outputs)

        def native():
            result = probability_fn(standardised)
            return tf.stack([result[name] for name in names], axis=-1)

        def resampled():
            grid = tf.maximum(tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float64) * factor), tf.int32), 1)
            with tf.control_dependencies(_check_size(grid[0], grid[1], min_size, receptive_field_px)):
                image = tf.image.resize(standardised, grid, method="bilinear", antialias=True)
            image = tf.cast(image, tf.float64)
            mean = tf.reduce_mean(image, axis=[1, 2, 3], keepdims=True)
            std = tf.sqrt(tf.reduce_mean(tf.square(image - mean), axis=[1, 2, 3], keepdims=True))
            result = probability_fn(tf.cast((image - mean) / std, tf.float32))
            maps = tf.stack([result[name] for name in names], axis=-1)
            back = tf.image.resize(maps, [height, width], method="bilinear", antialias=True)
            return tf.clip_by_value(back, 0.0, 1.0)

        maps = tf.cond(tf.abs(factor - 1.0) > SCALE_TOLERANCE, resampled, native)
        result = {name: maps[..., index] for index, name in enumerate(names)}
        result[MASK_OUTPUT] = tf.cast(result[SIGNATURE_OUTPUT] > mask_threshold, tf.uint8)
        return result

    return serve_scaled


def _scaled_entry(pixel_size_nm: float | None, raw_dtypes: tuple[str, ...]) -> dict[str, Any]:
    """``signature.raw.scaled`` of the metadata: exported with the float32 raw signature when the
    network has a training pixel size."""
    from tem_rf.serve.scale import MAX_SCALE_FACTOR, SCALE_TOLERANCE

    if pixel_size_nm is None or "float32" not in raw_dtypes:
        return {}
    return {"scaled": {
        "key": SCALED_SIGNATURE_KEY,
        "inputs": {RAW_SIGNATURE_INPUT: "float32 [batch, height, width]", PIXEL_SIZE_INPUT: "float64 scalar, nm/px"},
        "description": f"resampled in the graph to the training pixel size {pixel_size_nm:g} nm and back (bilinear, "
                       f"anti-aliased when shrinking) beyond {100 * SCALE_TOLERANCE:g} %; refused beyond "
                       f"{MAX_SCALE_FACTOR:g}x either way",
    }}


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


_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _is_absolute_path(value: str) -> bool:
    return value.startswith(("/", "~")) or bool(_WINDOWS_ABSOLUTE.match(value))


def strip_paths(value: Any, run_dir: str | os.PathLike | None = None) -> Any:
    """``value`` (JSON-like) with every absolute path replaced: relative to ``run_dir`` when it
    lies inside it (the run folder itself is ``"."``), else by its last component."""
    if isinstance(value, dict):
        return {key: strip_paths(item, run_dir) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strip_paths(item, run_dir) for item in value]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not _is_absolute_path(value):
        return value
    if run_dir is not None and value.startswith("/"):
        try:
            return Path(value).resolve().relative_to(Path(run_dir).resolve()).as_posix() or "."
        except (ValueError, OSError, RuntimeError):
            pass
    return re.split(r"[\\/]", value.rstrip("/\\"))[-1] or None


def _instance_rule(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's fitted instance rule as exports carry it: the rule and how well it did."""
    if not record:
        return None
    keys = ("boundary_threshold", "min_seed_px", "split", "images", "f1")
    return {key: record.get(key) for key in keys}


def training_state(run_dir: str | os.PathLike | None, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """Whether the run a model comes from finished training (``metrics.json`` written), and the
    epochs it trained of those asked; None for a model without a run directory. An unfinished
    run is warned about: its weights are the best epoch so far, not the run's result."""
    if run_dir is None or not (Path(run_dir) / CONFIG_FILE).is_file():
        return None
    run = RunDir(Path(run_dir))
    epochs = (config or {}).get("epochs")
    trained = len(run.history())
    state = {"finished": run.is_finished, "epochs_trained": trained, "epochs": epochs}
    if not run.is_finished:
        logger.warning("%s: the run has not finished training (%d of %s epochs, no metrics.json); the model is "
                       "its best epoch so far, and the export records that", run_dir, trained, epochs)
    return state


def build_metadata(
    model: Any,
    config: dict[str, Any] | None = None,
    *,
    compute_dtype: str = "float32",
    source: str | None = None,
    run_dir: str | os.PathLike | None = None,
    raw_dtypes: Iterable[str] = RAW_DTYPES,
) -> dict[str, Any]:
    """The ``tem_rf.json`` asset: everything needed to preprocess, tile and interpret the model.

    ``signature.raw.keys`` lists the raw-micrograph signatures of ``raw_dtypes``.

    It holds no absolute path of the training machine (`strip_paths`): ``source`` is the model
    file's name, and paths in the run config become relative to ``run_dir`` (the run folder) or,
    outside it, their last component (``data_dir``: the dataset folder's name).
    """
    import tem_rf
    from tem_rf.models import count_trainable_parameters
    from tem_rf.models.geometry import model_geometry

    config = dict(config or {})
    pixel_size_nm = pixel_size_or_none(config.get("pixel_size_nm"))
    geometry = model_geometry(model)
    rf_px = geometry.receptive_field.pixels
    boundary = has_boundary_class(model)
    metadata = {
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
        # the training particles' diameters in px (`tem_rf.data.particle_sizes`), or None
        "particle_diameter_px": config.get("particle_diameter_px"),
        "normalisation": _normalisation(config),
        "padding": f"{PADDING_MODE} at the bottom and right to multiples of size_divisor",
        "class_names": list(class_names(3 if boundary else 2)),
        "particle_class": PARTICLE_CLASS,
        # boundary: the network tells touching particles apart (`tem_rf.particles.learned_instances`)
        "target": "boundary" if boundary else "mask",
        # how its particles are read: fitted on validation micrographs (`tem_rf.serve.instance_rule`)
        "instance_rule": _instance_rule(config.get("instance_rule")) if boundary else None,
        "signature": {
            "key": SIGNATURE_KEY,
            "input": SIGNATURE_INPUT,
            "input_shape": [None, None, None, 1],
            "input_dtype": "float32",
            "output": SIGNATURE_OUTPUT,
            "output_shape": [None, None, None],
            "output_dtype": "float32",
            "boundary_output": BOUNDARY_OUTPUT if boundary else None,
            "compute_dtype": compute_dtype,
            "aliases": [PREPROCESSED_SIGNATURE_KEY, PREPROCESSED_ENDPOINT],
            "description": (
                "preprocessed input (x-ray outliers removed, micrograph standardised as "
                "tem_rf.data.preprocess_micrograph does); for raw micrographs use raw.keys"
            ),
            "min_size_px": minimum_input_size(rf_px),
            "raw": {
                "keys": {dtype: RAW_SIGNATURE_PREFIX + dtype for dtype in check_raw_dtypes(raw_dtypes)},
                # loaded.segment(micrograph): the signature of the array's own dtype, others refused
                "function": DTYPE_DISPATCH_FUNCTION if check_raw_dtypes(raw_dtypes) else None,
                **_scaled_entry(pixel_size_nm, check_raw_dtypes(raw_dtypes)),
                "input": RAW_SIGNATURE_INPUT,
                "input_shape": "[batch, height, width] or [batch, height, width, 1]",
                "outputs": {SIGNATURE_OUTPUT: "float32 [batch, height, width]",
                            MASK_OUTPUT: f"uint8 [batch, height, width], 1 where probability > {MASK_THRESHOLD}",
                            **({BOUNDARY_OUTPUT: "float32 [batch, height, width], particle boundary probability"}
                               if boundary else {})},
                "mask_threshold": MASK_THRESHOLD,
                "preprocessing": "in the graph: x-ray outlier removal (normalisation.xray_threshold), "
                                 "then each micrograph standardised (mean 0, std 1), in float64",
                "min_size_px": minimum_input_size(rf_px),
            },
        },
        "config": config,
        "training": training_state(run_dir, config),
        "source": None if source is None else Path(source).name,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return json_safe(strip_paths(metadata, run_dir))


def export_saved_model(
    model: Any,
    export_dir: str | os.PathLike,
    config: dict[str, Any] | None = None,
    *,
    keep_mixed_precision: bool = False,
    source: str | None = None,
    overwrite: bool = False,
    protected: Iterable[str | os.PathLike] = (),
    run_dir: str | os.PathLike | None = None,
    raw_dtypes: Iterable[str] = RAW_DTYPES,
    progress: bool = False,
) -> dict[str, Any]:
    """Writes ``model`` as a SavedModel with its signatures and ``assets/tem_rf.json``
    (``progress``: a progress bar over the signatures traced, most of an export's time).

    Signatures: ``serving_default`` (also ``serving_preprocessed`` and ``serve``): float32
    ``image`` ``[batch, H, W, 1]`` preprocessed as in training -> ``particle_probability``;
    ``serving_raw_<dtype>`` for each of ``raw_dtypes`` (default all of `RAW_DTYPES`; each costs
    about half a second to trace and write): raw ``micrograph`` ``[batch, H, W]`` or
    ``[batch, H, W, 1]`` -> ``particle_probability`` and ``particle_mask``, tem_rf's
    preprocessing in the graph (`raw_micrograph_fn`).

    ``export_dir`` must pass `check_export_target` (``overwrite``: a previous tem_rf export there
    is replaced; ``protected``: folders it must not be or contain). The folder is written under a
    temporary name beside it and renamed into place when complete; a replaced export is deleted
    only after that. On any failure nothing is left behind and nothing existing is changed;
    failures to write are `ExportError` naming ``export_dir``. Returns the metadata written.
    """
    from tem_rf.core.files import atomic_directory
    from tem_rf.core.locks import output_lock, remove_stale_temporaries
    from tem_rf.core.progress import progress_bar

    protected = list(protected)

    def check(target: Path) -> None:
        check_export_target(target, overwrite=overwrite, protected=protected)

    check(Path(export_dir))
    check_model(model)
    raw_dtypes = check_raw_dtypes(raw_dtypes)
    serving_model = model if keep_mixed_precision else float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=model_compute_dtype(serving_model), source=source,
        run_dir=run_dir, raw_dtypes=raw_dtypes,
    )
    functions = serving_functions(serving_model, metadata, raw_dtypes=raw_dtypes)
    traced = {id(function): function for function in functions.values()}.values()  # aliases once
    for function in progress_bar(traced, desc="signatures", total=len(traced), unit="signature", enabled=progress):
        function.get_concrete_function()  # traced here, reused when written
    try:
        with output_lock(export_dir), atomic_directory(export_dir, check) as tmp:
            remove_stale_temporaries([export_dir], keep=[tmp])  # a killed export's
            write_saved_model(serving_model, metadata, tmp, export_dir, functions)
    except OSError as error:  # moving the finished export into place
        raise ExportError(f"{export_dir}: cannot write the export: {error}") from error
    return metadata


def serving_functions(model: Any, metadata: dict[str, Any], *, raw_dtypes: Iterable[str] = RAW_DTYPES) -> dict[str, Callable]:
    """The exported endpoints by name, the first being ``serving_default``'s function."""
    rf_px = int(metadata["receptive_field_px"])
    limits = {"min_size": minimum_input_size(rf_px), "receptive_field_px": rf_px}
    preprocessed = particle_probability_fn(model, metadata["size_divisor"], **limits)
    functions = {PREPROCESSED_ENDPOINT: preprocessed, PREPROCESSED_SIGNATURE_KEY: preprocessed}
    threshold = metadata["normalisation"]["xray_threshold"]
    for dtype in raw_dtypes:
        functions[RAW_SIGNATURE_PREFIX + dtype] = raw_micrograph_fn(
            preprocessed, dtype, xray_threshold=threshold, **limits
        )
    if "scaled" in metadata["signature"]["raw"]:
        functions[SCALED_SIGNATURE_KEY] = scaled_micrograph_fn(
            preprocessed, metadata["pixel_size_nm"], xray_threshold=threshold, **limits
        )
    return functions


def dtype_dispatch_fn(raw_functions: dict[str, Callable]) -> Callable | None:
    """`DTYPE_DISPATCH_FUNCTION`: a ``tf.function`` traced for each dtype of ``raw_functions``
    (dtype name -> `raw_micrograph_fn`), each trace calling that dtype's function; None when
    there are none. Loaded, it runs an array of one of those dtypes and refuses any other."""
    import tensorflow as tf

    if not raw_functions:
        return None

    @tf.function
    def segment(micrograph):
        return raw_functions[micrograph.dtype.name](micrograph)

    for dtype in raw_functions:
        segment.get_concrete_function(tf.TensorSpec(None, tf.as_dtype(dtype), name=RAW_SIGNATURE_INPUT))
    return segment


def write_saved_model(
    model: Any,
    metadata: dict[str, Any],
    folder: Path,
    target: str | os.PathLike,
    functions: dict[str, Callable] | None = None,
) -> None:
    """Writes the SavedModel of ``model`` (endpoints: ``functions``, default `serving_functions`)
    and ``assets/tem_rf.json`` into the new folder ``folder``; errors are `ExportError` naming
    ``target``."""
    import keras
    import tensorflow as tf

    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        functions = functions or serving_functions(model, metadata)
        for name, function in functions.items():
            archive.add_endpoint(name, function)  # the first endpoint becomes serving_default
        dispatch = dtype_dispatch_fn(
            {name[len(RAW_SIGNATURE_PREFIX):]: function for name, function in functions.items()
             if name.startswith(RAW_SIGNATURE_PREFIX) and name != SCALED_SIGNATURE_KEY}
        )
        if dispatch is not None:
            # ExportArchive saves what its trackable holds; endpoints become signatures, this one
            # stays a function with a trace per dtype (Keras has no public call for that).
            setattr(archive._tf_trackable, DTYPE_DISPATCH_FUNCTION, dispatch)
        archive.write_out(str(folder), verbose=False)
        # A plain file in assets/ travels with the SavedModel and is ignored by TF Serving.
        assets = Path(folder) / "assets"
        assets.mkdir(exist_ok=True)
        (assets / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
    except OSError as error:
        raise ExportError(f"{target}: cannot write the export: {error}") from error
    except tf.errors.OpError as error:
        raise ExportError(f"{target}: cannot write the export: {error.message}") from error


def export_run(
    model_path: str | os.PathLike,
    export_dir: str | os.PathLike,
    *,
    keep_mixed_precision: bool = False,
    overwrite: bool = False,
    raw_dtypes: Iterable[str] = RAW_DTYPES,
    progress: bool = False,
) -> dict[str, Any]:
    """Exports a run directory's network (or a ``.keras`` file) with its run config
    (`export_saved_model`).

    ``export_dir`` is checked (`check_export_target`, the run directory protected) and
    ``raw_dtypes`` too (`check_raw_dtypes`) before the model is loaded.
    """
    protected = model_folders(model_path)
    raw_dtypes = check_raw_dtypes(raw_dtypes)
    check_export_target(export_dir, overwrite=overwrite, protected=protected)
    model, config, model_file = load_run(model_path)
    return export_saved_model(
        model, export_dir, config, keep_mixed_precision=keep_mixed_precision, source=model_source(model_path, model_file),
        overwrite=overwrite, protected=protected, run_dir=Path(model_file).parent, raw_dtypes=raw_dtypes,
        progress=progress,
    )


def format_export_summary(metadata: dict[str, Any], export_dir: str | os.PathLike) -> str:
    """What `experiments.export` prints after a SavedModel export: signatures, geometry, pixel size."""
    nm = metadata["receptive_field_nm"]
    pixel = metadata["pixel_size_nm"]
    raw_keys = metadata["signature"]["raw"]["keys"]
    lines = [
        f"exported {metadata['architecture']} to {export_dir}",
        "  serving_default (= serving_preprocessed): float32 image [batch, height, width, 1], "
        "preprocessed -> particle_probability [batch, height, width] float32",
    ]
    if raw_keys:
        lines.append(
            f"  {RAW_SIGNATURE_PREFIX}{'/'.join(raw_keys)}: raw micrograph [batch, height, width(, 1)], "
            "preprocessing in the graph -> particle_probability, particle_mask"
        )
    if "scaled" in metadata["signature"]["raw"]:
        lines.append(
            f"  {SCALED_SIGNATURE_KEY}: float32 micrograph [batch, height, width] + pixel_size_nm, resampled "
            "to the training pixel size in the graph -> particle_probability, particle_mask"
        )
    lines.append(
        f"  receptive field {metadata['receptive_field_px']} px"
        + (f" = {nm:.2f} nm" if nm is not None else "")
        + f", size divisor {metadata['size_divisor']}, tiling halo {metadata['halo_px']} px"
    )
    lines.append(
        "  training pixel size "
        + (f"{pixel:.4g} nm" if pixel is not None else "unknown")
        + f", compute dtype {metadata['signature']['compute_dtype']}, metadata assets/tem_rf.json"
    )
    return "\n".join(lines)
