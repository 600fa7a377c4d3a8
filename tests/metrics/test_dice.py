"""Dice (paper Eq. 2) on hand-made masks; stateful metrics accumulate exactly."""

import numpy as np
import pytest
import tensorflow as tf

from tem_rf import metrics


def _probs(particle):
    particle = np.asarray(particle, dtype=np.float32)
    return np.stack([1.0 - particle, particle], axis=-1)


def test_identical_and_disjoint_masks():
    label = np.array([[0, 1], [1, 0]])
    assert metrics.hard_dice(label, _probs(label)) == 1.0
    assert metrics.hard_dice(label, _probs(1 - label)) == 0.0
    assert metrics.soft_dice(label, _probs(label)) == 1.0
    assert metrics.soft_dice(label, _probs(1 - label)) == 0.0


def test_exact_fraction():
    # |Y| = 3, |X| = 2, |X n Y| = 1  ->  D = 2 / 5.
    label = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 0, 1, 1, 0, 0]])
    assert metrics.dice(pred, label) == pytest.approx(0.4)
    assert metrics.hard_dice(label, _probs(pred)) == pytest.approx(0.4)


def test_dice_from_counts_is_eq_2():
    # |X n Y| = 1, |X| = 2, |Y| = 3  ->  2 / 5; nothing predicted and nothing there -> 1.
    assert metrics.dice_from_counts(1, 2, 3) == pytest.approx(0.4)
    assert metrics.dice_from_counts(0, 0, 0) == 1.0
    assert metrics.dice_from_counts(0, 0, 4) == 0.0


def test_empty_masks():
    empty = np.zeros((4, 4), int)
    assert metrics.hard_dice(empty, _probs(empty)) == 1.0
    assert metrics.soft_dice(empty, _probs(empty)) == 1.0
    one = empty.copy()
    one[0, 0] = 1
    assert metrics.hard_dice(one, _probs(empty)) == 0.0
    assert metrics.hard_dice(empty, _probs(one)) == 0.0


def test_hard_versus_soft_on_known_probabilities():
    label = np.array([1, 1, 0, 0])
    particle = np.array([0.9, 0.6, 0.4, 0.1])
    # Hard: prediction [1,1,0,0] == label -> 1.  Soft: 2*(0.9+0.6) / (2.0 + 2) = 0.75.
    assert metrics.hard_dice(label, _probs(particle)) == 1.0
    assert metrics.soft_dice(label, _probs(particle)) == pytest.approx(0.75)
    # The particle probability alone is accepted too.
    assert metrics.soft_dice(label, particle) == pytest.approx(0.75)
    assert metrics.hard_dice(label, particle) == 1.0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="do not match labels"):
        metrics.soft_dice(np.zeros((2, 2)), np.zeros((3, 3, 2)))


@pytest.mark.parametrize("metric_cls,fn", [(metrics.HardDice, metrics.hard_dice), (metrics.SoftDice, metrics.soft_dice)])
def test_two_batches_equal_one_shot(metric_cls, fn):
    rng = np.random.default_rng(0)
    labels = (rng.random((4, 8, 8)) > 0.6).astype(np.int32)
    probs = _probs(rng.random((4, 8, 8)))
    metric = metric_cls()
    metric.update_state(labels[:2], probs[:2])
    metric.update_state(labels[2:], probs[2:])
    one_shot = fn(labels, probs)
    assert float(metric.result()) == pytest.approx(one_shot, rel=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 1.0  # nothing seen: both empty
    metric.update_state(labels, probs)
    assert float(metric.result()) == pytest.approx(one_shot, rel=1e-6)


def test_metric_merges_replicas_in_a_distributed_step():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(1)
    labels = (rng.random((4, 8, 8)) > 0.5).astype(np.int32)
    probs = _probs(rng.random((4, 8, 8)))
    with strategy.scope():
        metric = metrics.SoftDice()
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((labels, probs)).batch(4)
    )

    @tf.function
    def step(batch):
        strategy.run(lambda y, p: metric.update_state(y, p), args=batch)

    for batch in dataset:
        step(batch)
    assert float(metric.result()) == pytest.approx(metrics.soft_dice(labels, probs), rel=1e-6)


def test_boundary_target_dice_counts_interior_and_boundary_as_particle():
    # labels: 0 background, 1 interior, 2 boundary; predictions [..., 3]
    labels = np.array([[0, 1, 2, 2]])
    probs = np.array([[[0.9, 0.05, 0.05],   # background, right
                       [0.4, 0.3, 0.3],     # particle 0.6 > 0.5 (no class above 0.4 alone)
                       [0.6, 0.1, 0.3],     # particle 0.4: missed
                       [0.1, 0.1, 0.8]]], np.float32)
    # hard: predicted {1, 3}, true {1, 2, 3}: 2*2 / (2 + 3)
    assert metrics.hard_dice(labels, probs) == pytest.approx(0.8)
    # soft: particle probabilities 0.1, 0.6, 0.4, 0.9 against truth 0, 1, 1, 1
    assert metrics.soft_dice(labels, probs) == pytest.approx(2 * 1.9 / (2.0 + 3))
    hard, soft = metrics.HardDice(), metrics.SoftDice()
    hard.update_state(labels, probs)
    soft.update_state(labels, probs)
    assert float(hard.result()) == pytest.approx(0.8)
    assert float(soft.result()) == pytest.approx(2 * 1.9 / 5)
