"""What segment writes about the particles: a histogram per micrograph and for the pool, and a
summary row per micrograph."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tem_rf.serve.particle_reports import SUMMARY_COLUMNS, size_histogram_figure



def _threshold_predictor():
    """A stub network: particle wherever the standardised image is above 0."""
    from tem_rf.serve.signatures import SIGNATURE_OUTPUT
    from tem_rf.serve.predictor import Predictor

    def function(images):
        return {SIGNATURE_OUTPUT: (np.asarray(images)[..., 0] > 0).astype(np.float32)}

    return Predictor(function, {"size_divisor": 4, "halo_px": 0, "pixel_size_nm": 0.5, "architecture": "stub"}, "stub")


def _disc_micrograph(path, discs=((30, 30, 8), (60, 80, 8), (90, 40, 8)), shape=(112, 128), seed=0):
    import tifffile

    rows, cols = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for row, col, radius in discs:
        mask |= (rows - row) ** 2 + (cols - col) ** 2 <= radius**2
    image = np.where(mask, 1000.0, 200.0) + np.random.default_rng(seed).normal(0, 5, shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, image.astype(np.float32), imagej=True, resolution=(2.0, 2.0), metadata={"unit": "nm"})
    return path, mask


def test_sizes_that_nearly_agree_get_plain_tick_labels():
    figure = size_histogram_figure(["a.tif"], [np.array([190.329, 190.32901, 190.32902])], "nm")
    figure.canvas.draw()
    axes = figure.axes[0]
    assert axes.xaxis.get_major_formatter().get_offset() == ""
    labels = [t.get_text() for t in axes.get_xticklabels() if t.get_text()]
    assert labels and all("e" not in text and "+" not in text for text in labels)
    assert "in a.tif" in axes.get_title() and axes.get_legend() is None  # one micrograph: no legend
    assert axes.get_xlabel() == "equivalent-circle diameter (nm)"


def test_each_micrograph_gets_a_histogram_and_a_summary_row(tmp_path):
    from tem_rf.serve.segment_batch import segment_files

    first, _ = _disc_micrograph(tmp_path / "in" / "first.tif")
    second, _ = _disc_micrograph(tmp_path / "in" / "second.tif", discs=[(40, 40, 10), (80, 90, 12)], seed=1)
    results, failures = segment_files([first, second], _threshold_predictor(), tmp_path / "out", progress=False,
                                      min_particle_area_px=20)
    assert not failures
    out = tmp_path / "out"
    for result in results:
        assert Image.open(result.histogram).format == "PNG" and result.histogram.endswith("_sizes.png")
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["micrograph"] for r in rows] == ["first.tif", "second.tif"]
    assert list(rows[0])[2:] == list(SUMMARY_COLUMNS)
    for row, result in zip(rows, results):
        assert int(row["count"]) == result.particles["count"]
        assert int(row["count_edge"]) == result.particles["count_edge"]
        assert float(row["diameter_median"]) == pytest.approx(result.particles["diameter_median"])
        assert (row["pixel_size_nm"], row["pixel_size_source"], row["diameter_unit"]) == ("0.5", "file", "nm")
    assert rows[1]["count"] == "2" and float(rows[1]["diameter_median"]) == pytest.approx(11.0, rel=0.05)
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["summary_csv"] == str(out / "summary.csv")
    assert summary["results"][0]["histogram"] == str(out / "first_sizes.png")
