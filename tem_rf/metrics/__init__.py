"""Dice of the particle class (paper Eq. 2): NumPy functions and stateful Keras metrics.

The NumPy functions need no TensorFlow; the Keras metrics are imported on first use.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

from tem_rf.metrics.dice import dice, dice_from_counts, hard_dice, soft_dice

_LAZY = {
    "tem_rf.metrics.keras_metrics": ("HardDice", "SoftDice"),
}

__all__ = ["dice", "dice_from_counts", "hard_dice", "soft_dice"]  # imported above; the rest lazily
__all__, __getattr__, __dir__ = lazy_attributes(__name__, _LAZY, eager=__all__)
