"""False-negative maps of networks and of the Fourier filter, and their overlap (paper Fig. 7, S7).

A false negative (FN) is a particle pixel of the label that a method calls background. The
paper's observation: the FN regions of small-receptive-field networks look like those of Fourier
filtering (a texture-only method), those of large-receptive-field networks less so. The overlap
of two methods' FN regions on one image is their dice (Eq. 2 applied to the FN masks): 1 when
they miss exactly the same pixels, 0 when they miss disjoint ones, and 1 when both miss nothing.

Rows are plain dicts so they go straight to CSV (``write_csv``) or a DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tem_rf.core.classes import PARTICLE_CLASS
from tem_rf.metrics import dice


def _as_masks(array: np.ndarray, what: str) -> np.ndarray:
    masks = np.asarray(array)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim not in (2, 3):
        raise ValueError(f"{what} must be [H, W] or [N, H, W], got shape {np.shape(array)}")
    return masks


def false_negative_map(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Particle pixels of ``labels`` (class 1) that the boolean ``predicted`` mask misses."""
    labels, predicted = _as_masks(labels, "labels"), _as_masks(predicted, "predicted")
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and prediction {predicted.shape} differ in shape")
    return (labels == PARTICLE_CLASS) & ~predicted.astype(bool)


def false_positive_map(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Background pixels of ``labels`` that ``predicted`` calls particle."""
    labels, predicted = _as_masks(labels, "labels"), _as_masks(predicted, "predicted")
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and prediction {predicted.shape} differ in shape")
    return (labels != PARTICLE_CLASS) & predicted.astype(bool)


def fn_overlap(fn_a: np.ndarray, fn_b: np.ndarray) -> float:
    """Dice of two false-negative maps (1.0 when both are empty)."""
    return dice(fn_a, fn_b)


def predict_particle_probability(model: Any, images: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """Particle probability ``[N, H, W]`` (float32) of a segmentation model, inference mode."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] != 1:
        raise ValueError(f"images must be [N, H, W] or [N, H, W, 1], got shape {np.shape(images)}")
    outputs = []
    for start in range(0, len(array), batch_size):
        probabilities = np.asarray(model(array[start : start + batch_size], training=False))
        outputs.append(probabilities[..., PARTICLE_CLASS].astype(np.float32))
    return np.concatenate(outputs) if outputs else np.zeros(array.shape[:3], np.float32)


def predict_masks(model: Any, images: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """Binary particle masks ``[N, H, W]``: argmax over the two classes (p > 0.5), as hard dice."""
    return predict_particle_probability(model, images, batch_size) > 0.5


def compare_false_negatives(
    labels: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    reference: str = "fourier",
    image_info: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per image and method: hard dice, FN pixels, and FN overlap with ``reference``.

    Args:
      labels: ``[N, H, W]`` integer labels.
      predictions: method name -> ``[N, H, W]`` boolean masks (the reference among them).
      reference: the method every other one's FN map is compared with (the Fourier filter).
      image_info: optional per-image dicts (e.g. source, patch_row, patch_col) copied into rows.
    """
    labels = _as_masks(labels, "labels")
    if labels.ndim == 2:
        labels = labels[None]
    if reference not in predictions:
        raise ValueError(f"reference method {reference!r} is not among {sorted(predictions)}")
    masks = {}
    for name, predicted in predictions.items():
        predicted = _as_masks(predicted, f"prediction {name!r}")
        if predicted.ndim == 2:
            predicted = predicted[None]
        if predicted.shape != labels.shape:
            raise ValueError(f"prediction {name!r} {predicted.shape} differs from labels {labels.shape}")
        masks[name] = predicted.astype(bool)
    if image_info is not None and len(image_info) != len(labels):
        raise ValueError(f"{len(image_info)} info entries for {len(labels)} images")
    rows = []
    for index in range(len(labels)):
        truth = labels[index] == PARTICLE_CLASS
        reference_fn = truth & ~masks[reference][index]
        base = {"image_index": index}
        if image_info is not None:
            base |= dict(image_info[index])
        base["label_px"] = int(truth.sum())
        for name, predicted in masks.items():
            fn = truth & ~predicted[index]
            rows.append(
                base
                | {
                    "method": name,
                    "hard_dice": dice(predicted[index], truth),
                    "fn_px": int(fn.sum()),
                    "fn_fraction": float(fn.sum() / truth.sum()) if truth.any() else 0.0,
                    f"fn_overlap_{reference}": fn_overlap(fn, reference_fn),
                    f"{reference}_fn_px": int(reference_fn.sum()),
                }
            )
    return rows


def summarize_fn_overlap(
    rows: Sequence[Mapping[str, Any]], reference: str = "fourier"
) -> list[dict[str, Any]]:
    """Per method: mean/std of the FN overlap with ``reference`` and how often it is the closest.

    ``closest_count`` counts the images (among those where ``reference`` misses something, so
    that "both miss nothing" does not decide) on which this method's FN map overlaps the
    reference's most, among the non-reference methods (paper Fig. S7). Ties count for all tied.
    """
    key = f"fn_overlap_{reference}"
    methods = list(dict.fromkeys(row["method"] for row in rows))
    by_image: dict[int, dict[str, float]] = {}
    reference_missed: dict[int, bool] = {}
    for row in rows:
        by_image.setdefault(row["image_index"], {})[row["method"]] = float(row[key])
        reference_missed[row["image_index"]] = row[f"{reference}_fn_px"] > 0
    closest = {method: 0 for method in methods}
    compared = 0
    for index, values in by_image.items():
        others = {m: v for m, v in values.items() if m != reference}
        if not others or not reference_missed[index]:
            continue
        compared += 1
        best = max(others.values())
        for method, value in others.items():
            if value == best:
                closest[method] += 1
    summary = []
    for method in methods:
        overlaps = np.array([float(r[key]) for r in rows if r["method"] == method])
        dices = np.array([float(r["hard_dice"]) for r in rows if r["method"] == method])
        summary.append(
            {
                "method": method,
                "num_images": len(overlaps),
                "hard_dice_mean": float(dices.mean()) if dices.size else math.nan,
                "hard_dice_std": float(dices.std(ddof=1)) if dices.size > 1 else 0.0,
                f"{key}_mean": float(overlaps.mean()) if overlaps.size else math.nan,
                f"{key}_std": float(overlaps.std(ddof=1)) if overlaps.size > 1 else 0.0,
                "closest_count": closest[method] if method != reference else None,
                "images_compared": compared if method != reference else None,
            }
        )
    return summary


