"""Scoring a trained run on a dataset split: pooled and per-patch hard and soft dice."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tem_rf import metrics
from tem_rf.core.classes import PARTICLE_CLASS

PER_PATCH_FIELDS = ("source", "patch_row", "patch_col", "transform", "particle_pixels", "hard_dice", "soft_dice")


def evaluate_model(
    model,
    data_dir: str | os.PathLike,
    split: str = "test",
    augment: bool = True,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pooled dice over the split and one row per (patch, dihedral variant).

    With ``augment`` every patch is scored in all 8 dihedral variants, as the paper did.
    ``progress``: a progress bar over the batches.
    """
    import tensorflow as tf

    from tem_rf import data as data_lib
    from tem_rf.core.progress import progress_bar
    from tem_rf.models.geometry import max_stride

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset_info = data_lib.read_dataset_info(data_dir)
    patch_size = int(dataset_info["patch_size"])
    divisor = max_stride(model)
    if patch_size % divisor:
        # Caught here: TensorFlow's own message is a shape mismatch deep inside the decoder.
        raise ValueError(
            f"{data_dir}: its {patch_size} px patches are not a multiple of the model's size "
            f"divisor {divisor} (its pooling strides); score it on a dataset made with a "
            f"--patch_size that {divisor} divides, or segment whole micrographs instead"
        )
    dataset = data_lib.load_split(data_dir, split, batch_size, augment=augment, with_info=True)
    predict = tf.function(lambda x: model(x, training=False))
    hard, soft = metrics.HardDice(), metrics.SoftDice()
    rows = []
    patches = int((dataset_info.get("splits") or {}).get(split, {}).get("count") or 0)
    scored = patches * (data_lib.NUM_DIHEDRAL if augment else 1)
    batches = progress_bar(dataset, desc=f"{split} batches", total=-(-scored // batch_size) or None, unit="batch",
                           enabled=progress)
    for images, labels, info in batches:
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


def evaluate_run(
    run_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    weights: str = "best",
    augment: bool = True,
    batch_size: int = 8,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Scores a run directory (or a ``.keras`` file) and writes ``eval_<split>.csv``/``.json``.

    The dataset is the run's own (its config's ``data_dir``) unless ``data_dir`` is given; scores
    on another dataset go to ``eval_<split>_<dataset folder name>.*``, so they never replace the
    run's own. Files go to ``out_dir``, by default the run directory; existing ones are replaced
    only with ``overwrite``, and the two files are written as one result (`new_files`). Returns
    the summary and the paths written (``csv``, ``json``); raises OSError or ValueError naming the
    problem. ``progress``: a progress bar over the batches scored.
    """
    from tem_rf.core.files import os_error_text, write_csv, write_json
    from tem_rf.core.locks import output_lock, remove_stale_temporaries
    from tem_rf.core.outputs import check_new_files, new_files
    from tem_rf.train.rundir import RunDir

    run_path = Path(run_path)
    if not run_path.exists():
        raise ValueError(f"{run_path}: no such run directory or .keras file")
    run = RunDir.open(run_path)
    own_data = run.config().get("data_dir") if run.config_file.exists() else None
    data_dir = data_dir or own_data
    if data_dir is None:
        raise ValueError(f"{run_path}: no config.json with the run's dataset beside it; pass --data_dir")
    if not Path(data_dir).is_dir():
        where = "--data_dir" if data_dir != own_data else "the run's dataset (config.json data_dir)"
        raise ValueError(f"{data_dir}: {where} is not there; if it moved, pass --data_dir=WHERE_IT_IS_NOW")
    stem = f"eval_{split}"
    if own_data is None or Path(data_dir).resolve() != Path(own_data).resolve():
        stem += f"_{Path(data_dir).resolve().name}"  # another dataset: keep the run's own scores
    out_dir = Path(out_dir) if out_dir else run.path
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json"}
    check_new_files(paths.values(), overwrite)  # before the scoring, not after it
    # One writer per output folder (a second evaluate into it is refused at once); under the lock
    # a killed run's temporaries go.
    with output_lock(out_dir):
        remove_stale_temporaries(paths.values())
        check_new_files(paths.values(), overwrite)
        summary, rows = evaluate_model(run.load_model(weights), data_dir, split, augment=augment, batch_size=batch_size,
                                       progress=progress)
        summary.update(run=str(run_path), weights=weights, data_dir=str(data_dir))
        try:
            with new_files(paths.values(), overwrite=overwrite) as temporary:
                write_csv(temporary[paths["csv"]], rows)
                write_json(temporary[paths["json"]], summary)
        except OSError as err:
            raise OSError(f"{out_dir}: cannot write the results: {os_error_text(err)}") from err
    return summary, paths
