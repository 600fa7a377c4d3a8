"""EMPS (github.com/by256/emps, MIT): real literature micrographs with instance-id masks, read as
tem_rf reads a user's. The images are never part of the project: ``TEM_RF_EMPS`` names a folder
holding EMPS's ``images/`` and ``segmaps/``; the tests skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tem_rf.data.particle_sizes import mask_particle_diameters
from tem_rf.data.reading import read_mask_values, read_micrograph

EMPS = Path(os.environ.get("TEM_RF_EMPS", "/nonexistent"))
pytestmark = pytest.mark.skipif(not (EMPS / "segmaps").is_dir(), reason="TEM_RF_EMPS names no EMPS copy")
STEMS = sorted(p.stem for p in (EMPS / "segmaps").glob("*.png"))[:12] if (EMPS / "segmaps").is_dir() else []


@pytest.mark.parametrize("stem", STEMS)
def test_instance_masks_give_one_size_per_whole_particle(stem):
    micrograph = read_micrograph(EMPS / "images" / f"{stem}.png")
    values, binary, rule = read_mask_values(EMPS / "segmaps" / f"{stem}.png")
    assert micrograph.shape == values.shape and micrograph.pixel_size_nm is None  # literature figures: no calibration
    ids = np.unique(values[values > 0])
    instance_ids = rule.startswith("binarised instance-id")
    assert instance_ids or ids.size <= 1  # a figure of one particle is stored as 0/1
    edge = np.unique(np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]]))
    whole = [i for i in ids if i not in edge]
    diameters = mask_particle_diameters(values, binary, instance_ids=instance_ids)
    assert diameters.size == len(whole)
    areas = np.array([(values == i).sum() for i in whole])
    np.testing.assert_allclose(np.sort(diameters), np.sort(np.sqrt(4 * areas / np.pi)))


@pytest.mark.parametrize("stem", STEMS)
def test_the_public_reader_keeps_every_particle_apart(stem):
    from tem_rf.data.instance_masks import read_instance_labels

    values, _, _ = read_mask_values(EMPS / "segmaps" / f"{stem}.png")
    labels = read_instance_labels(EMPS / "segmaps" / f"{stem}.png")
    assert labels.max() == np.unique(values[values > 0]).size
    pairs = np.unique(np.stack([values.ravel(), labels.ravel()]), axis=1)
    assert pairs.shape[1] == labels.max() + 1  # one label per id, one id per label


def test_info_bars_are_found_and_hold_no_particles():
    """The 465 micrographs hold 30 info bars of 20-78 rows and 8 frame lines of 2-3 rows
    (`tem_rf.data.burned_in`, checked by eye); the masks have particles in none of them."""
    from PIL import Image

    from tem_rf.data.burned_in import detect_info_bar

    bars, truth_pixels = [], 0
    for image in sorted((EMPS / "images").glob("*.png")):
        grey = np.asarray(Image.open(image).convert("L"))
        bar = detect_info_bar(grey)
        if bar:
            bars.append(max(bar.top, bar.bottom))
            mask = np.asarray(Image.open(EMPS / "segmaps" / image.name)) > 0
            truth_pixels += int(mask[:bar.top].sum() + mask[mask.shape[0] - bar.bottom:].sum())
    assert sum(rows >= 20 for rows in bars) == 30 and sum(rows <= 3 for rows in bars) == 8 and len(bars) == 38
    assert truth_pixels <= 15
