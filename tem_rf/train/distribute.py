"""Devices, precision policy and `tf.distribute` strategy of a training run."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from tem_rf.train.config import PRECISIONS, STRATEGIES, TrainingError

logger = logging.getLogger(__name__)


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



def make_strategy(name: str = "auto", devices: Sequence[str] | None = None, *, worker_timeout_s: float = 600.0):
    """Builds a `tf.distribute.Strategy`.

    ``auto``: `MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers,
    `MirroredStrategy` over all GPUs when there are several, else the default strategy.
    ``devices`` (e.g. two logical CPUs) only applies to ``mirrored``. A multi-worker strategy
    waits for every worker of `TF_CONFIG` at most ``worker_timeout_s`` (`wait_for_workers`).
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
        return wait_for_workers(tf.distribute.MultiWorkerMirroredStrategy, worker_timeout_s)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    return tf.distribute.get_strategy()



def _peers() -> str:
    """The workers TF_CONFIG names other than this one, for messages."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    return ", ".join(address for kind, addresses in config.get("cluster", {}).items() if kind in ("chief", "worker")
                     for index, address in enumerate(addresses)
                     if (kind, index) != (task.get("type"), task.get("index")))


# The watchdog of `wait_for_workers`: a separate small process, because TensorFlow holds the GIL
# while it waits for the cluster, so no thread of the waiting process could run. It ends quietly
# when its stdin closes (the workers joined, or the trainer died), and at the deadline says why
# and kills the trainer (SIGKILL: no handler of the trainer can run then). Ctrl-C is for the trainer.
_WATCHDOG = """
import os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
trainer, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ready, _, _ = select.select([sys.stdin], [], [], timeout)
if not ready:
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os.kill(trainer, signal.SIGKILL)
"""


def wait_for_workers(create: Callable[[], Any], timeout_s: float) -> Any:
    """``create()`` (a multi-worker strategy, which blocks inside TensorFlow, holding the GIL,
    until every worker of TF_CONFIG has joined), bounded: after ``timeout_s`` seconds a watchdog
    process says which workers never came and ends this one (status -9, nothing of the run is
    written before the strategy exists); Ctrl-C and SIGTERM end it at once (their default
    action: a Python handler could not run while TensorFlow waits)."""
    import signal
    import subprocess
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread() or not math.isfinite(timeout_s):
        return create()  # signal handlers can only be set from the main thread
    message = (f"error: multi-worker training: not every worker joined within {timeout_s:g} s (waiting for "
               f"{_peers()}): start every worker TF_CONFIG names, check the addresses, or raise --worker_timeout_s")
    previous = {number: signal.signal(number, signal.SIG_DFL) for number in (signal.SIGINT, signal.SIGTERM)}
    try:  # Python's own stderr: descriptor 2 may be a filter read by a thread of this process
        stderr = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        stderr = None
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), repr(float(timeout_s)), message],
                                stdin=subprocess.PIPE, stderr=stderr)
    logger.info("waiting for the other workers (%s), at most %g s", _peers(), timeout_s)
    try:
        return create()
    finally:
        watchdog.stdin.close()
        watchdog.wait()
        for number, handler in previous.items():
            signal.signal(number, handler)


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
