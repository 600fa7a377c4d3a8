"""tem_rf.particles.measure: instances, sizes and shapes from a segmentation mask."""

import csv
import json
import math

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage.measure import label, regionprops

from tem_rf.particles import measure_particles, summarise, write_labels, write_particles_csv
from tem_rf.particles.particle import COLUMNS, FIELDS
from tem_rf.particles.shape import feret_diameters

from reference_measure import calipers_of_hull, outline_hull, outline_points


def disc(shape, radius, centre):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def ellipse(shape, a, b, centre, angle):
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(float)
    dr, dc = rows - centre[0], cols - centre[1]
    u = dc * math.cos(angle) + dr * math.sin(angle)
    v = -dc * math.sin(angle) + dr * math.cos(angle)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def test_disc_diameter_and_feret_in_nm():
    radius, pixel_size = 30, 0.25
    mask = disc((120, 130), radius, (60.3, 64.6))
    (particle,) = measure_particles(mask, pixel_size)
    expected = 2 * radius * pixel_size
    assert particle.diameter_nm == pytest.approx(expected, rel=0.02)
    assert particle.diameter_px == pytest.approx(math.sqrt(4 * mask.sum() / math.pi))
    assert particle.feret_max_nm == pytest.approx(expected, rel=0.03)
    assert particle.feret_min_nm == pytest.approx(expected, rel=0.02)
    assert particle.area_px == mask.sum() and particle.area_nm2 == pytest.approx(mask.sum() * pixel_size**2)
    rows, cols = np.nonzero(mask)
    assert particle.centroid_row_px == pytest.approx(rows.mean())
    assert particle.centroid_col_nm == pytest.approx(cols.mean() * pixel_size)
    assert particle.solidity > 0.97 and 1 <= particle.aspect_ratio < 1.03
    assert not particle.touches_edge and particle.mean_probability is None and particle.id == 1


def test_rectangle_feret_is_diagonal_and_short_side():
    mask = np.zeros((60, 80), bool)
    mask[10:22, 10:50] = True  # 12 x 40 px
    (particle,) = measure_particles(mask, min_area_px=0)
    assert particle.feret_max_px == pytest.approx(math.hypot(12, 40), abs=1.0)
    assert particle.feret_min_px == pytest.approx(12.0, abs=1e-9)
    assert particle.solidity == pytest.approx(1.0)
    # regionprops' feret_diameter_max on the same outline
    assert particle.feret_max_px == pytest.approx(regionprops(label(mask))[0].feret_diameter_max, abs=1e-6)


def test_rotated_rectangle_min_feret_is_its_width():
    rows, cols = np.mgrid[:200, :200].astype(float)
    angle = math.radians(30)
    u = (cols - 100) * math.cos(angle) + (rows - 100) * math.sin(angle)
    v = -(cols - 100) * math.sin(angle) + (rows - 100) * math.cos(angle)
    mask = (np.abs(u) <= 50) & (np.abs(v) <= 10)  # 100 x 20
    (particle,) = measure_particles(mask, min_area_px=0)
    assert particle.feret_min_px == pytest.approx(20.0, abs=1.0)
    assert particle.feret_max_px == pytest.approx(math.hypot(100, 20), abs=1.5)


def test_feret_max_matches_regionprops_within_rounding():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = ellipse((90, 90), rng.uniform(8, 40), rng.uniform(5, 20), (45, 45), rng.uniform(0, math.pi))
        (particle,) = measure_particles(mask, min_area_px=0)
        reference = regionprops(label(mask))[0].feret_diameter_max
        # regionprops measures the outline of the convex-hull image, rounded outwards to pixels
        assert reference - 1.5 <= particle.feret_max_px <= reference + 1e-9


