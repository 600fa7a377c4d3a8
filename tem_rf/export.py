"""SavedModel export of a trained network, its metadata asset, and loading it back as a predictor.

A trained network is deployed as a TensorFlow SavedModel that stock TensorFlow (and TF Serving)
can run without this package::

    loaded = tf.saved_model.load(export_dir)
    probs = loaded.signatures["serving_default"](image=images)["particle_probability"]

``serving_default`` takes float32 ``[batch, height, width, 1]`` images (already preprocessed the
way training preprocessed them: x-ray outliers removed, standardised) of any height and width of
at least the size divisor, and returns the particle probability, float32 ``[batch, height, width]``.
Sizes that are not multiples of the size divisor are padded by reflection inside the graph (at the
bottom and right) and the output is cropped back, the same padding `tem_rf.inference` uses.

Next to it, ``assets/tem_rf.json`` (`METADATA_FILENAME`) holds what a user of the model needs and
cannot read off a graph: receptive field (px, nm), the tiling halo, size divisor, training pixel
size, normalisation, class names, the training config and the package version.

Networks trained under ``mixed_float16`` are exported in float32 by default (the variables are
float32 anyway; float16 convolutions are slow or unsupported on CPUs, where deployment usually
happens); ``keep_mixed_precision=True`` keeps float16 compute for GPU serving. Either way the
output is float32.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

METADATA_FILENAME = "tem_rf.json"
METADATA_SCHEMA_VERSION = 1
SIGNATURE_KEY = "serving_default"
SIGNATURE_INPUT = "image"
SIGNATURE_OUTPUT = "particle_probability"
DEFAULT_CLASS_NAMES = ("background", "particle")
PARTICLE_CLASS = 1  # channel of the particle class in the network's softmax output
RUN_MODEL_FILES = ("best.keras", "model.keras")  # preferred first: best validation dice
PADDING_MODE = "reflect"  # how images are padded to the size divisor (numpy / tf.pad "REFLECT")


class ModelLoadError(ValueError):
    """A model path that is not a SavedModel, a run directory or a loadable ``.keras`` file."""


def _finite_or_none(value: Any) -> float | None:
    """Pixel sizes in config files may be null or NaN (unknown); both mean None here."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; numpy scalars are not serialisable: make a config dumpable."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def load_keras_model(path: str | os.PathLike) -> Any:
    """Loads a ``.keras`` file without its compile state (optimizer, losses, metrics)."""
    import keras

    import tem_rf.models  # noqa: F401  (registers InputSizeCheck for deserialisation)

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such Keras model file")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # corrupt zip, unknown layers, ...: one clear message
        raise ModelLoadError(f"{path}: cannot load Keras model: {error}") from error


