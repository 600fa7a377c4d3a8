"""Dice of the particle class (paper Eq. 2): NumPy functions and stateful Keras metrics.

The NumPy functions need no TensorFlow; the Keras metrics are imported on first use.
"""

from __future__ import annotations

import importlib

from tem_rf.metrics.dice import dice, hard_dice, soft_dice

_LAZY = {
    "HardDice": "tem_rf.metrics.keras_metrics",
    "SoftDice": "tem_rf.metrics.keras_metrics",
}

__all__ = ["dice", "hard_dice", "soft_dice", *_LAZY]

def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