def test_vectorised_hull_equals_qhull():
    rng = np.random.default_rng(1)
    for _ in range(200):
        mask = ellipse((40, 40), rng.uniform(1, 25), rng.uniform(0.6, 10), rng.uniform(5, 35, 2), rng.uniform(0, 4))
        mask ^= rng.random((40, 40)) < 0.03
        for region in regionprops(label(mask, connectivity=2)):
            piece = region.image
            expected = feret_diameters(outline_points(piece))
            np.testing.assert_allclose(calipers_of_hull(outline_hull(piece))[:3], expected, atol=1e-9)
            hull = ConvexHull(outline_points(piece))
            assert len(outline_hull(piece)) == len(hull.vertices)


def test_feret_angle_is_imagej_s():
    mask = np.zeros((60, 60), bool)
    mask[10:13, 5:45] = True  # a bar along x: its diameter runs corner to corner, nearly 0 degrees
    mask[20:50, 50:53] = True  # a bar along y: nearly 90 degrees
    rows, cols = np.mgrid[:60, :60]
    mask |= (np.abs(rows - cols - 25) <= 1) & (rows >= 35) & (rows < 55)  # going down to the right
    bar_x, bar_y, diagonal = _by_centroid(measure_particles(mask, min_area_px=0, split_touching=False))
    # Corner to corner of the outline (pixel-edge midpoints): 2 rows down and 40 columns across
    # the 3 x 40 bar, one way round (177.1 degrees) or the other (2.9): equally long, the smaller.
    assert bar_x.feret_angle_deg == pytest.approx(math.degrees(math.atan2(2, 40)))
    assert bar_y.feret_angle_deg == pytest.approx(90 - math.degrees(math.atan2(2, 30)))
    assert 130 < diagonal.feret_angle_deg < 145  # down to the right, about -45 = 135 (139: corner to corner)
    assert bar_x.row()["feret_angle_deg"] == round(bar_x.feret_angle_deg, 2)
    square = np.zeros((20, 20), bool)
    square[5:15, 5:15] = True
    (particle,) = measure_particles(square, min_area_px=0)
    # four equally long corner-to-corner pairs (9 by 10 px apart): 42.0, 48.0, 132.0, 138.0 degrees
    assert particle.feret_angle_deg == pytest.approx(math.degrees(math.atan2(9, 10)))


def _by_centroid(particles):
    """The three bars of `test_feret_angle_is_imagej_s`: along x, along y, diagonal."""
    bar_x = min(particles, key=lambda p: p.centroid_row_px)
    bar_y = max(particles, key=lambda p: p.centroid_col_px)
    (diagonal,) = [p for p in particles if p not in (bar_x, bar_y)]
    return bar_x, bar_y, diagonal


def test_two_touching_discs_are_split_in_two():
    mask = disc((100, 140), 20, (50, 45)) | disc((100, 140), 20, (50, 85))  # touching at one column
    assert measure_particles(mask).__len__() == 2
    particles = measure_particles(mask, min_area_px=0)
    assert len(particles) == 2
    for particle in particles:
        assert particle.diameter_px == pytest.approx(40, rel=0.05)
    assert sum(p.area_px for p in particles) == mask.sum()
    # and overlapping ones, and unequal ones
    assert len(measure_particles(disc((100, 140), 20, (50, 45)) | disc((100, 140), 20, (50, 75)))) == 2
    assert len(measure_particles(disc((100, 140), 30, (50, 45)) | disc((100, 140), 8, (50, 83)), min_area_px=0)) == 2
    # without splitting they are one
    assert len(measure_particles(mask, split_touching=False)) == 1


def test_ellipses_and_rough_discs_are_not_over_split():
    rng = np.random.default_rng(2)
    for _ in range(40):
        a = rng.uniform(5, 60)
        b = a / rng.uniform(1, 2.5)
        n = int(2 * a + 12)
        mask = ellipse((n, n), a, b, (n / 2 + rng.uniform(-1, 1), n / 2 + rng.uniform(-1, 1)), rng.uniform(0, math.pi))
        assert len(measure_particles(mask, min_area_px=0)) == 1, (a, b)
    for _ in range(10):  # a segmentation's ragged edge
        mask = disc((100, 100), 35, (50, 50))
        mask ^= disc((100, 100), 40, (50, 50)) & ~disc((100, 100), 31, (50, 50)) & (rng.random((100, 100)) < 0.3)
        assert len(measure_particles(mask, min_area_px=30)) == 1


