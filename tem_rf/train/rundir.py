"""Run directories: the files one training run (one architecture, one seed) reads and writes.

`RunDir` is the one reader and writer of the layout in docs/design.md ("Run directory"), and
`find_runs` the one place that knows where a sweep keeps its runs.
"""

from __future__ import annotations

from tem_rf.core.errors import TemRfError

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tem_rf.core.pretrained import resolve_model
from tem_rf.core.files import (
    LockHeldError, atomic_path, exclusive_lock, make_parents, os_error_text, read_json_object, remove_made_folders,
    write_json,
)
from tem_rf.train.config import TrainingError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
# how particles are read from a boundary-target network's maps, fitted on validation micrographs
# after training (`tem_rf.serve.instance_rule`)
INSTANCE_RULE_FILE = "instance_rule.json"
HISTORY_FILE = "history.csv"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"
BEST_MODEL_FILE = "best.keras"
LAST_MODEL_FILE = "model.keras"
LOCK_FILE = ".lock"  # flock-ed by the one process training in the folder
RUN_MODEL_FILES = (BEST_MODEL_FILE, LAST_MODEL_FILE)  # preferred first: best validation dice
WEIGHTS = {"best": RUN_MODEL_FILES, "model": (LAST_MODEL_FILE,)}  # --weights -> files to try


