"""tem_rf.particles.matching: instance detection and size-distribution scores."""

import json
import math

import numpy as np
import pytest

from tem_rf.particles import compare_diameters, instance_labels, match_instances, pool_scores, score_instances


def squares(shape=(100, 100), size=10, corners=((10, 10), (10, 50), (50, 30), (70, 70))):
    labels = np.zeros(shape, np.int32)
    for index, (row, col) in enumerate(corners, start=1):
        labels[row : row + size, col : col + size] = index
    return labels


def test_identical_instances_score_one():
    labels = squares()
    score = score_instances(labels, labels, 0.5)
    assert score["precision"] == score["recall"] == score["f1"] == 1.0
    assert score["mean_matched_iou"] == 1.0 and score["count_error"] == 0
    assert score["median_diameter_error"] == 0.0 and score["ks_statistic"] == 0.0
    assert score["true_median_diameter"] == pytest.approx(math.sqrt(400 / math.pi) * 0.5)
    json.dumps(score, allow_nan=False)


def test_shifted_prediction_has_the_known_iou():
    true = squares()
    predicted = np.roll(true, 2, axis=1)  # 10x10 squares shifted by 2: IoU 80 / 120
    matching = match_instances(predicted, true)
    np.testing.assert_allclose(matching.iou, 80 / 120)
    np.testing.assert_array_equal(matching.pairs, [[1, 1], [2, 2], [3, 3], [4, 4]])
    assert score_instances(predicted, true)["mean_matched_iou"] == pytest.approx(2 / 3)
    # shifted by 4: IoU 60 / 140 < 0.5, nothing matches
    far = score_instances(np.roll(true, 4, axis=1), true)
    assert far["matched"] == 0 and far["precision"] == 0.0 and far["recall"] == 0.0 and far["f1"] == 0.0
    assert far["mean_matched_iou"] is None


def test_a_missed_particle_lowers_recall_exactly():
    true = squares()
    predicted = true.copy()
    predicted[predicted == 3] = 0
    score = score_instances(predicted, true)
    assert score["recall"] == pytest.approx(3 / 4) and score["precision"] == 1.0
    assert score["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))
    assert score["count_error"] == -1 and score["count_error_percent"] == pytest.approx(-25.0)
    # an extra false particle lowers precision
    predicted = true.copy()
    predicted[85:95, 5:15] = 9
    score = score_instances(predicted, true)
    assert score["precision"] == pytest.approx(4 / 5) and score["recall"] == 1.0 and score["false_positives"] == 1


def test_merged_prediction_matches_at_most_one():
    true = squares(corners=((10, 10), (10, 20)))  # two touching squares
    merged = (true > 0).astype(np.uint8) * 255  # one blob: a binary mask is one instance
    matching = match_instances(merged, true)
    assert len(matching.predicted_ids) == 1 and matching.true_positives == 1
    np.testing.assert_allclose(matching.iou, [0.5])  # the tie at exactly 0.5 is settled one to one
    assert matching.false_negatives == 1


def test_binary_ground_truth_is_split_into_components():
    mask = squares() > 0
    labels = instance_labels(mask)
    assert labels.max() == 4
    assert score_instances(squares(), mask.astype(np.uint8) * 255)["f1"] == 1.0
    with pytest.raises(ValueError):
        instance_labels(np.full((4, 4), 0.5))


def test_diameter_distributions():
    equal = compare_diameters([1, 2, 3, 4], [4, 3, 2, 1])
    assert equal["ks_statistic"] == 0.0 and equal["median_diameter_error"] == 0.0
    larger = compare_diameters([11, 12, 13], [1, 2, 3])
    assert larger["ks_statistic"] == 1.0
    assert larger["median_diameter_error"] == 10.0 and larger["median_diameter_error_percent"] == 500.0
    empty = compare_diameters([], [1.0])
    assert empty["ks_statistic"] is None and empty["median_diameter_error"] is None
    json.dumps(empty, allow_nan=False)


def test_edge_particles_are_left_out_of_the_diameters():
    true = squares(corners=((0, 10), (40, 40)))  # the first touches the top edge
    predicted = true.copy()
    predicted[0:10, 10:20] = 0
    predicted[0:4, 10:20] = 1  # cut smaller: no match and a smaller edge particle
    score = score_instances(predicted, true)
    assert score["true_diameters"] == score["predicted_diameters"] == 1
    assert score["median_diameter_error"] == 0.0
    with_edge = score_instances(predicted, true, exclude_edge=False)
    assert with_edge["true_diameters"] == 2 and with_edge["ks_statistic"] > 0


def test_empty_images_and_pooling():
    empty = np.zeros((50, 50), np.int32)
    score = score_instances(empty, empty, return_samples=True)
    assert score["precision"] is None and score["recall"] is None and score["f1"] is None
    json.dumps(score, allow_nan=False)
    true = squares()
    missed = true.copy()
    missed[missed == 2] = 0
    scores = [score_instances(true, true, return_samples=True), score_instances(missed, true, return_samples=True)]
    pooled = pool_scores(scores)
    assert pooled["images"] == 2 and pooled["matched"] == 7 and pooled["false_negatives"] == 1
    assert pooled["recall"] == pytest.approx(7 / 8) and pooled["precision"] == 1.0
    assert pooled["count_error"] == -1 and pooled["mean_absolute_count_error"] == 0.5
    assert pooled["true_diameters"] == 8 and pooled["predicted_diameters"] == 7
    json.dumps(pooled, allow_nan=False)
    json.dumps(pool_scores([]), allow_nan=False)
    with pytest.raises(ValueError, match="return_samples"):
        pool_scores([score_instances(true, true)])
