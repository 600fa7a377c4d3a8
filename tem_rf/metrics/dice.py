"""Dice of the particle class (paper Eq. 2) on NumPy arrays; no TensorFlow needed."""

from __future__ import annotations

import numpy as np

from tem_rf.core.classes import PARTICLE_CLASS


def _particle_probability(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Accepts class probabilities ``[..., C]`` or particle probabilities of ``labels``' shape."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape == labels.shape:
        return probabilities
    if probabilities.shape[:-1] == labels.shape:
        if probabilities.shape[-1] == 2:
            return probabilities[..., PARTICLE_CLASS]
        return probabilities[..., PARTICLE_CLASS:].sum(axis=-1)  # interior + boundary
    raise ValueError(
        f"probabilities of shape {probabilities.shape} do not match labels of shape {labels.shape}"
    )


def dice_from_counts(intersection: float, predicted: float, actual: float) -> float:
    """Eq. 2 from pooled counts: ``2 |X n Y| / (|X| + |Y|)``, and 1.0 when both are empty."""
    total = predicted + actual
    return 1.0 if total == 0 else float(2.0 * intersection / total)


def dice(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    a = np.asarray(mask_a).astype(bool)
    b = np.asarray(mask_b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of shapes {a.shape} and {b.shape} cannot be compared")
    return dice_from_counts(np.logical_and(a, b).sum(), a.sum(), b.sum())


def hard_dice(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Dice of the binarised prediction against the particle label, pooled over all pixels.

    ``probabilities`` is ``[..., 2]`` (argmax is taken), ``[..., 3]`` of a boundary-target
    network or the particle probability with the labels' shape (thresholded at 0.5, which is
    argmax for two classes). Every label above 0 is particle.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    two_classes = probabilities.shape[:-1] == labels.shape and probabilities.shape[-1:] == (2,)
    if two_classes and probabilities.shape != labels.shape:
        predicted = probabilities.argmax(axis=-1) == PARTICLE_CLASS
    else:
        predicted = _particle_probability(labels, probabilities) > 0.5
    return dice(predicted, labels >= PARTICLE_CLASS)


def soft_dice(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Dice of the particle probability against the particle label, pooled over all pixels."""
    labels = np.asarray(labels)
    prob = _particle_probability(labels, probabilities)
    truth = (labels >= PARTICLE_CLASS).astype(np.float64)
    return dice_from_counts((prob * truth).sum(), prob.sum(), truth.sum())
