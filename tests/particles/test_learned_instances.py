"""Particles from a boundary-target network's interiors (`tem_rf.particles.learned_instances`)."""

import numpy as np
import pytest

from tem_rf.data.instance_masks import BOUNDARY, boundary_classes
from tem_rf.particles import label_particles, measure_particles
from tem_rf.particles.learned_instances import MIN_SEED_PX, instances_from_boundary


def probabilities(labels: np.ndarray, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The particle and boundary probabilities a perfect boundary-target network gives."""
    classes = boundary_classes(labels, width)
    particle = (classes > 0).astype(np.float32)
    return particle, (classes == BOUNDARY).astype(np.float32)


def bricks() -> np.ndarray:
    """Four 10x14 rectangles packed edge to edge (ids in scan order), and a 2x2 speck."""
    labels = np.zeros((30, 40), np.int32)
    labels[3:13, 3:17], labels[3:13, 17:31] = 1, 2
    labels[13:23, 3:17], labels[13:23, 17:31] = 3, 4
    labels[26:28, 36:38] = 5
    return labels


def test_touching_particles_are_parted_where_the_distance_rule_cannot():
    labels = bricks()
    particle, boundary = probabilities(labels)
    found = instances_from_boundary(particle, boundary)
    np.testing.assert_array_equal(found, labels)  # every pixel back to its own particle, numbered in scan order
    # The geometric rule sees one rectangle with a flat ridge: one particle.
    assert label_particles(labels > 0, min_area_px=1)[3:23, 3:31].max() == 1


def test_particles_without_an_interior_and_the_minimum_area():
    labels = bricks()
    particle, boundary = probabilities(labels)
    assert np.count_nonzero(boundary[labels == 5]) == 4  # the speck is all boundary: no seed
    found = instances_from_boundary(particle, boundary, min_area_px=5)
    assert found.max() == 4 and not found[labels == 5].any()
    assert instances_from_boundary(particle, boundary)[27, 37] == 5


def test_specks_of_interior_do_not_split_a_particle():
    labels = bricks()
    particle, boundary = probabilities(labels)
    boundary[5:11, 5:12] = 1.0  # a thick blot inside particle 1, its interior all around
    for speck, count in ((MIN_SEED_PX - 1, 5), (MIN_SEED_PX, 6)):
        holed = boundary.copy()
        holed[8, 7:7 + speck] = 0.0  # interior pixels inside the blot
        found = instances_from_boundary(particle, holed)
        assert found.max() == count
        assert len(np.unique(found[labels == 1])) == count - 4


def test_threshold_holes_and_shapes():
    particle, boundary = probabilities(bricks())
    particle[7, 7] = 0.2  # a hole in particle 1: filled
    assert instances_from_boundary(particle, boundary)[7, 7] == 1
    assert instances_from_boundary(particle, boundary, fill=False)[7, 7] == 0
    assert not instances_from_boundary(particle * 0.4, boundary * 0.4).any()  # all below the threshold
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        instances_from_boundary(particle, boundary[:-1])


def test_measure_particles_uses_the_boundary_map():
    labels = bricks()
    particle, boundary = probabilities(labels)
    particles, found = measure_particles(particle > 0.5, 0.5, probability=particle, boundary=boundary,
                                         min_area_px=1, return_labels=True)
    np.testing.assert_array_equal(found, labels)
    assert [p.area_px for p in particles] == [140, 140, 140, 140, 4]
    assert particles[0].diameter_nm == pytest.approx(0.5 * np.sqrt(4 * 140 / np.pi))
    assert len(measure_particles(particle > 0.5, 0.5, probability=particle, min_area_px=1)) == 2
    with pytest.raises(ValueError, match="particle probability"):
        measure_particles(particle > 0.5, 0.5, boundary=boundary)


def test_touching_irregular_particles_come_back_one_by_one():
    """Generated micrograph truth: a chain of touching ellipses of several sizes and angles and a
    field of loose ones; perfect maps give every particle back (F1 1 at IoU 0.5, IoU > 0.9)."""
    from tem_rf.data.synthetic import Particle
    from tem_rf.particles import score_instances

    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[:160, :200].astype(np.float64)
    labels = np.zeros(rows.shape, np.int32)
    col, ident = 12.0, 0
    for _ in range(7):  # each ellipse reaches well into the one before it
        semi_major, semi_minor = rng.uniform(9, 14), rng.uniform(6, 9)
        particle = Particle(40 + rng.uniform(-3, 3), col + semi_major * 0.9, semi_major, semi_minor, rng.uniform(0, 0.4))
        ident += 1
        labels[(particle.inside(rows, cols) <= 1.0)] = ident
        col += 2 * semi_major * 0.65  # a wide contact: a shallow saddle in the distance transform
    for row, column in ((110, 30), (120, 90), (105, 150)):
        ident += 1
        labels[(Particle(row, column, 15, 8, rng.uniform(0, np.pi)).inside(rows, cols) <= 1.0)] = ident
    particle, boundary = probabilities(labels, width=2)
    found = instances_from_boundary(particle, boundary)
    score = score_instances(found, labels, None)
    assert score["true_count"] == ident == score["predicted_count"]
    assert score["f1"] == 1.0 and score["mean_matched_iou"] > 0.9
    assert label_particles(labels > 0, min_area_px=1).max() < ident  # the geometric rule merges some


def test_instances_are_numbered_by_their_first_pixel_in_raster_order():
    # The renumbering searches each label's bounding box's first row only; it must equal ordering
    # by the first pixel over the whole image (np.unique's first index), with unused ids skipped.
    from scipy import ndimage

    from tem_rf.particles.learned_instances import _scan_order

    rng = np.random.default_rng(0)
    for _ in range(20):
        labels, count = ndimage.label(rng.random((60, 70)) < rng.uniform(0.2, 0.7))
        shuffled = np.concatenate([[0], rng.permutation(count) + 1 + rng.integers(0, 5)]).astype(np.int32)
        labels = shuffled[labels]
        ids, first = np.unique(labels, return_index=True)
        order = ids[ids > 0][np.argsort(first[ids > 0])]
        expected = np.zeros(labels.max() + 1, np.int32)
        expected[order] = np.arange(1, len(order) + 1)
        np.testing.assert_array_equal(_scan_order(labels.copy()), expected[labels])


def _noisy_field(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of many touching and separate particles, with noise (no two values equal:
    not clipped, so no run of saturated zeros)."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    labels = np.zeros((160, 180), np.int32)
    for k in range(1, 40):
        rr, cc = disk(tuple(rng.integers(8, 172, 2)), rng.uniform(4, 12), shape=labels.shape)
        labels[rr, cc] = k
    particle, boundary = probabilities(labels, width=2)
    return ((particle + rng.normal(0, 0.1, particle.shape)).astype(np.float32),
            (boundary + rng.normal(0, 0.1, boundary.shape)).astype(np.float32))


@pytest.mark.parametrize("seed", range(4))
def test_flooding_region_by_region_equals_flooding_the_whole_image(seed):
    # Flooding never leaves a 4-connected region of particle pixels and a seed lies in one, so
    # seeds found and flooded region by region in their boxes give the whole-image watershed's
    # particles. Not where seed pixels of two particles have exactly equal values next to one
    # pixel (saturated probabilities): scikit-image starts every seed pixel at one age, and which
    # it takes first then depends on every other seed in its queue; region by region, only on
    # those of the region.
    from scipy import ndimage
    from skimage.segmentation import watershed

    from tem_rf.particles.learned_instances import _FOUR, InstanceRule, _flood_regions

    particle, boundary = _noisy_field(seed)
    inside = particle > 0.5
    rule = InstanceRule(boundary_threshold=0.3, min_seed_px=6)
    seeds, count = ndimage.label(inside & (boundary < rule.boundary_threshold), structure=_FOUR)
    small = np.bincount(seeds.ravel(), minlength=count + 1) < rule.min_seed_px
    small[0] = False
    seeds[small[seeds]] = 0
    assert small[1:].any() and len(np.unique(ndimage.label(inside, structure=_FOUR)[0])) > 5
    whole = watershed(boundary, seeds, mask=inside)
    by_region = _flood_regions(boundary, inside, rule)
    pairs = set(zip(whole.ravel().tolist(), by_region.ravel().tolist()))
    assert len(pairs) == len(np.unique(whole)) == len(np.unique(by_region))  # the same partition
    np.testing.assert_array_equal(by_region > 0, whole > 0)


def test_a_particles_pixels_do_not_depend_on_the_rest_of_the_micrograph():
    # Saturated probabilities (clipped to 0 and 1) tie; a whole-image watershed then gave some
    # pixels to another particle when other particles were added beside (2 of these 10 fields).
    def clipped(seed):
        return [np.clip(values, 0, 1) for values in _noisy_field(seed)]

    for seed in range(0, 20, 2):
        particle, boundary = clipped(seed)
        alone = instances_from_boundary(particle, boundary)
        wider = [np.concatenate([p, q], axis=1) for p, q in zip((particle, boundary), clipped(seed + 1))]
        together = instances_from_boundary(*wider)[:, : particle.shape[1]]
        # the same partition of the left half's pixels (ids differ where the right half's come first)
        pairs = set(zip(alone.ravel().tolist(), together.ravel().tolist()))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
