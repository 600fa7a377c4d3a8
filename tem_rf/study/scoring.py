"""Scoring a trained run on a dataset split: pooled and per-patch hard and soft dice."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf import metrics
from tem_rf.core.classes import PARTICLE_CLASS

PER_PATCH_FIELDS = ("source", "patch_row", "patch_col", "transform", "particle_pixels", "hard_dice", "soft_dice")


def load_run_model(run_dir_or_file: str | os.PathLike, weights: str = "best"):
    """Loads ``best.keras`` (or ``model.keras``) of a run directory, or a ``.keras`` file."""
    import keras

    path = Path(run_dir_or_file)
    if path.is_dir():
        candidates = [path / f"{weights}.keras", path / "model.keras"]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise FileNotFoundError(f"{path} holds no best.keras or model.keras: not a finished run")
        path = found
    elif not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    elif path.suffix != ".keras":
        raise ValueError(f"{path} is not a .keras model file or a run directory")
    import tem_rf.models  # noqa: F401  (registers the custom layers for deserialisation)

    return keras.models.load_model(path, compile=False)


def evaluate_model(
    model,
    data_dir: str | os.PathLike,
    split: str = "test",
    augment: bool = True,
    batch_size: int = 8,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pooled dice over the split and one row per (patch, dihedral variant).

    With ``augment`` every patch is scored in all 8 dihedral variants, as the paper did.
    """
    import tensorflow as tf

    from tem_rf import data as data_lib

    dataset = data_lib.load_split(data_dir, split, batch_size, augment=augment, with_info=True)
    predict = tf.function(lambda x: model(x, training=False))
    hard, soft = metrics.HardDice(), metrics.SoftDice()
    rows = []
    for images, labels, info in dataset:
        probabilities = predict(images)
        hard.update_state(labels, probabilities)
        soft.update_state(labels, probabilities)
        labels_np, probs_np = labels.numpy(), probabilities.numpy()
        for i in range(labels_np.shape[0]):
            rows.append(
                {
                    "source": info["source"][i].numpy().decode(),
                    "patch_row": int(info["patch_row"][i]),
                    "patch_col": int(info["patch_col"][i]),
                    "transform": int(info["transform"][i]),
                    "particle_pixels": int((labels_np[i] == PARTICLE_CLASS).sum()),
                    "hard_dice": metrics.hard_dice(labels_np[i], probs_np[i]),
                    "soft_dice": metrics.soft_dice(labels_np[i], probs_np[i]),
                }
            )
    per_patch_hard = np.array([r["hard_dice"] for r in rows]) if rows else np.zeros(0)
    summary = {
        "split": split,
        "augment": augment,
        "patches": len(rows),
        "hard_dice": float(hard.result()),
        "soft_dice": float(soft.result()),
        "mean_patch_hard_dice": float(per_patch_hard.mean()) if rows else None,
        "mean_patch_soft_dice": float(np.mean([r["soft_dice"] for r in rows])) if rows else None,
    }
    return summary, rows


def per_patch_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of `evaluate_model` rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PER_PATCH_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
