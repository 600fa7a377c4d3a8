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