class ModelLoadError(TemRfError, ValueError):
    """A run directory, ``.keras`` file or SavedModel whose files are missing or unreadable."""


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run directory; ``keras_file``, when set, is the model to load instead of best/last."""

    path: Path
    keras_file: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """The run directory ``path``, or the one holding the ``.keras`` file ``path``."""
        path = Path(path)
        if path.suffix == ".keras" and not path.is_dir():
            return cls(path.parent, keras_file=path)
        return cls(path)

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def instance_rule_file(self) -> Path:
        return self.path / INSTANCE_RULE_FILE

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def best_model_file(self) -> Path:
        return self.path / BEST_MODEL_FILE

    @property
    def last_model_file(self) -> Path:
        return self.path / LAST_MODEL_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def is_finished(self) -> bool:
        """A run is finished once its test metrics are written."""
        return self.metrics_file.is_file()

    def config(self) -> dict[str, Any]:
        """The resolved config the run was trained with (``config.json``)."""
        return read_json_object(self.config_file, ModelLoadError)

    def metrics(self) -> dict[str, Any]:
        """The final test and validation metrics (``metrics.json``)."""
        return read_json_object(self.metrics_file, ModelLoadError)

    def write_config(self, config: dict[str, Any]) -> None:
        _written(self.config_file, lambda: write_json(self.config_file, config))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        _written(self.metrics_file, lambda: write_json(self.metrics_file, metrics))

    def history(self) -> list[dict[str, Any]]:
        """One row per epoch trained (``history.csv``); ``[]`` before the first epoch ends."""
        from tem_rf.core.files import read_csv

        if not self.history_file.exists():
            return []
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
            for row in read_csv(self.history_file)
        ]

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        from tem_rf.core.files import write_csv

        _written(self.history_file, lambda: write_csv(self.history_file, rows))

    def write_model(self, model: Any, path: str | os.PathLike) -> None:
        """Saves a Keras ``model`` to ``path`` (best.keras, model.keras) atomically: a failed save
        leaves the old file, or none, and no temporary behind."""
        path = Path(path)

        def save() -> None:
            with atomic_path(path) as tmp:
                keras_tmp = tmp.with_name(tmp.name + ".keras")  # Keras insists on the suffix
                try:
                    model.save(keras_tmp)
                    os.replace(keras_tmp, tmp)
                finally:
                    keras_tmp.unlink(missing_ok=True)

        _written(path, save)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the folder's lock (`LOCK_FILE`) for the block; `tem_rf.core.files.LockHeldError`
        when another process holds it. The folder must exist."""
        with exclusive_lock(self.lock_file):
            yield

    @contextlib.contextmanager
    def claimed(self, owns_parents: bool = True) -> Iterator[None]:
        """The folder, made and locked for this process for the block (one writer per run
        folder). A folder this call made is removed again, with what the block wrote there, when
        the block fails before the run's first checkpoint, and so are the parents it made while
        they are empty (``owns_parents=False``, a worker's scratch folder: only the folder)."""
        try:
            made = make_parents(self.path)
        except OSError as err:
            raise TrainingError(f"--model_dir {self.path}: cannot make the folder ({os_error_text(err)})") from None
        if not owns_parents:
            made = made[-1:]  # the chief owns the run folder itself
        try:
            with self.locked():
                try:
                    yield
                except BaseException:
                    # Nothing resumable yet (no checkpoint): a folder this call made goes again,
                    # config.json and logs included, so a failed first epoch leaves no trace.
                    if made and not any(self.checkpoints_dir.glob("ckpt-*.index")):
                        shutil.rmtree(made[-1], ignore_errors=True)
                        remove_made_folders(made[:-1])
                    raise
        except LockHeldError as err:
            holder = f"pid {err.pid}" if err.pid is not None else "pid unknown"
            raise TrainingError(
                f"{self.path}: another tem_rf process is training in this folder ({holder})"
            ) from None

    def run_files(self) -> list[str]:
        """The training outputs present (checkpoints/, history.csv, best.keras, ...), by name."""
        names = [CHECKPOINTS_DIR, HISTORY_FILE, METRICS_FILE, *RUN_MODEL_FILES]
        present = [name for name in names if (self.path / name).exists()]
        return [f"{name}/" if name == CHECKPOINTS_DIR else name for name in present]

    def latest_checkpoint(self) -> str | None:
        """The checkpoint to resume from (a path prefix), or None when there is none.

        The one the ``checkpoint`` index names, when its files are there; else the highest-numbered
        ``ckpt-N`` whose index and data files are (an index naming a deleted checkpoint, or no
        index at all), with a warning naming both: TensorFlow's own lookup answers "none" then, and
        the run would silently start again from epoch 1 over the checkpoint that is still there.
        """
        import tensorflow as tf

        folder = self.checkpoints_dir
        if not folder.is_dir():
            return None
        state = tf.train.get_checkpoint_state(str(folder))
        named = state.model_checkpoint_path if state is not None else None
        if named:
            named_path = Path(named) if os.path.isabs(named) else folder / named
            if named_path.with_name(named_path.name + ".index").is_file():
                return str(named_path)
        present = sorted(
            int(match.group(1)) for path in folder.glob("ckpt-*.index")
            if (match := re.fullmatch(r"ckpt-(\d+)\.index", path.name))
            and any(folder.glob(f"ckpt-{match.group(1)}.data-*"))
        )
        if not present:
            return None
        newest = str(folder / f"ckpt-{present[-1]}")
        logger.warning("%s: the checkpoint index names %s, which is not there; resuming from %s, the newest "
                       "checkpoint in the folder", folder, named or "nothing", newest)
        return newest

    def remove_stale_temporaries(self) -> list[Path]:
        """Removes what a killed writer left: temporaries of the run files (``.best.keras.*.tmp``,
        ...) and of checkpoints (``ckpt-N_temp/``, ``*.tempstate*``, ``checkpoint.tmp*``). Only
        under `locked`: no other process may be writing them."""
        names = "|".join(re.escape(n) for n in (CONFIG_FILE, METRICS_FILE, HISTORY_FILE, *RUN_MODEL_FILES))
        run_temporary = re.compile(rf"^\.({names})\..+\.tmp(\.keras)?$")
        stale = [p for p in self.path.glob(".*") if run_temporary.match(p.name)]
        if self.checkpoints_dir.is_dir():
            checkpoint_temporary = re.compile(r"^(.+_temp|.+\.tempstate\d*|checkpoint\.tmp[0-9a-f]+)$")
            stale += [p for p in self.checkpoints_dir.iterdir() if checkpoint_temporary.match(p.name)]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if stale:
            logger.info("%s: removed %d temporary file(s) of an interrupted run", self.path, len(stale))
        return stale

    def model_file(self, weights: str = "best") -> Path:
        """The ``.keras`` file to load: ``keras_file`` when set, else best.keras falling back to
        model.keras (``weights="best"``) or model.keras only (``weights="model"``)."""
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {sorted(WEIGHTS)}, got {weights!r}")
        if self.keras_file is not None:
            return self.keras_file
        names = WEIGHTS[weights]
        for name in names:
            if (self.path / name).is_file():
                return self.path / name
        raise ModelLoadError(f"{self.path}: not a run directory (no {' or '.join(names)})")

    def load_model(self, weights: str = "best") -> Any:
        """The network of `model_file`, without its compile state."""
        return load_keras_model(self.model_file(weights))


