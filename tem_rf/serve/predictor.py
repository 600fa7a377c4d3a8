"""A network ready to segment: loaded from a SavedModel, a run directory or a ``.keras`` file."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.files import read_json_object
from tem_rf.core.pretrained import model_source, resolve_model
from tem_rf.core.units import pixel_size_or_none
from tem_rf.train.rundir import ModelLoadError, RunDir, load_run
from tem_rf.serve.signatures import (
    BOUNDARY_OUTPUT, METADATA_FILENAME, SIGNATURE_INPUT, SIGNATURE_KEY, SIGNATURE_OUTPUT,
)
from tem_rf.serve.export_metadata import build_metadata
from tem_rf.serve.export import check_model, model_compute_dtype, float32_model
from tem_rf.serve.serving_functions import particle_probability_fn

logger = logging.getLogger(__name__)


def is_saved_model(path: str | os.PathLike) -> bool:
    """True for a directory holding ``saved_model.pb``."""
    return (Path(path) / "saved_model.pb").is_file()


def read_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """Reads ``assets/tem_rf.json`` of an exported SavedModel."""
    path = Path(export_dir) / "assets" / METADATA_FILENAME
    if not path.is_file():
        raise ModelLoadError(f"{export_dir}: no assets/{METADATA_FILENAME}; not exported by tem_rf")
    metadata = read_json_object(path, ModelLoadError)
    missing = {"size_divisor", "halo_px", "receptive_field_px"} - set(metadata)
    if missing:
        raise ModelLoadError(f"{path}: metadata lacks {sorted(missing)}")
    return metadata


@dataclasses.dataclass
class Predictor:
    """A network ready to segment: a callable on preprocessed images plus its metadata.

    ``predictor(images)`` maps float32 ``[B, H, W, 1]`` (H, W >= size divisor) to the particle
    probability float32 ``[B, H, W]``; for a boundary-target network (`has_boundary`) to
    ``[B, H, W, 2]``: the particle probability, then the particle boundary's.
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
    def has_boundary(self) -> bool:
        """Whether the network predicts particle boundaries (``train --target=boundary``)."""
        return self.metadata.get("target") == "boundary"

    @property
    def instance_rule(self) -> Any:
        """How particles are read from its boundary maps (`tem_rf.particles.learned_instances.InstanceRule`):
        the rule fitted after training, else the defaults; None for a two-class network."""
        if not self.has_boundary:
            return None
        from tem_rf.particles.learned_instances import InstanceRule

        return InstanceRule.from_record(self.metadata.get("instance_rule"))

    @property
    def pixel_size_nm(self) -> float | None:
        return pixel_size_or_none(self.metadata.get("pixel_size_nm"))

    @property
    def particle_diameter_px(self) -> dict[str, Any] | None:
        """The training particles' diameters (px): count and quantiles, or None when unknown."""
        value = self.metadata.get("particle_diameter_px")
        return value if isinstance(value, dict) and value.get("median") else None

    @property
    def xray_threshold(self) -> float | None:
        """The training x-ray threshold; None means training removed no outliers."""
        from tem_rf.data.preprocess import DEFAULT_XRAY_THRESHOLD

        return (self.metadata.get("normalisation") or {}).get("xray_threshold", DEFAULT_XRAY_THRESHOLD)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[-1] != 1:
            raise ValueError(f"expected images [batch, H, W, 1], got shape {images.shape}")
        outputs = self.function(images)
        particle = np.asarray(outputs[SIGNATURE_OUTPUT], dtype=np.float32)
        if not self.has_boundary:
            return particle
        return np.stack([particle, np.asarray(outputs[BOUNDARY_OUTPUT], dtype=np.float32)], axis=-1)


def _assertion_text(message: str) -> str:
    """The readable part of a TensorFlow assertion's error: the text given to the assertion."""
    import re

    found = re.search(r"assertion failed: \[(.+?)\]", message)
    return found.group(1).replace("\\'", "'") if found else message.strip().splitlines()[-1]


def load_predictor(path: str | os.PathLike, *, keep_mixed_precision: bool = False) -> Predictor:
    """A predictor from a SavedModel directory, a run directory, a ``.keras`` file or a shipped
    network (``pretrained:NAME``)."""
    spec, path = path, resolve_model(path)
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
            try:
                return _signature(**{SIGNATURE_INPUT: images})
            except tf.errors.InvalidArgumentError as error:  # the graph's own checks (too small)

                raise InputError(None, _assertion_text(error.message)) from None

        return Predictor(function, metadata, str(path))
    if path.is_dir():
        try:
            RunDir(path).model_file()
        except ModelLoadError as error:  # neither kind of model directory: say both
            raise ModelLoadError(f"{error} and not a SavedModel (no saved_model.pb)") from None
    model, config, model_file = load_run(path)
    return keras_predictor(
        model, config, keep_mixed_precision=keep_mixed_precision, source=model_source(spec, model_file)
    )


def keras_predictor(
    model: Any,
    config: dict[str, Any] | None = None,
    *,
    keep_mixed_precision: bool = False,
    source: str | None = None,
) -> Predictor:
    """A predictor running a Keras model in process (the same graph the export serves)."""
    check_model(model)
    serving_model = model if keep_mixed_precision else float32_model(model)
    metadata = build_metadata(
        serving_model, config, compute_dtype=model_compute_dtype(serving_model), source=source
    )
    return Predictor(
        particle_probability_fn(serving_model, metadata["size_divisor"]),
        metadata,
        source or serving_model.name,
    )
