"""Training: the typed run config, devices and strategies, the one training loop, run directories.

Names are imported on first use, so `from tem_rf.train import TrainConfig` needs no TensorFlow.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

_LAZY = {
    "PRECISIONS": "tem_rf.train.config",
    "STRATEGIES": "tem_rf.train.config",
    "TrainConfig": "tem_rf.train.config",
    "TrainingError": "tem_rf.train.config",
    "is_chief": "tem_rf.train.distribute",
    "make_strategy": "tem_rf.train.distribute",
    "resolve_precision": "tem_rf.train.distribute",
    "strategy_name": "tem_rf.train.distribute",
    "Trainer": "tem_rf.train.loop",
    "build_train_step": "tem_rf.train.loop",
    "train": "tem_rf.train.loop",
    "ModelLoadError": "tem_rf.train.rundir",
    "RunDir": "tem_rf.train.rundir",
    "find_runs": "tem_rf.train.rundir",
    "load_keras_model": "tem_rf.train.rundir",
    "load_run": "tem_rf.train.rundir",
}

__all__ = [*_LAZY]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
