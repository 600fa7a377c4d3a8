"""The resume contract of a run folder: what a checkpoint holds, when a run may resume, and
saving and restoring checkpoints so that a failure leaves the last good one.

A run resumes only when its ``config.json`` agrees with the new settings in everything that
changes results (the "resume" rule of each `TrainConfig` field); a checkpoint that cannot be
read, or a save that fails (disk full), is one `TrainingError` naming the file.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

from tem_rf.core.files import os_error_text
from tem_rf.train.config import TrainingError, missing_to_resume, resume_changes
from tem_rf.train.rundir import RunDir


@dataclasses.dataclass
class TrainingState:
    """Training state that must survive a restart (lives in the checkpoint)."""

    epoch: Any  # tf.Variable int64: epochs completed
    best_val_dice: Any  # tf.Variable float64
    best_epoch: Any  # tf.Variable int64

    @classmethod
    def new(cls) -> TrainingState:
        """Nothing trained yet: epoch 0, no best."""
        import tensorflow as tf

        return cls(
            epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
            best_val_dice=tf.Variable(-1.0, dtype=tf.float64, trainable=False),
            best_epoch=tf.Variable(0, dtype=tf.int64, trainable=False),
        )


def check_resumable(run: RunDir, resolved_config: dict[str, Any]) -> None:
    """Refuses to resume a run whose config.json differs in a setting that changes results, a
    config.json that lacks such a setting, or checkpoints of an unknown run. A run with no
    checkpoint yet (it failed in its first epoch) has nothing to resume: it starts anew with the
    new settings."""
    if not run.config_file.exists():
        leftovers = run.run_files()
        if leftovers:
            raise TrainingError(
                f"{run.path}: holds {', '.join(leftovers)} but no config.json, so the run they "
                "belong to is unknown; use another --model_dir (or delete the folder to start anew)"
            )
        return
    if run.latest_checkpoint() is None:
        return
    try:
        saved = run.config()
    except ValueError as err:
        raise TrainingError(f"{err}; cannot tell which run {run.path} holds") from None
    missing = missing_to_resume(saved)
    if missing:
        raise TrainingError(
            f"{run.config_file}: lacks {', '.join(missing)}, so the network its checkpoints hold is "
            "unknown and is not resumed; use another --model_dir (or restore the run's config.json)"
        )
    changes = resume_changes(saved, resolved_config)
    if changes:
        raise TrainingError(
            f"{run.path}: {'; '.join(change.describe() for change in changes)}; use another "
            "--model_dir, or pass the run's values to resume it"
        )


def restore_latest(checkpoint: Any, run: RunDir) -> str | None:
    """Restores ``checkpoint`` from the run's latest checkpoint and returns its path (None when
    there is none); a truncated or corrupt checkpoint is one `TrainingError` naming it."""
    import tensorflow as tf

    latest = run.latest_checkpoint()
    if latest is None:
        return None
    try:
        checkpoint.restore(latest).expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError) as err:
        # IndexError: a truncated data file ("Read less bytes than requested")
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainingError(
            f"{latest}: corrupt or unreadable checkpoint ({reason}); delete {run.checkpoints_dir} "
            "to train the run from the start"
        ) from None
    return latest


def save_checkpoint(manager: Any, number: int) -> None:
    """``manager.save``; on an error (disk full) its partial files go and one line says why."""
    import tensorflow as tf

    try:
        manager.save(checkpoint_number=number)
    except (OSError, tf.errors.OpError) as err:
        directory = Path(manager.directory)
        partial = re.compile(rf"^ckpt-{number}(\.|_temp$)")  # ckpt-2.index, ckpt-2_temp/, not ckpt-20
        for leftover in [p for p in directory.iterdir() if partial.match(p.name)]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        reason = os_error_text(err) if isinstance(err, OSError) else str(err).strip().splitlines()[0]
        raise TrainingError(f"{directory / f'ckpt-{number}'}: cannot write the checkpoint ({reason})") from None
