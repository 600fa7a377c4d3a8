"""TensorBoard records of runs and sweeps beyond plain scalars: the HParams dashboard.

A run directory's ``logs/`` holds three writers' folders, ``train``, ``val`` and ``test``
(scalars and images, see `tem_rf.train.loop`), and, in ``logs/`` itself, the run's HParams
*session*: its hyperparameters (`run_hparams`), written when training starts (`write_session`),
and its end (`write_session_end`) when the run has its test scores.
TensorBoard's HParams plugin takes a folder holding a session as one trial, and its metrics
from the scalars of that folder's subfolders: metric ``hard_dice`` of group ``val`` is the last
``hard_dice`` in ``logs/val``.

A sweep directory's ``logs/`` holds the *experiment* (`write_sweep_hparams_config`): every
hyperparameter with the domain of values the sweep's runs take, and the metric list (`METRICS`),
so ``tensorboard --logdir SWEEP_DIR`` shows the runs side by side in the HParams dashboard
(table, parallel coordinates, scatter plots). A single run has no experiment record: the plugin
then builds one from the sessions it finds (several single runs under one ``--logdir`` compare
too). Only the sweep writes one, as the plugin reads the first it finds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# name -> (display name, description); the order is the dashboard's column order.
HPARAMS: dict[str, tuple[str, str]] = {
    "architecture": ("architecture", "tem_rf.models.architecture_name(N, pools, dilations)"),
    "num_blocks": ("N", "residual blocks per arm"),
    "pool_sizes": ("pool sizes", "max-pool size per level (as the --pool_sizes flag)"),
    "dilations": ("dilations", "dilation per level plus the bottleneck (as the --dilations flag)"),
    "receptive_field_px": ("RF px", "receptive field, paper Eq. 1, in pixels"),
    "receptive_field_nm": ("RF nm", "receptive field in nm (at the dataset's pixel size)"),
    "trainable_params": ("parameters", "trainable parameters"),
    "target": ("target", "what the network learns: mask (2 classes) or boundary (interior/boundary, 3 classes)"),
    "init_from": ("init from", "the run or .keras file whose weights the run started from (fine-tuning)"),
    "train_images": ("labelled images", "training micrographs it learned from (--train_images; the whole split when absent)"),
    "seed": ("seed", "seed of the initial weights and the data order"),
    "learning_rate": ("learning rate", "Adam learning rate"),
    "batch_size": ("batch size", "global batch size"),
    "precision": ("precision", "Keras precision policy (resolved)"),
}
# Real-valued hyperparameters get an interval domain; the others a list of the values taken.
_INTERVAL_HPARAMS = ("train_images", "receptive_field_px", "receptive_field_nm", "trainable_params", "learning_rate")

# (group = the writer's folder under logs/, tag) -> description; `tem_rf.train.loop` logs them.
METRICS: dict[tuple[str, str], str] = {
    ("val", "hard_dice"): "validation hard dice, pooled over the 8 dihedral variants (last epoch)",
    ("val", "soft_dice"): "validation soft dice (last epoch)",
    ("val", "best_hard_dice"): "best validation hard dice so far: the epoch best.keras keeps",
    ("test", "hard_dice"): "test hard dice of the best-on-validation weights",
    ("test", "soft_dice"): "test soft dice of the best-on-validation weights",
    ("train", "hard_dice"): "training hard dice over the epoch's batches, as they were trained",
    ("train", "soft_dice"): "training soft dice over the epoch's batches",
    ("train", "loss"): "training cross-entropy (mean over the epoch)",
    ("val", "loss"): "validation cross-entropy",
}


PROBABILITY_COLOUR_MAP = "viridis"  # 0 dark blue, 1 yellow; the same in every image and epoch


def probability_colour_image(probabilities: Any) -> Any:
    """Probabilities ``[B, H, W, 1]`` in 0-1 as RGB ``[B, H, W + w, 3]`` in `PROBABILITY_COLOUR_MAP`
    on the fixed scale 0-1, with the scale itself as a strip on the right (1 at the top, 0 at the
    bottom; w = max(4, W // 8) px after a 1 px black gap), so images of different epochs and
    runs compare by colour."""
    import matplotlib
    import tensorflow as tf

    lut = tf.constant(matplotlib.colormaps[PROBABILITY_COLOUR_MAP](np.linspace(0.0, 1.0, 256))[:, :3], tf.float32)
    height, width = tf.shape(probabilities)[1], tf.shape(probabilities)[2]
    strip_width = tf.maximum(4, width // 8)
    levels = tf.linspace(1.0, 0.0, height)[:, None, None]  # one value per row, top = 1
    strip = tf.broadcast_to(levels, tf.stack([height, strip_width, 1]))
    strip = tf.broadcast_to(strip[None], tf.stack([tf.shape(probabilities)[0], height, strip_width, 1]))

    def coloured(values):
        index = tf.cast(tf.round(tf.clip_by_value(values[..., 0], 0.0, 1.0) * 255.0), tf.int32)
        return tf.gather(lut, index)

    gap = tf.zeros(tf.stack([tf.shape(probabilities)[0], height, 1, 3]))
    return tf.concat([coloured(tf.cast(probabilities, tf.float32)), gap, coloured(strip)], axis=2)


def log_preview_images(model: Any, preview: Any, num_classes: int, regular: bool = True, best: bool = False) -> None:
    """Under the default summary writer: the ``preview`` patches, their labels and the predicted
    particle probability (``regular``), and the probability again as ``best/particle_probability``
    when the epoch is a new best (so that tag's latest image is the prediction of best.keras, at
    the best epoch's step)."""
    import tensorflow as tf

    if not (regular or best):
        return
    images, labels = preview
    probabilities = model(images, training=False)
    # the particle probability: channel 1, or interior + boundary of a boundary target
    probabilities = tf.reduce_sum(probabilities[..., 1:], axis=-1, keepdims=True)
    if regular:
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        tf.summary.image("patch", (images - low) / tf.maximum(high - low, 1e-6), max_outputs=8)
        top = float(num_classes - 1)  # boundary labels: interior grey, boundary white
        tf.summary.image("label", tf.cast(labels[..., None], tf.float32) / top, max_outputs=8)
    shown = probability_colour_image(probabilities)
    scale = (f"colour: {PROBABILITY_COLOUR_MAP}, fixed 0 (dark blue) to 1 (yellow); the strip on the "
             "right is the scale")
    if regular:
        tf.summary.image("particle_probability", shown, max_outputs=8,
                         description=f"predicted particle probability; {scale}")
    if best:
        tf.summary.image(
            "best/particle_probability", shown, max_outputs=8,
            description="particle probability at each epoch that raised the best validation hard "
                        f"dice; the latest is the best epoch's (best.keras); {scale}",
        )


EPOCH_SCALARS = {  # history.csv column -> (summary folder, tag)
    "train_loss": ("train", "loss"),
    "train_hard_dice": ("train", "hard_dice"),
    "train_soft_dice": ("train", "soft_dice"),
    "learning_rate": ("train", "learning_rate"),
    "steps_per_second": ("train", "steps_per_second"),
    "val_loss": ("val", "loss"),
    "val_hard_dice": ("val", "hard_dice"),
    "val_soft_dice": ("val", "soft_dice"),
}


def write_epoch_scalars(writers: Mapping[str, Any], row: Mapping[str, Any], best_val_dice: float) -> None:
    """An epoch's history row as scalars at step ``row["epoch"]``: each column of `EPOCH_SCALARS`
    under its folder's writer, and ``val/best_hard_dice``."""
    import tensorflow as tf

    step = int(row["epoch"])
    for column, (folder, tag) in EPOCH_SCALARS.items():
        with writers[folder].as_default(step=step):
            tf.summary.scalar(tag, row[column])
    with writers["val"].as_default(step=step):
        tf.summary.scalar("best_hard_dice", best_val_dice)


def joined(values: Sequence[int]) -> str:
    """``(2, 8)`` -> ``"2,8"``: a tuple hyperparameter as the flag writes it."""
    return ",".join(str(int(v)) for v in values)


def run_hparams(
    config: Any,
    *,
    architecture: str,
    precision: str,
    receptive_field_px: int,
    receptive_field_nm: float | None,
    trainable_params: int,
) -> dict[str, Any]:
    """A run's hyperparameters as the HParams plugin takes them (str, int, float only).

    ``config`` is a validated `TrainConfig` (per-level ``pool_sizes`` and ``dilations``);
    ``receptive_field_nm`` None (pixel size unknown) leaves that hyperparameter out.
    """
    values: dict[str, Any] = {
        "architecture": str(architecture),
        "num_blocks": int(config.num_blocks),
        "pool_sizes": joined(config.pool_sizes),
        "dilations": joined(config.dilations),
        "receptive_field_px": int(receptive_field_px),
        "receptive_field_nm": None if receptive_field_nm is None else float(receptive_field_nm),
        "trainable_params": int(trainable_params),
        "target": str(getattr(config, "target", "mask")),
        "init_from": getattr(config, "init_from", "") or None,
        "train_images": getattr(config, "train_images", 0) or None,
        "seed": int(config.seed),
        "learning_rate": float(config.learning_rate),
        "batch_size": int(config.batch_size),
        "precision": str(precision),
    }
    return {name: value for name, value in values.items() if value is not None}


def write_session(logdir: str | os.PathLike, hparams: Mapping[str, Any], trial_id: str | None = None) -> None:
    """Writes a run's HParams session (its hyperparameters) into ``logdir`` (``RUN_DIR/logs``)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp.hparams(dict(hparams), trial_id=trial_id)
    writer.close()


def write_session_end(logdir: str | os.PathLike) -> None:
    """Marks a run's HParams session finished (status success: the dashboard's status column)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api_pb2, summary

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(
            summary.session_end_pb(api_pb2.STATUS_SUCCESS).SerializeToString(), step=0)
    writer.close()


def hparams_domains(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """`hp.HParam`s of `HPARAMS` with the domain of the values ``rows`` (runs' hparams) take."""
    from tensorboard.plugins.hparams import api as hp

    result = []
    for name, (display, description) in HPARAMS.items():
        values = [row[name] for row in rows if name in row]
        domain = None
        if values and name in _INTERVAL_HPARAMS:
            domain = hp.RealInterval(float(min(values)), float(max(values)))
        elif values:
            kind = str if any(isinstance(v, str) for v in values) else float if any(
                isinstance(v, float) for v in values) else int
            domain = hp.Discrete(sorted({kind(v) for v in values}), dtype=kind)
        result.append(hp.HParam(name, domain, display_name=display, description=description))
    return result


def hparams_metrics() -> list[Any]:
    """`hp.Metric`s of `METRICS`: tag in a writer's folder (group) under the session's logs/."""
    from tensorboard.plugins.hparams import api as hp

    kinds = {"train": hp.Metric.TRAINING, "val": hp.Metric.VALIDATION}
    return [
        hp.Metric(tag, group=group, display_name=f"{group} {tag.replace('_', ' ')}", description=description,
                  dataset_type=kinds.get(group))
        for (group, tag), description in METRICS.items()
    ]


def write_hparams_config(logdir: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Writes the HParams experiment (hyperparameter domains over ``rows``, the metric list) as
    the only event file in ``logdir``; returns it."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(logdir.glob("events.out.tfevents.*"))
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp.hparams_config(hparams=hparams_domains(rows), metrics=hparams_metrics())
    writer.close()
    written = sorted(set(logdir.glob("events.out.tfevents.*")) - before)
    for old in before:  # the plugin reads one experiment: an earlier one (a rerun) goes
        old.unlink(missing_ok=True)
    return written[-1]


def sweep_run_hparams(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every run's `run_hparams` from a sweep's ``sweep.json`` content (``settings``: the shared
    `TrainConfig` fields; ``runs``: architecture and seed of each run), without training: each
    architecture is built once for its parameters and receptive field (about 0.5 s each)."""
    from tem_rf.models import architecture_table
    from tem_rf.train.config import TrainConfig
    from tem_rf.train.distribute import resolve_precision

    settings = dict(sweep.get("settings", {}))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    shared = {k: v for k, v in settings.items() if k in fields}
    shared.setdefault("data_dir", "")
    shared["model_dir"] = ""
    pixel_size_nm = _dataset_pixel_size(shared["data_dir"])
    configs = []
    for run in sweep.get("runs", []):
        configs.append((run["architecture"], TrainConfig(**{
            **shared, "num_blocks": run["num_blocks"], "pool_sizes": tuple(run["pool_sizes"]),
            "dilations": tuple(run["dilations"]), "seed": run["seed"]}).validated()))
    unique = {name: (c.num_blocks, c.pool_sizes, c.dilations) for name, c in configs}
    table = dict(zip(unique, architecture_table(unique.values(), pixel_size_nm)))
    return [
        run_hparams(
            config, architecture=name, precision=resolve_precision(config.precision),
            receptive_field_px=table[name]["receptive_field_px"],
            receptive_field_nm=table[name]["receptive_field_nm"],
            trainable_params=table[name]["trainable_params"],
        )
        for name, config in configs
    ]


def write_sweep_hparams_config(sweep_dir: str | os.PathLike, sweep: Mapping[str, Any]) -> Path | None:
    """Writes ``SWEEP_DIR/logs``' HParams experiment from the sweep's ``sweep.json`` content.

    The dashboard is an aid: when it cannot be written, a warning says why and the sweep goes on
    (returns None).
    """
    try:
        return write_hparams_config(Path(sweep_dir) / "logs", sweep_run_hparams(sweep))
    except Exception as err:  # noqa: BLE001  (never stop a sweep for its dashboard)
        logger.warning("%s: no HParams experiment for TensorBoard (%s: %s)", sweep_dir, type(err).__name__, err)
        return None


def _dataset_pixel_size(data_dir: str) -> float | None:
    """The dataset's pixel size, None when unknown or the dataset cannot be read."""
    if not data_dir:
        return None
    from tem_rf import data as data_lib

    try:
        return data_lib.read_dataset_info(data_dir).get("pixel_size_nm")
    except (OSError, ValueError):
        return None


__all__ = [
    "HPARAMS",
    "METRICS",
    "hparams_domains",
    "hparams_metrics",
    "joined",
    "run_hparams",
    "sweep_run_hparams",
    "write_hparams_config",
    "write_session",
    "write_session_end",
    "write_sweep_hparams_config",
]