def test_edge_particles_are_flagged_and_left_out_of_statistics():
    mask = disc((100, 100), 10, (50, 50)) | disc((100, 100), 15, (3, 40))
    particles = measure_particles(mask, 0.5)
    assert [p.touches_edge for p in particles] == [True, False]
    summary = summarise(particles, mask.shape, 0.5)
    assert summary["count"] == 2 and summary["count_edge"] == 1 and summary["count_measured"] == 1
    inner = particles[1]
    assert summary["diameter_median"] == pytest.approx(inner.diameter_nm)
    assert summary["diameter_std"] is None  # one particle
    assert summary["area_fraction"] == pytest.approx(mask.sum() / mask.size)
    both = summarise(particles, mask.shape, 0.5, include_edge=True)
    assert both["count_measured"] == 2
    assert both["diameter_mean"] == pytest.approx(np.mean([p.diameter_nm for p in particles]))
    assert both["diameter_std"] == pytest.approx(np.std([p.diameter_nm for p in particles], ddof=1))


def test_holes_are_filled():
    annulus = disc((80, 80), 25, (40, 40)) & ~disc((80, 80), 10, (40, 40))
    (particle,) = measure_particles(annulus, min_area_px=0)
    assert particle.area_px == disc((80, 80), 25, (40, 40)).sum()
    (unfilled,) = measure_particles(annulus, min_area_px=0, fill=False)
    assert unfilled.area_px == annulus.sum()
    # a gap open to the image border is no hole
    cup = annulus.copy()
    cup[:40, 35:46] = False
    cup[:16] = False
    assert measure_particles(cup, min_area_px=0)[0].area_px == cup.sum()


def test_min_area_drops_specks():
    mask = disc((100, 100), 20, (50, 50))
    mask[5:8, 5:8] = True  # 9 px
    pixel_size = 0.1  # 9 px = 0.09 nm2, the disc ~12.6 nm2
    assert len(measure_particles(mask, pixel_size)) == 1  # default 1 nm2
    assert len(measure_particles(mask, pixel_size, min_area_nm2=0.05)) == 2
    assert len(measure_particles(mask, pixel_size, min_area_nm2=20)) == 0
    assert len(measure_particles(mask, min_area_px=5)) == 2
    assert len(measure_particles(mask)) == 1  # no pixel size: 16 px by default
    with pytest.raises(ValueError, match="pixel size"):
        measure_particles(mask, min_area_nm2=1.0)
    with pytest.raises(ValueError, match="not both"):
        measure_particles(mask, 0.1, min_area_nm2=1.0, min_area_px=5)


def test_empty_mask_gives_a_clean_summary():
    for pixel_size in (None, 0.2):
        particles = measure_particles(np.zeros((64, 64), np.uint8), pixel_size)
        assert particles == []
        summary = summarise(particles, (64, 64), pixel_size)
        text = json.dumps(summary, allow_nan=False)
        assert summary["count"] == 0 and summary["diameter_mean"] is None and summary["area_fraction"] == 0
        assert json.loads(text)["diameter_unit"] == ("px" if pixel_size is None else "nm")


def test_mean_probability_per_particle():
    mask = disc((80, 120), 15, (40, 30)) | disc((80, 120), 15, (40, 90))
    probability = np.where(mask, 0.6, 0.0)
    probability[:, 60:] *= 1.5  # the right particle: 0.9
    probability[40, 30] = 0.0
    first, second = measure_particles(mask, probability=probability)
    assert first.mean_probability == pytest.approx(0.6 - 0.6 / mask[:, :60].sum())
    assert second.mean_probability == pytest.approx(0.9)
    with pytest.raises(ValueError, match="shape"):
        measure_particles(mask, probability=probability[:10])


