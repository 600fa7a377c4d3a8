"""The overlay: outlines by kind, particle ids where the table has them, a scale bar that is as
long as it says, and a legend below the micrograph."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

from tem_rf.serve.overlay import (
    EDGE_COLOUR, KEY_BACKGROUND, MASK_OUTLINE_COLOUR, OVERLAY_COLOUR, SCALE_BAR_COLOUR, scale_bar, write_overlay,
)


@pytest.mark.parametrize("width, pixel_size_nm, factor, label, length", [
    (1000, 0.5, 1, "100 nm", 200),  # a fifth of 1000 px is 100 nm
    (500, None, 2, "200 px", 100),  # no pixel size: micrograph pixels
    (1000, 10.0, 4, "5 µm", 125),  # 8 µm wanted: the round length below it
    (300, 0.0178, 1, "1 nm", 56),
])
def test_the_scale_bar_is_a_round_length_near_a_fifth_of_the_width(width, pixel_size_nm, factor, label, length):
    bar = scale_bar(width, pixel_size_nm, factor)
    assert (bar.label, bar.length_px) == (label, length)
    micrometres = bar.value * (1000 if bar.unit == "µm" else 1)
    assert bar.length_px * factor * (pixel_size_nm or 1) == pytest.approx(micrometres, rel=0.01)


def _field(shape=(300, 400)):
    labels = np.zeros(shape, np.uint16)
    for ident, (row, col, radius) in enumerate([(80, 100, 40), (200, 250, 30), (150, 392, 20), (60, 300, 6)], 1):
        labels[disk((row, col), radius, shape=shape)] = ident
    image = np.where(labels > 0, 800.0, 200.0) + np.random.default_rng(0).normal(0, 5, shape)
    speck = np.zeros(shape, bool)
    speck[270:273, 30:33] = True  # in the mask, not a particle
    return image.astype(np.float32), (labels > 0) | speck, labels


def test_ids_sit_on_their_particles_edge_particles_differ_and_the_key_is_below(tmp_path):
    image, mask, labels = _field()
    key = write_overlay(tmp_path / "o.png", image, mask, labels=labels, pixel_size_nm=0.25)
    shown = np.asarray(Image.open(tmp_path / "o.png"))
    height = labels.shape[0]
    assert key.factor == 1 and key.image_shape == labels.shape and shown.shape[0] > height
    micrograph, strip = shown[:height], shown[height:]
    # the large round particles get their id, written on them; the 12 px one is too small for text
    assert sorted(key.ids) == [1, 2, 3]
    for ident, (row, col) in key.ids.items():
        assert labels[row, col] == ident
        patch = micrograph[row - 4:row + 5, col - 6:col + 7]
        assert (patch.min(axis=-1) > 240).any()  # white text
    # outlines: particle 3 touches the right edge (cyan), the others red, the speck amber
    assert (micrograph[labels == 3] == EDGE_COLOUR).all(axis=-1).any()
    assert not (micrograph[labels != 3] == EDGE_COLOUR).all(axis=-1).any()
    assert (micrograph[labels == 1] == OVERLAY_COLOUR).all(axis=-1).any()
    assert (micrograph[268:275, 28:35] == MASK_OUTLINE_COLOUR).all(axis=-1).any()
    # the key: black, a white bar as long as the scale bar says (400 px x 0.25 nm: 20 nm = 80 px)
    assert key.scale_bar.label == "20 nm" and key.scale_bar.length_px == 80
    white = (strip == SCALE_BAR_COLOUR).all(axis=-1)
    runs = [np.diff(np.flatnonzero(np.diff(np.r_[0, row, 0]))).max(initial=0) if row.any() else 0
            for row in white.astype(int)]
    assert max(runs) == 80
    assert (strip == KEY_BACKGROUND).all(axis=-1).mean() > 0.5
    for colour in (OVERLAY_COLOUR, EDGE_COLOUR, MASK_OUTLINE_COLOUR):  # the legend's swatches
        assert (strip == colour).all(axis=-1).any()


def test_without_particles_only_the_mask_and_a_pixel_scale_bar(tmp_path):
    image, mask, _ = _field()
    key = write_overlay(tmp_path / "o.png", image, mask)
    shown = np.asarray(Image.open(tmp_path / "o.png"))
    assert key.ids == {} and key.scale_bar.unit == "px"
    assert not (shown == EDGE_COLOUR).all(axis=-1).any()
    assert key.record() == {"block_factor": 1, "scale_bar": "50 px", "scale_bar_px": 50, "ids_shown": 0}