def load_run(path: str | os.PathLike) -> tuple[Any, dict[str, Any], Path]:
    """Loads the network of a run directory (``best.keras``, else ``model.keras``) or a ``.keras``.

    Returns ``(model, config, model_file)``; ``config`` is the run's ``config.json`` (next to a
    ``.keras`` file, or in the run directory), or ``{}`` when there is none.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / name for name in RUN_MODEL_FILES if (path / name).is_file()]
        if not candidates:
            raise ModelLoadError(
                f"{path}: not a run directory (no {' or '.join(RUN_MODEL_FILES)}) "
                "and not a SavedModel (no saved_model.pb)"
            )
        model_file, config_file = candidates[0], path / "config.json"
    elif path.suffix == ".keras":
        model_file, config_file = path, path.parent / "config.json"
    elif path.exists():
        raise ModelLoadError(f"{path}: expected a run directory, a SavedModel or a .keras file")
    else:
        raise ModelLoadError(f"{path}: no such file or directory")
    config: dict[str, Any] = {}
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelLoadError(f"{config_file}: not valid JSON: {error}") from error
        if not isinstance(config, dict):
            raise ModelLoadError(f"{config_file}: expected a JSON object")
    else:
        logger.warning("%s: no config.json beside the model; pixel size and config unknown", model_file)
    return load_keras_model(model_file), config, model_file


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


def _compute_dtype(model: Any) -> str:
    """``"float32"``, or ``"mixed_float16"`` when some layers compute in float16."""
    dtypes = {layer.dtype_policy.compute_dtype for layer in model.layers}
    return "float32" if dtypes <= {"float32"} else "mixed_float16"


def _check_model(model: Any) -> None:
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

    The x-ray threshold is taken from the run's config, or from the training dataset's
    ``dataset.json`` when it is still reachable, else ``preprocess_micrograph``'s default.
    """
    settings: dict[str, Any] = {}
    data_dir = config.get("data_dir")
    if data_dir:
        info_file = Path(data_dir) / "dataset.json"
        try:
            preprocessing = json.loads(info_file.read_text()).get("preprocessing")
        except (OSError, ValueError, AttributeError):
            preprocessing = None
        if isinstance(preprocessing, dict):
            settings.update(preprocessing)
    if config.get("xray_threshold") is not None:
        settings["xray_threshold"] = config["xray_threshold"]
    from tem_rf.data.preprocess import DEFAULT_XRAY_THRESHOLD

    return {
        "function": "tem_rf.data.preprocess_micrograph",
        "description": (
            "x-ray outlier pixels removed, then each whole micrograph standardised to mean 0, "
            "std 1 (before tiling)"
        ),
        "xray_threshold": settings.get("xray_threshold", DEFAULT_XRAY_THRESHOLD),
        "dataset_preprocessing": _json_safe(settings) or None,
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
    from tem_rf.inference import dependency_extent, minimum_halo
    from tem_rf.models import count_trainable_parameters
    from tem_rf.receptive_field import max_stride, receptive_field

    config = dict(config or {})
    pixel_size_nm = _finite_or_none(config.get("pixel_size_nm"))
    rf_px = receptive_field(model).pixels
    class_names = list(config.get("class_names") or DEFAULT_CLASS_NAMES)
    return {
        "schema_version": METADATA_SCHEMA_VERSION,
        "tem_rf_version": tem_rf.__version__,
        "architecture": config.get("architecture", model.name),
        "trainable_params": count_trainable_parameters(model),
        "receptive_field_px": rf_px,
        "receptive_field_nm": None if pixel_size_nm is None else rf_px * pixel_size_nm,
        "dependency_extent_px": dependency_extent(model),
        "halo_px": minimum_halo(model),
        "size_divisor": max_stride(model),
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
        "config": _json_safe(config),
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

    from tem_rf.io_utils import atomic_path

    _check_model(model)
    serving_model = model if keep_mixed_precision else float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=_compute_dtype(serving_model), source=source
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


def is_saved_model(path: str | os.PathLike) -> bool:
    """True for a directory holding ``saved_model.pb``."""
    return (Path(path) / "saved_model.pb").is_file()


def read_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """Reads ``assets/tem_rf.json`` of an exported SavedModel."""
    path = Path(export_dir) / "assets" / METADATA_FILENAME
    if not path.is_file():
        raise ModelLoadError(f"{export_dir}: no assets/{METADATA_FILENAME}; not exported by tem_rf")
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path}: not valid JSON: {error}") from error
    missing = {"size_divisor", "halo_px", "receptive_field_px"} - set(metadata)
    if missing:
        raise ModelLoadError(f"{path}: metadata lacks {sorted(missing)}")
    return metadata


@dataclasses.dataclass
class Predictor:
    """A network ready to segment: a callable on preprocessed images plus its metadata.

    ``predictor(images)`` maps float32 ``[B, H, W, 1]`` (H, W >= size divisor) to the particle
    probability float32 ``[B, H, W]``.
    """

    function: Callable
    metadata: dict[str, Any]
    source: str

    @property
    def size_divisor(self) -> int:
        return int(self.metadata["size_divisor"])

    @property
    def halo_px(self) -> int:
        return int(self.metadata["halo_px"])

    @property
    def pixel_size_nm(self) -> float | None:
        return _finite_or_none(self.metadata.get("pixel_size_nm"))

    @property
    def xray_threshold(self) -> float | None:
        """The training x-ray threshold; None means training removed no outliers."""
        from tem_rf.data.preprocess import DEFAULT_XRAY_THRESHOLD

        return (self.metadata.get("normalisation") or {}).get("xray_threshold", DEFAULT_XRAY_THRESHOLD)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[-1] != 1:
            raise ValueError(f"expected images [batch, H, W, 1], got shape {images.shape}")
        return np.asarray(self.function(images)[SIGNATURE_OUTPUT], dtype=np.float32)


def load_predictor(path: str | os.PathLike, *, keep_mixed_precision: bool = False) -> Predictor:
    """A predictor from a SavedModel directory, a run directory or a ``.keras`` file."""
    path = Path(path)
    if is_saved_model(path):
        import tensorflow as tf

        metadata = read_metadata(path)
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as error:  # truncated or corrupt SavedModel
            raise ModelLoadError(f"{path}: cannot load SavedModel: {error}") from error
        if SIGNATURE_KEY not in loaded.signatures:
            raise ModelLoadError(f"{path}: SavedModel has no {SIGNATURE_KEY!r} signature")
        signature = loaded.signatures[SIGNATURE_KEY]

        def function(images, _signature=signature, _keep=loaded):  # _keep: owns the variables
            return _signature(**{SIGNATURE_INPUT: images})

        return Predictor(function, metadata, str(path))
    model, config, model_file = load_run(path)
    return keras_predictor(
        model, config, keep_mixed_precision=keep_mixed_precision, source=str(model_file)
    )


def keras_predictor(
    model: Any,
    config: dict[str, Any] | None = None,
    *,
    keep_mixed_precision: bool = False,
    source: str | None = None,
) -> Predictor:
    """A predictor running a Keras model in process (the same graph the export serves)."""
    _check_model(model)
    serving_model = model if keep_mixed_precision else float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=_compute_dtype(serving_model), source=source
    )
    return Predictor(
        particle_probability_fn(serving_model, metadata["size_divisor"]),
        metadata,
        source or serving_model.name,
    )