def test_no_pixel_size_gives_pixels_and_none():
    (particle,) = measure_particles(disc((50, 50), 10, (25, 25)), float("nan"))
    assert particle.diameter_nm is None and particle.area_nm2 is None and particle.feret_max_nm is None
    summary = summarise([particle], (50, 50))
    assert summary["diameter_unit"] == "px" and summary["diameter_mean"] == pytest.approx(particle.diameter_px)


def test_writers(tmp_path):
    mask = disc((60, 60), 10, (20, 20)) | disc((60, 60), 8, (45, 40))
    particles, labels = measure_particles(mask, 0.3, return_labels=True)
    assert labels.max() == 2 and set(np.unique(labels[mask])) == {1, 2} and not labels[~mask].any()
    for particle in particles:
        assert (labels == particle.id).sum() == particle.area_px
    write_particles_csv(tmp_path / "p.csv", particles)
    with open(tmp_path / "p.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 2
    # rounded to a hundredth of the pixel size (0.003 nm) and a hundredth of a px
    assert float(rows[1]["diameter_nm"]) == pytest.approx(particles[1].diameter_nm, abs=0.0015)
    assert rows[1]["diameter_nm"] == f"{particles[1].diameter_nm:.3f}".rstrip("0")
    assert float(rows[1]["x_px"]) == round(particles[1].centroid_col_px, 2)  # x is the column, as in ImageJ
    assert float(rows[1]["y_px"]) == round(particles[1].centroid_row_px, 2)
    assert rows[0]["mean_probability"] == "" and rows[0]["intensity_mean"] == ""  # no probability, no image
    write_particles_csv(tmp_path / "empty.csv", [])
    assert (tmp_path / "empty.csv").read_text().strip() == ",".join(COLUMNS)
    write_labels(tmp_path / "labels.tif", labels, 0.3)
    written = tifffile.imread(tmp_path / "labels.tif")
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, labels)
    with pytest.raises(ValueError, match="65535"):
        write_labels(tmp_path / "big.tif", np.full((2, 2), 70000))


def test_demo_masks_match_the_recorded_particles(tmp_path):
    from tem_rf.core.files import read_csv
    from tem_rf.data.reading import read_mask
    from tem_rf.data.synthetic import write_demo_dataset

    info = write_demo_dataset(tmp_path / "demo", num_images=4, size=256, kind="low_res", seed=3, pixel_size_nm=0.5)
    measured, recorded = [], []
    for mask_path, csv_path in zip(info["labels"], info["particles"]):
        mask = read_mask(tmp_path / "demo" / mask_path)
        particles = measure_particles(mask, info["pixel_size_nm"])
        measured += [p.diameter_nm for p in particles if not p.touches_edge]
        recorded += [float(r["diameter_nm"]) for r in read_csv(tmp_path / "demo" / csv_path)
                     if r["touches_edge"] == "False"]
    assert len(recorded) >= 10
    assert abs(len(measured) - len(recorded)) <= 0.05 * len(recorded)
    assert np.median(measured) == pytest.approx(np.median(recorded), rel=0.05)


# ---------------------------------------------------------------------------------------------
# The vectorised path (all particles at once) equals the per-particle reference


