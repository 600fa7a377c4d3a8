"""Info bars and user regions: found where they are, never in sample content, left out of particles."""

import numpy as np
import pytest

from tem_rf.data.burned_in import (
    InfoBar, detect_info_bar, exclusion_mask, exclusion_record, find_info_bar, format_regions, parse_regions,
)
from tem_rf.core.errors import InputError
from tem_rf.data.synthetic import make_micrograph
from tem_rf.particles import measure_particles


def with_info_bar(image: np.ndarray, rows: int, value: float, top: bool = False) -> np.ndarray:
    """``image`` with a microscope's info bar appended: a flat strip, a line of 'text' and a ruler."""
    height, width = image.shape
    bar = np.full((rows, width), value, dtype=np.float64)
    text = image.max() if value < image.mean() else image.min()
    for start in range(10, width // 2, 9):  # letters: 5x6 blocks in one line
        bar[rows // 3: rows // 3 + 6, start:start + 5] = text
    bar[rows // 2:rows // 2 + 2, width - 120:width - 20] = text  # a ruler
    return np.vstack([bar, image]) if top else np.vstack([image, bar])


@pytest.fixture(scope="module")
def sem_image():
    image, mask = make_micrograph("low_res", 256, 0.5, np.random.default_rng(1))
    return image.astype(np.float64), mask


@pytest.mark.parametrize("rows,value,top", [(30, 0.0, False), (24, 4000.0, False), (18, 0.0, True)])
def test_an_appended_bar_is_found_to_the_row(sem_image, rows, value, top):
    image, _ = sem_image
    found = detect_info_bar(with_info_bar(image, rows, value, top))
    assert found == (InfoBar(top=rows) if top else InfoBar(bottom=rows))


def test_sample_content_is_never_taken_for_a_bar(sem_image):
    image, mask = sem_image
    assert detect_info_bar(image) == InfoBar()
    # A dark field whose bottom rows are flat vacuum around particles, as HAADF images are:
    # flat, but no full-width edge separates it from the rest.
    dark = np.where(mask, 3000.0, 0.0)
    dark[-40:] = np.where(mask[-40:], 3000.0, 0.0)
    assert detect_info_bar(dark) == InfoBar()
    assert detect_info_bar(np.full((64, 64), 7.0)) == InfoBar()  # constant: nothing to tell apart
    assert not InfoBar() and InfoBar(bottom=3)


def test_regions_parse_as_numpy_slices():
    regions = parse_regions("-60:,: ; 0:40,0:60")
    assert regions == ((slice(-60, None), slice(None, None)), (slice(0, 40), slice(0, 60)))
    assert format_regions(regions) == "-60:,:;0:40,0:60"
    assert parse_regions(None) == () and parse_regions("") == ()
    excluded = exclusion_mask((100, 80), info_bar=InfoBar(top=2), regions=regions)
    assert excluded.sum() == 60 * 80 + 2 * 80 + (40 - 2) * 60  # bottom rows, top bar, the corner below it
    assert exclusion_mask((10, 10)) is None
    for bad in ("0:10", "a:3,:", "1:2:3,:"):
        with pytest.raises(InputError, match="--exclude_regions"):
            parse_regions(bad)


def test_left_out_pixels_cut_particles_as_the_image_edge_does():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True  # whole, away from the region
    mask[25:35, 10:20] = True  # half inside the region below row 30
    excluded = exclusion_mask((40, 40), regions=parse_regions("30:,:"))
    particles, labels = measure_particles(mask, 1.0, exclude=excluded, min_area_px=1, return_labels=True)
    assert [(p.area_px, p.touches_edge) for p in particles] == [(100, False), (50, True)]
    assert not labels[30:].any()
    image = with_info_bar(np.random.default_rng(0).normal(100, 10, (64, 300)), 12, 0.0)
    bar = find_info_bar(image)
    record = exclusion_record(bar, (), exclusion_mask(image.shape, info_bar=bar))
    assert record == {"info_bar_rows": {"top": 0, "bottom": 12}, "regions": None, "pixels": 12 * 300}
    assert find_info_bar(image, "keep") == InfoBar()
    with pytest.raises(InputError, match="--info_bar must be one of auto, keep"):
        find_info_bar(image, "crop")
