"""tem_rf.study.instances: particle instances of a network or the Fourier filter scored against
instance ground truth (F1, IoU, counts, diameter distributions)."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from tem_rf.core.errors import InputError
from tem_rf.data.synthetic import make_micrograph
from tem_rf.serve.signatures import SIGNATURE_OUTPUT
from tem_rf.serve.predictor import Predictor
from tem_rf.data.instance_masks import read_instance_labels as read_instances
from tem_rf.study.instances import FourierOptions, measure_instances

PIXEL_SIZE_NM = 0.5
# Radius-8 discs: two touching (one particle each in the truth), one cut by the image edge.
DISCS = [(20, 20, 8), (20, 60, 8), (70, 30, 8), (70, 46, 8), (100, 124, 8), (40, 100, 6)]


def _threshold_predictor():
    """Particle wherever the standardised image is above 0: a perfect network for bright discs."""

    def function(images):
        return {SIGNATURE_OUTPUT: (np.asarray(images)[..., 0] > 0).astype(np.float32)}

    return Predictor(function, {"size_divisor": 4, "halo_px": 0, "pixel_size_nm": PIXEL_SIZE_NM,
                                "architecture": "stub"}, "stub")


def _instances(shape, discs):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for index, (row, col, radius) in enumerate(discs, start=1):
        labels[((rows - row) ** 2 + (cols - col) ** 2 <= radius**2) & (labels == 0)] = index
    return labels


def _write_pair(folder, name, discs=DISCS, shape=(112, 128), binary=False, seed=0):
    (folder / "images").mkdir(exist_ok=True)
    (folder / "labels").mkdir(exist_ok=True)
    labels = _instances(shape, discs)
    image = np.where(labels > 0, 1000.0, 200.0) + np.random.default_rng(seed).normal(0, 5, shape)
    tifffile.imwrite(folder / "images" / f"{name}.tif", image.astype(np.float32), imagej=True,
                     resolution=(1 / PIXEL_SIZE_NM, 1 / PIXEL_SIZE_NM), metadata={"unit": "nm"})
    if binary:
        Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(folder / "labels" / f"{name}_mask.png")
    else:
        tifffile.imwrite(folder / "labels" / f"{name}.tif", labels)  # instance ids, as EMPS
    return labels


def test_read_instances_keeps_ids_and_splits_a_binary_mask(tmp_path):
    labels = _instances((64, 64), [(20, 20, 8), (20, 35, 8), (50, 50, 5)])  # the first two touch
    tifffile.imwrite(tmp_path / "ids.tif", labels * 7)
    np.testing.assert_array_equal(read_instances(tmp_path / "ids.tif"), labels)  # renumbered 1..3
    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "binary.png")
    components = read_instances(tmp_path / "binary.png")
    assert components.max() == 2  # the touching pair is one component of a binary mask
    Image.fromarray(np.full((8, 8), 3, np.uint8) * np.eye(8, dtype=np.uint8) + 1).save(tmp_path / "x.png")
    with pytest.raises(InputError, match=r"x\.png: mask is neither binary nor instance ids"):
        read_instances(tmp_path / "x.png")


def test_a_perfect_network_scores_f1_one(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b", discs=[(30, 30, 10), (80, 90, 7)], seed=1)
    run = measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out",
                            predictor=_threshold_predictor(), tile_size=32, min_particle_area_px=20)
    assert [row["true_count"] for row in run.rows] == [6, 2]
    for row in run.rows:
        assert row["f1"] == 1.0 and row["count_error"] == 0 and row["mean_matched_iou"] > 0.97
        assert abs(row["median_diameter_error_percent"]) < 2 and row["diameter_unit"] == "nm"
    pooled = json.loads((tmp_path / "out" / "instances.json").read_text())["pooled"]
    assert pooled["f1"] == 1.0 and pooled["true_count"] == 8 and pooled["images"] == 2
    assert pooled["ks_statistic"] < 0.5 and pooled["true_median_diameter"] == pytest.approx(8.0, rel=0.05)
    lines = (tmp_path / "out" / "instances.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("image,mask,pixel_size_nm,pixel_dice,predicted_count")
    # pixel dice: per micrograph, and pooled over all pixels (not the mean of the two)
    from tem_rf.data.reading import read_micrograph
    from tem_rf.metrics import dice_from_counts
    from tem_rf.serve.segment import segment_image

    counts = []
    for name in ("a", "b"):
        _, mask = segment_image(read_micrograph(tmp_path / "images" / f"{name}.tif").data, _threshold_predictor())
        truth = read_instances(tmp_path / "labels" / f"{name}.tif") > 0
        counts.append(np.array([np.sum(mask.astype(bool) & truth), mask.sum(), truth.sum()]))
    assert [row["pixel_dice"] for row in run.rows] == pytest.approx([dice_from_counts(*c) for c in counts])
    assert pooled["pixel_dice"] == pytest.approx(dice_from_counts(*sum(counts)))
    assert 0.99 < run.rows[0]["pixel_dice"] < 1.0 == run.rows[1]["pixel_dice"]
    assert run.table_lines()[-1].startswith("pooled")


def test_missing_and_split_particles_are_counted(tmp_path):
    # The truth holds a particle the image does not show (a miss), and the touching pair is one
    # particle in a binary mask (so the network's two halves are one match and one false positive).
    truth = _write_pair(tmp_path, "a", binary=True)
    (tmp_path / "images" / "a.tif").unlink()
    labels = truth.copy()
    labels[:, :] = _instances(truth.shape, DISCS[:5] + [(95, 20, 7)])
    image = np.where(labels > 0, 1000.0, 200.0) + np.random.default_rng(0).normal(0, 5, truth.shape)
    image[labels == 6] = 200.0  # the sixth particle is not in the image
    tifffile.imwrite(tmp_path / "images" / "a.tif", image.astype(np.float32), imagej=True,
                     resolution=(2.0, 2.0), metadata={"unit": "nm"})
    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(tmp_path / "labels" / "a_mask.png")
    run = measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out",
                            predictor=_threshold_predictor(), min_particle_area_px=20)
    (row,) = run.rows
    # truth: 5 components (pair merged) ; predicted: 5 particles (pair split) -> one pair half unmatched
    assert row["true_count"] == 5 and row["predicted_count"] == 5
    assert row["matched"] == 3 and row["false_negatives"] == 2 and row["false_positives"] == 2
    assert row["f1"] == pytest.approx(0.6)


def test_fourier_method_runs_on_lattice_micrographs(tmp_path):
    for index in range(2):
        image, mask = make_micrograph("high_res", size=128, pixel_size_nm=0.05, rng=index)
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        tifffile.imwrite(tmp_path / "images" / f"m{index}.tif", np.rint(image).astype(np.uint16), imagej=True,
                         resolution=(20.0, 20.0), metadata={"unit": "nm"})
        Image.fromarray(mask * np.uint8(255)).save(tmp_path / "labels" / f"m{index}_mask.png")
    run = measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", method="fourier",
                            fourier=FourierOptions(lattice_spacings_nm=(0.235, 0.204), sigma_px=3.0),
                            min_particle_area_px=30)
    assert run.method == "fourier" and len(run.rows) == 2
    assert all(len(row["band_cycles_per_px"]) == 2 for row in run.rows)
    summary = json.loads((tmp_path / "out" / "instances.json").read_text())
    assert summary["method"] == "fourier" and summary["fourier"]["lattice_spacings_nm"] == [0.235, 0.204]
    assert summary["pooled"]["true_count"] > 0 and "Fourier filter: lattice_spacings_nm" in run.description


def test_bad_pairs_and_existing_outputs_are_refused_before_writing(tmp_path):
    _write_pair(tmp_path, "a")
    tifffile.imwrite(tmp_path / "labels" / "a.tif", np.zeros((100, 128), np.uint16))
    with pytest.raises(InputError, match=r"labels/a\.tif: is 100x128 px, but its micrograph a\.tif is 112x128 px"):
        measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", predictor=_threshold_predictor())
    assert not (tmp_path / "out").exists()
    (tmp_path / "labels" / "a.tif").unlink()
    with pytest.raises(InputError, match="no masks found"):
        measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", predictor=_threshold_predictor())
    _write_pair(tmp_path, "a")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "instances.json").write_text("{}")
    with pytest.raises(InputError, match=r"out: already holds instances\.json; pass --overwrite"):
        measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", predictor=_threshold_predictor())
    with pytest.raises(InputError, match="--model is needed with --method=network"):
        measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out2")
    measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", predictor=_threshold_predictor(),
                      overwrite=True, min_particle_area_px=20)
    assert json.loads((tmp_path / "out" / "instances.json").read_text())["pooled"]["f1"] == 1.0


def test_a_full_disk_during_overwrite_keeps_the_previous_pair(tmp_path, monkeypatch):
    from tem_rf.core import files

    _write_pair(tmp_path, "a")
    measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", predictor=_threshold_predictor())
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    real_dumps = files.json.dumps

    def disk_full(*args, **kwargs):  # the CSV is written, then the JSON fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.json, "dumps", disk_full)
    with pytest.raises(InputError, match=r"out: cannot write the results: No space left on device"):
        measure_instances(tmp_path / "images", tmp_path / "labels", tmp_path / "out", predictor=_threshold_predictor(),
                          threshold=0.9, overwrite=True)
    monkeypatch.setattr(files.json, "dumps", real_dumps)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # old CSV and JSON, no temporary