def sweep_run_path(sweep_dir: str | os.PathLike, architecture: str, seed: int) -> Path:
    """Where a sweep keeps the run of one architecture and seed: ``runs/<architecture>/seed<seed>``."""
    return Path(sweep_dir) / "runs" / architecture / f"seed{seed}"


def find_runs(sweep_dir: str | os.PathLike, finished_only: bool = True) -> list[RunDir]:
    """The runs of a sweep (`sweep_run_path` for every architecture and seed), sorted by path."""
    runs = [RunDir(path) for path in sorted(Path(sweep_dir).glob("runs/*/seed*")) if path.is_dir()]
    return [run for run in runs if run.is_finished or not finished_only]


def _written(path: Path, write: Callable[[], None]) -> None:
    """Runs ``write``; an OSError (disk full, no permission) becomes one TrainingError line
    naming ``path`` (the atomic writers have removed their temporary by then)."""
    try:
        write()
    except OSError as error:
        raise TrainingError(f"{path}: cannot write ({os_error_text(error)})") from error


def _check_keras_archive(path: Path) -> None:
    """A ``.keras`` file is a zip archive: refuses one that is truncated or corrupt (Keras itself
    would call it "not found")."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, NotImplementedError) as error:
        raise ModelLoadError(f"{path}: corrupt or truncated Keras file ({error})") from error
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read ({error.strerror or error})") from error
    if bad is not None:
        raise ModelLoadError(f"{path}: corrupt or truncated Keras file (bad checksum of {bad})")


def load_keras_model(path: str | os.PathLike) -> Any:
    """Loads a ``.keras`` file without its compile state (optimizer, losses, metrics)."""
    import keras

    import tem_rf.models  # noqa: F401  (registers InputSizeCheck for deserialisation)

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such Keras model file")
    _check_keras_archive(path)
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # corrupt zip, unknown layers, ...: one clear message
        raise ModelLoadError(f"{path}: cannot load Keras model: {error}") from error


def load_run(path: str | os.PathLike) -> tuple[Any, dict[str, Any], Path]:
    """Loads the network of a run directory (``best.keras``, else ``model.keras``) or a ``.keras``.

    Returns ``(model, config, model_file)``; ``config`` is the run's ``config.json`` (next to a
    ``.keras`` file, or in the run directory), or ``{}`` when there is none, with the fitted
    ``instance_rule`` of ``instance_rule.json`` when the run has one. ``pretrained:NAME`` loads a
    network shipped in the package (`tem_rf.core.pretrained`).
    """
    path = resolve_model(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    if not path.is_dir() and path.suffix != ".keras":
        raise ModelLoadError(f"{path}: expected a run directory, a SavedModel or a .keras file")
    run = RunDir.open(path)
    model_file = run.model_file()
    if run.config_file.is_file():
        config = run.config()
    else:
        config = {}
        logger.warning("%s: no config.json beside the model; pixel size and config unknown", model_file)
    if run.instance_rule_file.is_file():
        config["instance_rule"] = read_json_object(run.instance_rule_file, ModelLoadError)
    return load_keras_model(model_file), config, model_file
