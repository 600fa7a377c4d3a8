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

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# The export's contract, its graph functions and its metadata have their own modules (signatures,
# serving_functions, export_metadata); their names are importable from here too.
from tem_rf.serve.signatures import (  # noqa: F401
    BOUNDARY_OUTPUT, DTYPE_DISPATCH_FUNCTION, EXPORT_ENTRIES, MASK_OUTPUT, MASK_THRESHOLD, METADATA_FILENAME,
    METADATA_SCHEMA_VERSION, PADDING_MODE, PIXEL_SIZE_INPUT, PREPROCESSED_ENDPOINT, PREPROCESSED_SIGNATURE_KEY,
    RAW_DTYPES, RAW_SIGNATURE_INPUT, RAW_SIGNATURE_PREFIX, SCALED_SIGNATURE_KEY, SIGNATURE_INPUT, SIGNATURE_KEY,
    SIGNATURE_OUTPUT, check_raw_dtypes,
)
from tem_rf.serve.serving_functions import (  # noqa: F401
    dtype_dispatch_fn, has_boundary_class, minimum_input_size, pad_reflect, particle_probability_fn,
    raw_micrograph_fn, scaled_micrograph_fn, serving_functions,
)
from tem_rf.serve.export_metadata import (  # noqa: F401
    build_metadata, strip_paths, training_state,
)
# median_filter_3x3_tf, remove_xray_outliers_tf: public here before, until tem_rf 0.3.0 (core.cli.SHIMS_REMOVED_IN)
from tem_rf.data.graph_preprocess import (  # noqa: F401
    median_filter_3x3_tf, preprocess_micrograph_tf, remove_xray_outliers_tf,
)
from tem_rf.core.files import read_json_object
from tem_rf.train.rundir import ModelLoadError, load_run

logger = logging.getLogger(__name__)


class ExportError(TemRfError, ValueError):
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
