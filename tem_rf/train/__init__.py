"""Training: the typed run config, devices and strategies, the one training loop, run directories.

Names are imported on first use, so `from tem_rf.train import TrainConfig` needs no TensorFlow.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

_LAZY = {
    "tem_rf.train.config": ("PRECISIONS", "STRATEGIES", "TrainConfig", "TrainingError"),
    "tem_rf.train.distribute": ("is_chief", "make_strategy", "resolve_precision", "strategy_name"),
    "tem_rf.train.loop": ("Trainer", "train"),
    "tem_rf.train.train_step": ("build_train_step",),
    "tem_rf.train.rundir": (
        "ModelLoadError",
        "RunDir",
        "find_runs",
        "load_keras_model",
        "load_run",
    ),
}

__all__, __getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
