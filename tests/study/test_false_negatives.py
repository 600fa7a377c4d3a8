"""False-negative maps, their overlap (paper Fig. 7, S7), and the CSV rows."""

import numpy as np
import pytest

from tem_rf.core.files import read_csv, write_csv
from tem_rf.study import false_negatives as analysis
from tem_rf.models import residual_unet


def _disc(size: int = 32, radius: float = 10, centre=(16, 16)) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2).astype(np.int32)


def test_fn_overlap_of_identical_maps_is_one():
    rng = np.random.default_rng(0)
    fn = rng.random((32, 32)) < 0.2
    assert analysis.fn_overlap(fn, fn.copy()) == 1.0
    assert analysis.fn_overlap(fn, ~fn) == 0.0
    empty = np.zeros((32, 32), bool)
    assert analysis.fn_overlap(empty, empty) == 1.0  # both miss nothing: they agree


def test_false_negative_and_positive_maps():
    label = np.array([[1, 1, 0, 0]])
    predicted = np.array([[True, False, True, False]])
    np.testing.assert_array_equal(analysis.false_negative_map(label, predicted), [[False, True, False, False]])
    np.testing.assert_array_equal(analysis.false_positive_map(label, predicted), [[False, False, True, False]])
    with pytest.raises(ValueError, match="differ in shape"):
        analysis.false_negative_map(label, predicted[:, :3])


def test_compare_false_negatives_rows():
    label = _disc()[None].repeat(2, axis=0)
    truth = label.astype(bool)
    left_half = truth.copy()
    left_half[:, :, 16:] = False  # misses the right half of the disc
    right_half = truth.copy()
    right_half[:, :, :16] = False  # misses the left half
    predictions = {"fourier": left_half, "same_as_fourier": left_half.copy(), "opposite": right_half,
                   "perfect": truth}
    rows = analysis.compare_false_negatives(label, predictions, image_info=[{"source": "a"}, {"source": "b"}])
    assert len(rows) == 2 * 4
    by = {(r["image_index"], r["method"]): r for r in rows}
    assert by[(0, "fourier")]["fn_overlap_fourier"] == 1.0
    assert by[(0, "same_as_fourier")]["fn_overlap_fourier"] == 1.0
    assert by[(0, "opposite")]["fn_overlap_fourier"] == 0.0
    assert by[(1, "perfect")]["fn_px"] == 0 and by[(1, "perfect")]["hard_dice"] == 1.0
    assert by[(1, "perfect")]["fn_overlap_fourier"] == 0.0  # fourier misses pixels, it does not
    assert by[(0, "fourier")]["fn_px"] == truth[0, :, 16:].sum()
    assert by[(1, "opposite")]["source"] == "b"

    summary = {s["method"]: s for s in analysis.summarize_fn_overlap(rows)}
    assert summary["same_as_fourier"]["closest_count"] == 2
    assert summary["opposite"]["closest_count"] == 0
    assert summary["same_as_fourier"]["fn_overlap_fourier_mean"] == 1.0
    assert summary["fourier"]["closest_count"] is None
    assert summary["perfect"]["hard_dice_mean"] == 1.0


def test_compare_false_negatives_refuses_mismatches():
    label = _disc()[None]
    with pytest.raises(ValueError, match="reference"):
        analysis.compare_false_negatives(label, {"net": label.astype(bool)})
    with pytest.raises(ValueError, match="differs from labels"):
        analysis.compare_false_negatives(label, {"fourier": np.zeros((1, 16, 16), bool)})


def test_csv_round_trip(tmp_path):
    rows = [{"method": "a", "dice": 0.5}, {"method": "b", "dice": 0.25, "extra": None}]
    path = tmp_path / "out.csv"
    write_csv(path, rows)
    assert read_csv(path) == [
        {"method": "a", "dice": "0.5", "extra": ""},
        {"method": "b", "dice": "0.25", "extra": ""},
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left behind


def test_predict_masks_is_argmax():
    model = residual_unet(2, (2, 2), seed=0)
    images = np.random.default_rng(1).standard_normal((3, 32, 32)).astype(np.float32)
    masks = analysis.predict_masks(model, images, batch_size=2)
    probabilities = np.asarray(model(images[..., None], training=False))
    assert masks.shape == (3, 32, 32) and masks.dtype == bool
    np.testing.assert_array_equal(masks, probabilities.argmax(-1) == 1)
