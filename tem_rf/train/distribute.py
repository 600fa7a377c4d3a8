"""Devices, precision policy and `tf.distribute` strategy of a training run."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from tem_rf.train.config import PRECISIONS, STRATEGIES, TrainingError


def resolve_precision(precision: str) -> str:
    """``auto`` is mixed_float16 when a GPU is visible, float32 otherwise."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise TrainingError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return precision



def _tf_config_workers() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as err:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {err}") from None
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))



def make_strategy(name: str = "auto", devices: Sequence[str] | None = None):
    """Builds a `tf.distribute.Strategy`.

    ``auto``: `MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers,
    `MirroredStrategy` over all GPUs when there are several, else the default strategy.
    ``devices`` (e.g. two logical CPUs) only applies to ``mirrored``.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise TrainingError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    if name == "auto":
        if _tf_config_workers() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        if _tf_config_workers() < 1:
            raise TrainingError("strategy multi_worker needs TF_CONFIG with a cluster spec")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    return tf.distribute.get_strategy()



def strategy_name(strategy) -> str:
    """``multi_worker``, ``mirrored`` or ``default``: how a strategy object distributes."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"



def is_chief(strategy) -> bool:
    """True on the worker that writes outputs (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )
