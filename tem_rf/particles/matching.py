"""Scoring particle instances against ground truth: detection and the size distribution.

Instance images hold 0 for background and 1..n for particles (ids need not be consecutive); a
binary ground-truth mask is split into instances by its 8-connected components
(`instance_labels`). Per image, `score_instances` reports

* instance precision, recall and F1 at IoU >= 0.5: predicted and true particles are matched one
  to one. Above 0.5 a particle can overlap at most one partner that much, so those pairs are
  unique; ties at exactly 0.5 are settled by the Hungarian assignment
  (`scipy.optimize.linear_sum_assignment`) maximising the summed IoU;
* the mean IoU of the matched pairs, and the count error (predicted - true);
* the difference between the predicted and true equivalent-circle diameter distributions:
  median diameter error (nm, or px without a pixel size, and %), and the two-sample
  Kolmogorov-Smirnov statistic (`scipy.stats.ks_2samp`). Particles touching the image edge are
  left out of the diameter distributions on both sides by default (their size is cut).

`pool_scores` combines per-image results: matches, misses and false detections are summed and
the diameter samples concatenated. Every value is JSON-clean: None where undefined (no
particles), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from tem_rf.core.units import pixel_size_or_none

DEFAULT_IOU_THRESHOLD = 0.5


def instance_labels(image: Any) -> np.ndarray:
    """An instance image as int64 labels: an integer image with more than one particle id is
    taken as instances; a binary one (bool, or a single nonzero value, as in a 0/255 mask) is
    split into its 8-connected components (ids 1..n in scan order)."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"an instance image must be 2-D, got shape {image.shape}")
    if image.dtype == bool:
        return _components(image)
    if image.dtype.kind == "f":
        if not np.isfinite(image).all() or not np.array_equal(image, np.round(image)):
            raise ValueError("an instance image must hold whole numbers")
    elif image.dtype.kind not in "iu":
        raise ValueError(f"an instance image must be integer or boolean, got {image.dtype}")
    if image.size == 0:
        return image.astype(np.int64)
    low, high = image.min(), image.max()
    if low < 0:
        raise ValueError("instance labels must be >= 0")
    if high == 0 or not (image[image != 0] != high).any():  # a single nonzero value: a mask
        return _components(image != 0)
    return image.astype(np.int64)


def _components(mask: np.ndarray) -> np.ndarray:
    return ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))[0].astype(np.int64)


@dataclass(frozen=True)
class Matching:
    """One-to-one matches between predicted and true instances.

    ``pairs``: ``[m, 2]`` (predicted id, true id); ``iou``: their IoU; ``predicted_ids`` and
    ``true_ids``: every instance id present (sorted).
    """

    pairs: np.ndarray
    iou: np.ndarray
    predicted_ids: np.ndarray
    true_ids: np.ndarray

    @property
    def true_positives(self) -> int:
        return len(self.pairs)

    @property
    def false_positives(self) -> int:
        return len(self.predicted_ids) - len(self.pairs)

    @property
    def false_negatives(self) -> int:
        return len(self.true_ids) - len(self.pairs)


def _ids_and_areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    ids = np.flatnonzero(counts)
    return ids, counts[ids]


def _overlaps(predicted: np.ndarray, true: np.ndarray):
    """Ids, areas and the sparse intersection table (pred id, true id, pixels) of two images."""
    predicted_ids, predicted_area = _ids_and_areas(predicted)
    true_ids, true_area = _ids_and_areas(true)
    both = (predicted > 0) & (true > 0)
    width = int(true.max()) + 1 if true.size else 1
    keys, counts = np.unique(predicted[both] * width + true[both], return_counts=True)
    pairs = np.stack([keys // width, keys % width], axis=1)
    return predicted_ids, predicted_area, true_ids, true_area, pairs, counts


def match_instances(predicted: Any, true: Any, iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> Matching:
    """One-to-one matching of predicted to true instances with IoU >= ``iou_threshold`` (module
    docstring). Both images are read by `instance_labels`."""
    return _match(instance_labels(predicted), instance_labels(true), iou_threshold)


def _match(predicted: np.ndarray, true: np.ndarray, iou_threshold: float) -> Matching:
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    if predicted.shape != true.shape:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} images differ in shape")
    predicted_ids, predicted_area, true_ids, true_area, pairs, counts = _overlaps(predicted, true)
    union = (
        predicted_area[np.searchsorted(predicted_ids, pairs[:, 0])]
        + true_area[np.searchsorted(true_ids, pairs[:, 1])]
        - counts
    )
    iou = counts / np.maximum(union, 1)
    keep = iou >= iou_threshold
    pairs, iou = pairs[keep], iou[keep]
    # A pair is settled when neither partner appears in another candidate pair (always so above
    # 0.5); the rest go to the Hungarian assignment.
    _, p_index, p_count = np.unique(pairs[:, 0], return_inverse=True, return_counts=True)
    _, t_index, t_count = np.unique(pairs[:, 1], return_inverse=True, return_counts=True)
    unique = (p_count[p_index] == 1) & (t_count[t_index] == 1) if len(pairs) else np.zeros(0, bool)
    chosen_pairs, chosen_iou = [pairs[unique]], [iou[unique]]
    if (~unique).any():
        from scipy.optimize import linear_sum_assignment

        rest, rest_iou = pairs[~unique], iou[~unique]
        rows, row_of = np.unique(rest[:, 0], return_inverse=True)
        cols, col_of = np.unique(rest[:, 1], return_inverse=True)
        table = np.zeros((len(rows), len(cols)))
        table[row_of, col_of] = rest_iou
        r, c = linear_sum_assignment(table, maximize=True)
        ok = table[r, c] >= iou_threshold
        chosen_pairs.append(np.stack([rows[r[ok]], cols[c[ok]]], axis=1))
        chosen_iou.append(table[r[ok], c[ok]])
    pairs = np.concatenate(chosen_pairs).reshape(-1, 2)
    iou = np.concatenate(chosen_iou)
    order = np.argsort(pairs[:, 0], kind="stable")
    return Matching(pairs[order], iou[order], predicted_ids, true_ids)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _f1(tp: int, fp: int, fn: int) -> float | None:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def diameters(labels: Any, pixel_size_nm: float | None = None, *, exclude_edge: bool = True) -> np.ndarray:
    """Equivalent-circle diameters ``sqrt(4 area / pi)`` of an instance image's particles, in nm
    (px without a pixel size), in id order; without the particles touching the image edge when
    ``exclude_edge``."""
    return _diameters(instance_labels(labels), pixel_size_nm, exclude_edge)


def _diameters(labels: np.ndarray, pixel_size_nm: float | None, exclude_edge: bool) -> np.ndarray:
    ids, area = _ids_and_areas(labels)
    if exclude_edge and len(ids):
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        inner = ~np.isin(ids, edge)
        area = area[inner]
    scale = pixel_size_or_none(pixel_size_nm) or 1.0
    return np.sqrt(4.0 * area / math.pi) * scale


def compare_diameters(predicted: Sequence[float], true: Sequence[float]) -> dict[str, Any]:
    """Predicted vs true diameter samples: counts, medians, median error (predicted - true, in the
    samples' unit, and % of the true median) and the two-sample KS statistic (None when a sample
    is empty)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    predicted_median = float(np.median(predicted)) if predicted.size else None
    true_median = float(np.median(true)) if true.size else None
    error = None if predicted_median is None or true_median is None else predicted_median - true_median
    ks = None
    if predicted.size and true.size:
        from scipy.stats import ks_2samp

        # The statistic alone: the asymptotic method spares the exact p-value (slow, and warns on
        # large samples); the statistic is the same. Its p-value divides by zero for one-particle
        # samples: not used, so not warned about.
        with np.errstate(divide="ignore", invalid="ignore"):
            ks = float(ks_2samp(predicted, true, method="asymp").statistic)
    return {
        "predicted_diameters": int(predicted.size),
        "true_diameters": int(true.size),
        "predicted_median_diameter": predicted_median,
        "true_median_diameter": true_median,
        "median_diameter_error": error,
        "median_diameter_error_percent": (
            None if error is None or not true_median else 100.0 * error / true_median
        ),
        "ks_statistic": ks,
    }


def _scores(tp: int, fp: int, fn: int, ious: np.ndarray, predicted_count: int, true_count: int,
            predicted_d: np.ndarray, true_d: np.ndarray, unit: str, threshold: float) -> dict[str, Any]:
    return {
        "iou_threshold": threshold,
        "predicted_count": predicted_count,
        "true_count": true_count,
        "matched": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _f1(tp, fp, fn),
        "mean_matched_iou": float(ious.mean()) if ious.size else None,
        "count_error": predicted_count - true_count,
        "count_error_percent": _ratio(100.0 * (predicted_count - true_count), true_count),
        "diameter_unit": unit,
        **compare_diameters(predicted_d, true_d),
    }


def score_instances(
    predicted: Any,
    true: Any,
    pixel_size_nm: float | None = None,
    *,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    exclude_edge: bool = True,
    return_samples: bool = False,
) -> dict[str, Any]:
    """Detection and size scores of one image (module docstring); a JSON-clean dict.

    Precision and recall are None when there is nothing to divide by (no predicted, no true
    particles); F1 is None only when both are empty. With ``return_samples`` the dict also holds
    the matched IoUs and both diameter samples as lists (`pool_scores` needs them).
    """
    predicted, true = instance_labels(predicted), instance_labels(true)
    matching = _match(predicted, true, iou_threshold)
    pixel_size_nm = pixel_size_or_none(pixel_size_nm)
    predicted_d = _diameters(predicted, pixel_size_nm, exclude_edge)
    true_d = _diameters(true, pixel_size_nm, exclude_edge)
    result = _scores(
        matching.true_positives, matching.false_positives, matching.false_negatives, matching.iou,
        len(matching.predicted_ids), len(matching.true_ids), predicted_d, true_d,
        "px" if pixel_size_nm is None else "nm", iou_threshold,
    )
    result["pixel_size_nm"] = pixel_size_nm
    result["exclude_edge"] = exclude_edge
    if return_samples:
        result["samples"] = {
            "iou": matching.iou.tolist(),
            "predicted_diameters": predicted_d.tolist(),
            "true_diameters": true_d.tolist(),
        }
    return result


def pool_scores(per_image: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The scores of several images together (each from ``score_instances(...,
    return_samples=True)``, all in one diameter unit): counts summed, IoUs and diameters pooled."""
    if not per_image:
        return _scores(0, 0, 0, np.zeros(0), 0, 0, np.zeros(0), np.zeros(0), "px", DEFAULT_IOU_THRESHOLD) | {
            "images": 0
        }
    units = {score["diameter_unit"] for score in per_image}
    thresholds = {score["iou_threshold"] for score in per_image}
    if len(units) > 1 or len(thresholds) > 1:
        raise ValueError(f"cannot pool scores with different units {units} or IoU thresholds {thresholds}")
    if any("samples" not in score for score in per_image):
        raise ValueError("pool_scores needs score_instances(..., return_samples=True)")

    def total(key: str) -> int:
        return sum(int(score[key]) for score in per_image)

    def pooled(key: str) -> np.ndarray:
        return np.array([v for score in per_image for v in score["samples"][key]], dtype=np.float64)

    result = _scores(
        total("matched"), total("false_positives"), total("false_negatives"), pooled("iou"),
        total("predicted_count"), total("true_count"), pooled("predicted_diameters"),
        pooled("true_diameters"), units.pop(), thresholds.pop(),
    )
    result["images"] = len(per_image)
    result["mean_absolute_count_error"] = sum(abs(s["count_error"]) for s in per_image) / len(per_image)
    return result


__all__ = [
    "DEFAULT_IOU_THRESHOLD",
    "Matching",
    "compare_diameters",
    "diameters",
    "instance_labels",
    "match_instances",
    "pool_scores",
    "score_instances",
]