def _touching_ellipses(size, seed, diameter=(8.0, 40.0)):
    """Ellipses on a jittered grid, about half touching a neighbour, a few with holes, some cut
    by the edge: every branch of the splitting and measuring."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    spacing = 0.9 * diameter[1]
    for row in np.arange(0.3 * spacing, size, spacing):
        for col in np.arange(0.3 * spacing, size, spacing):
            shape = ellipse((size, size), rng.uniform(*diameter) / 2, rng.uniform(*diameter) / 3,
                            (row + rng.uniform(-3, 3), col + rng.uniform(-3, 3)), rng.uniform(0, math.pi))
            if rng.random() < 0.05:
                shape &= ~disc((size, size), 1.5, (row, col))
            mask |= shape
    return mask


def _assert_same_particles(fast, reference):
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference):
        for name in FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(y, float) and name == "mean_probability":
                assert x == pytest.approx(y, rel=1e-6)  # summed in float64, the reference in float32
            elif isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-12, abs=1e-12), name
            else:
                assert x == y, name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_measuring_equals_the_per_particle_reference(seed):
    from reference_measure import measure_particles_each

    rng = np.random.default_rng(seed)
    masks = [_touching_ellipses(192, seed)]
    for sigma in (1.5, 3.0, 6.0):  # irregular blobs, specks and thin shapes
        noise = ndimage.gaussian_filter(rng.random((150, 170)), sigma)
        masks.append(noise > np.quantile(noise, 0.55))
    masks.append(rng.random((60, 70)) > 0.6)
    rows, cols = np.mgrid[:120, :130]
    radius = np.hypot(rows - 60, cols - 60)  # a ring holding a particle and an open ring: one particle
    masks.append(((radius > 40) & (radius < 50)) | (radius < 10) | ((radius > 20) & (radius < 30) & (cols < 90)))
    edge_particles = 0
    for mask in masks:
        probability = rng.random(mask.shape).astype(np.float32)
        for options in ({"min_area_px": 0}, {"min_area_px": 25}, {"min_area_px": 10, "split_touching": False},
                        {"min_area_px": 10, "fill": False}):
            reference, reference_labels = measure_particles_each(mask, 0.3, probability=probability, **options)
            fast, labels = measure_particles(mask, 0.3, probability=probability, return_labels=True, **options)
            np.testing.assert_array_equal(labels, reference_labels)
            _assert_same_particles(fast, reference)
            edge_particles += sum(p.touches_edge for p in fast)
    assert edge_particles > 0


def test_vectorised_measuring_of_given_labels_equals_the_reference():
    from reference_measure import measure_each
    from tem_rf.particles.measure import measure_labels

    labels = label(_touching_ellipses(160, 3)).astype(np.int32)
    labels[labels == 5] = 0  # ids need not be consecutive
    labels[:20, :20][labels[:20, :20] > 0] = 7  # nor one piece
    _assert_same_particles(measure_labels(labels, 0.5), measure_each(labels, 0.5))


def test_the_number_of_threads_does_not_change_the_particles():
    from reference_measure import measure_particles_each

    rng = np.random.default_rng(4)
    noise = ndimage.gaussian_filter(rng.random((200, 230)), 3.0)
    for mask in (_touching_ellipses(256, 5), noise > np.quantile(noise, 0.5)):
        probability = rng.random(mask.shape).astype(np.float32)
        reference, reference_labels = measure_particles_each(mask, 0.3, probability=probability, min_area_px=10)
        assert len(reference) > 20
        for threads in (1, 3, 7):
            particles, labels = measure_particles(mask, 0.3, probability=probability, min_area_px=10,
                                                  return_labels=True, threads=threads)
            np.testing.assert_array_equal(labels, reference_labels)
            _assert_same_particles(particles, reference)
    with pytest.raises(ValueError, match="threads"):
        measure_particles(mask, threads=0)


def test_runs_and_their_sums_equal_a_pixel_by_pixel_count():
    from tem_rf.particles.measurements import Runs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(37, 23)).astype(np.int32)
    labels[5] = 2  # a run filling a whole row, and rows ending and starting with the same label
    labels[6, 0] = labels[4, -1] = 2
    labels[-1, -3:] = 3  # the last run ends the image
    values = rng.random(labels.shape).astype(np.float32)
    runs = Runs.of(labels)
    expected = []
    for row in range(labels.shape[0]):
        col = 0
        while col < labels.shape[1]:
            end = col
            while end + 1 < labels.shape[1] and labels[row, end + 1] == labels[row, col]:
                end += 1
            if labels[row, col]:
                expected.append((labels[row, col], row, col, end, float(values[row, col : end + 1].sum())))
            col = end + 1
    got = list(zip(runs.label.tolist(), runs.row.tolist(), runs.first.tolist(), runs.last.tolist()))
    assert got == [e[:4] for e in expected]
    np.testing.assert_allclose(runs.sums(values), [e[4] for e in expected], rtol=1e-6)
    assert Runs.of(np.zeros((3, 4), np.int32)).sums(values[:3, :4]).shape == (0,)


def _blob_components(seed: int):
    """Padded component boxes of irregular blobs, salt noise and overlapping discs."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random((120, 110)), 2.5)
    rows, cols = np.mgrid[:120, :120]
    discs = np.zeros((120, 120), bool)
    for _ in range(14):
        r, c, radius = rng.uniform(0, 120, 2).tolist() + [rng.uniform(2, 20)]
        discs |= (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
    for mask in (noise > np.quantile(noise, 0.45), rng.random((50, 50)) > 0.4, discs):
        components, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            yield np.pad(components[box] == index, 1)


@pytest.mark.parametrize("level_sets_up_to", [16, 2])  # the default, and most many-peaked ones falling back
def test_h_maxima_by_level_sets_equal_the_reconstruction(level_sets_up_to, monkeypatch):
    from tem_rf.particles import watershed

    reference = watershed._markers_by_reconstruction
    fallbacks = []
    monkeypatch.setattr(watershed, "LEVEL_SETS_UP_TO", level_sets_up_to)
    monkeypatch.setattr(watershed, "_markers_by_reconstruction", lambda *args: fallbacks.append(1) or reference(*args))
    split = 0
    for seed in (0, 1):
        for padded in _blob_components(seed):
            distance = ndimage.distance_transform_edt(padded)
            for depth in (max(2.0, 0.1 * distance.max()), 0.5, 1.0, 3.7):
                markers, count = watershed.h_maxima_markers(distance, padded, depth)
                expected, expected_count = reference(distance, padded, depth)
                if max(count, expected_count) <= 1:
                    continue  # one h-maximum (scikit-image finds none when it spans the box)
                split += 1
                assert count == expected_count
                np.testing.assert_array_equal(markers, expected)
    assert split > 20
    assert fallbacks  # both ways were taken


def test_squared_distances_equal_scipy_s(monkeypatch):
    from tem_rf.particles import watershed

    rng = np.random.default_rng(3)
    masks = [np.pad(ndimage.gaussian_filter(rng.random((90, 130)), 3) > 0.5, 1), rng.random((40, 50)) > 0.3,
             np.pad(np.ones((301, 257), bool), 1)]  # a blob reaching the border; distances up to 129
    masks[1][0] = True
    for mask in masks:
        expected = ndimage.distance_transform_edt(mask)
        squared = watershed.squared_distances(mask)
        np.testing.assert_array_equal(squared, watershed.scipy_squared_distances(mask))
        np.testing.assert_array_equal(np.sqrt(squared.astype(np.float64)), expected)
    # Beyond float32's exact integers it falls back to SciPy.
    monkeypatch.setattr(watershed, "_FLOAT32_EXACT", 100)
    assert watershed.squared_distances(masks[2]).dtype == np.int32


def test_local_maxima_equal_the_3x3_maximum_filter_s():
    from tem_rf.particles.watershed import local_maxima

    rng = np.random.default_rng(5)
    for values in (rng.integers(0, 4, (40, 53)).astype(np.float32), rng.random((31, 29))):  # plateaus, then not
        inside = rng.random(values.shape) > 0.3
        expected = np.flatnonzero((values == ndimage.maximum_filter(values, size=3)) & inside)
        np.testing.assert_array_equal(local_maxima(values, inside), expected)  # border inside: the filter
        inside[[0, -1]] = False
        inside[:, [0, -1]] = False
        expected = np.flatnonzero((values == ndimage.maximum_filter(values, size=3)) & inside)
        np.testing.assert_array_equal(local_maxima(values, inside), expected)
