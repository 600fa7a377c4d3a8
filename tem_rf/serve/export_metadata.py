"""The metadata asset of an export (``assets/tem_rf.json``): what a user of the model needs and
cannot read off a graph (receptive field, halo, size divisor, training pixel size, normalisation,
classes, signatures), the training config with machine paths stripped, and whether the run had
finished.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tem_rf.core.classes import PARTICLE_CLASS, class_names
from tem_rf.core.files import json_safe
from tem_rf.core.units import pixel_size_or_none
from tem_rf.serve.serving_functions import has_boundary_class, minimum_input_size
from tem_rf.serve.signatures import (
    BOUNDARY_OUTPUT, DTYPE_DISPATCH_FUNCTION, MASK_OUTPUT, MASK_THRESHOLD, METADATA_SCHEMA_VERSION, PADDING_MODE,
    PIXEL_SIZE_INPUT, PREPROCESSED_ENDPOINT, PREPROCESSED_SIGNATURE_KEY, RAW_DTYPES, RAW_SIGNATURE_INPUT,
    RAW_SIGNATURE_PREFIX, SCALED_SIGNATURE_KEY, SIGNATURE_INPUT, SIGNATURE_KEY, SIGNATURE_OUTPUT, check_raw_dtypes,
)
from tem_rf.train.rundir import CONFIG_FILE, RunDir

logger = logging.getLogger("tem_rf.serve.export")  # what export says, under one name


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


__all__ = [
    "build_metadata",
    "strip_paths",
    "training_state",
]
