"""Dice score of the particle class (paper Eq. 2): ``D = 2|X n Y| / (|X| + |Y|)``.

Hard dice binarises the prediction (argmax over classes, i.e. particle probability above the
background's); soft dice uses the particle probability itself. Labels are integer class maps
(0 background, 1 particle; or 0 background, 1 interior, 2 boundary with three output classes,
whose particle probability is the sum of the two, binarised at 0.5).

Empty masks: when the label and the prediction are both empty (``|X| + |Y| = 0``) the score is
1, since the prediction is exactly right; when only one is empty it is 0.

The stateful Keras metrics pool pixels over every batch they see (one dataset-level dice, the
same as computing Eq. 2 once on all pixels). Their state is three sums, so accumulating in any
number of batches, or on several replicas of a distributed step (the variables are
sync-on-read with SUM aggregation), gives the same value as one pass over all the data.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tem_rf.core.classes import PARTICLE_CLASS


class _PooledDice(keras.metrics.Metric):
    """Accumulates intersection, predicted and true particle sums; the score is Eq. 2."""

    def __init__(self, name: str, dtype: Any = "float32", **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, **kwargs)
        # float64 so that counting up to ~1e10 pixels stays exact.
        self.intersection = self.add_variable((), "zeros", dtype="float64", name="intersection")
        self.predicted = self.add_variable((), "zeros", dtype="float64", name="predicted")
        self.actual = self.add_variable((), "zeros", dtype="float64", name="actual")

    def _prediction(self, probabilities):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(f"{self.name} does not take sample weights")
        probabilities = ops.cast(y_pred, "float32")
        # every class above background is particle (interior and boundary of a boundary target)
        truth = ops.cast(ops.greater_equal(ops.cast(y_true, "int32"), PARTICLE_CLASS), "float32")
        prediction = self._prediction(probabilities)
        # Sum per image in float32 (exact below 2^24 pixels), then in float64 across images.
        axes = tuple(range(1, len(truth.shape))) if len(truth.shape) > 1 else None

        def total(x):
            partial = ops.sum(x, axis=axes) if axes else x
            return ops.sum(ops.cast(partial, "float64"))

        self.intersection.assign_add(total(prediction * truth))
        self.predicted.assign_add(total(prediction))
        self.actual.assign_add(total(truth))

    def result(self):
        denominator = self.predicted + self.actual
        score = ops.where(
            denominator > 0, 2.0 * self.intersection / ops.maximum(denominator, 1e-30), 1.0
        )
        return ops.cast(score, self.dtype)

    def reset_state(self):
        for variable in (self.intersection, self.predicted, self.actual):
            variable.assign(ops.zeros((), dtype="float64"))


@keras.saving.register_keras_serializable(package="tem_rf")
class HardDice(_PooledDice):
    """Stateful hard dice of the particle class, pooled over every pixel seen since reset."""

    def __init__(self, name: str = "hard_dice", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def _prediction(self, probabilities):
        if probabilities.shape[-1] == 2:
            return ops.cast(ops.equal(ops.argmax(probabilities, axis=-1), PARTICLE_CLASS), "float32")
        return ops.cast(ops.sum(probabilities[..., PARTICLE_CLASS:], axis=-1) > 0.5, "float32")


@keras.saving.register_keras_serializable(package="tem_rf")
class SoftDice(_PooledDice):
    """Stateful soft dice of the particle class, pooled over every pixel seen since reset."""

    def __init__(self, name: str = "soft_dice", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def _prediction(self, probabilities):
        if probabilities.shape[-1] == 2:
            return probabilities[..., PARTICLE_CLASS]
        return ops.sum(probabilities[..., PARTICLE_CLASS:], axis=-1)
