"""Run directories: the files one training run (one architecture, one seed) reads and writes."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"



def _read_history(path: Path, epochs_done: int) -> list[dict[str, Any]]:
    """History rows of completed epochs; rows of an epoch that was not checkpointed are dropped."""
    if not path.exists():
        return []
    with path.open() as f:
        rows = [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]
    return [row for row in rows if row["epoch"] <= epochs_done]



def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    from tem_rf.core.files import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())



def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The resolved config a run directory was trained with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: {CONFIG_FILE} is missing")
    return json.loads(path.read_text())


class ModelLoadError(ValueError):
    """A model path that is not a SavedModel, a run directory or a loadable ``.keras`` file."""



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


RUN_MODEL_FILES = ("best.keras", "model.keras")  # preferred first: best validation dice
