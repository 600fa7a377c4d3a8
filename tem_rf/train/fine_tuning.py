"""Fine-tuning: a run that starts from another network's weights (``train --init_from``).

The source is a run folder, a ``.keras`` file or a shipped network (``pretrained:NAME``); its
weights must fit this run's architecture and target exactly, and their SHA-256 joins the run's
config (part of the resume contract).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np

from tem_rf.core.pretrained import UnknownPretrainedError
from tem_rf.train.config import TrainingError
from tem_rf.train.rundir import ModelLoadError, load_run

logger = logging.getLogger(__name__)


def weights_sha256(weights: list[np.ndarray]) -> str:
    """The SHA-256 of the weight arrays' bytes, in order."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def load_init_weights(model: Any, source: str, architecture: str, num_classes: int, target: str) -> str:
    """Sets ``model``'s weights to those of ``source`` and returns their SHA-256; a source that
    cannot be read or holds another architecture or target is a `TrainingError` naming both."""
    try:
        loaded, config, _ = load_run(source)
    except (ModelLoadError, UnknownPretrainedError, OSError) as err:
        raise TrainingError(f"--init_from {source}: cannot be loaded ({err})") from None
    theirs = config.get("architecture") or loaded.name
    classes = loaded.outputs[0].shape[-1]
    mine = f"{architecture} ({num_classes} classes, --target={target})"
    shapes = [tuple(w.shape) for w in loaded.weights]
    if theirs != architecture or classes != num_classes or shapes != [tuple(w.shape) for w in model.weights]:
        raise TrainingError(
            f"--init_from {source} holds {theirs} ({classes} classes) but this run is {mine}: its weights do "
            "not fit; start from a run of this architecture and target, or train from scratch"
        )
    weights = loaded.get_weights()
    model.set_weights(weights)
    digest = weights_sha256(weights)
    logger.info("starting from the weights of %s (sha256 %s...)", source, digest[:12])
    return digest
