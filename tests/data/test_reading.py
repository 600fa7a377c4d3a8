"""tem_rf.data.reading: micrographs and masks as users have them, and clear errors for bad files."""

import logging
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from tem_rf.data.reading import (
    InputError,
    binarise_mask,
    read_mask,
    read_mask_and_rule,
    read_micrograph,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------- micrographs


def test_uint16_tiff_keeps_full_precision(tmp_path, rng):
    counts = rng.integers(0, 65536, size=(40, 50), dtype=np.uint16)
    counts[0, 0] = 65535  # values far above 255 must survive
    counts[0, 1] = 257  # and must not collapse onto their 8-bit neighbours
    counts[0, 2] = 256
    tifffile.imwrite(tmp_path / "a.tif", counts)
    micrograph = read_micrograph(tmp_path / "a.tif")
    assert micrograph.data.shape == (40, 50)
    assert np.issubdtype(micrograph.data.dtype, np.floating)
    np.testing.assert_array_equal(micrograph.data, counts.astype(np.float64))
    assert micrograph.pixel_size_nm is None
    assert micrograph.path == tmp_path / "a.tif"


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.float64])
def test_wide_types_are_exact(tmp_path, dtype):
    values = np.array([[2**24 + 1, 3], [-5 if dtype != np.uint32 else 5, 2**31 - 1]], dtype=dtype)
    tifffile.imwrite(tmp_path / "w.tif", values)
    data = read_micrograph(tmp_path / "w.tif").data
    assert data.dtype == np.float64  # float32 cannot hold 2**24 + 1
    np.testing.assert_array_equal(data, values.astype(np.float64))


def test_float32_tiff_bit_identical(tmp_path, rng):
    values = rng.normal(size=(16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values)
    data = read_micrograph(tmp_path / "f.tif").data
    assert data.dtype == np.float32
    assert data.tobytes() == values.tobytes()


@pytest.mark.parametrize(
    "unit, per_unit, expected_nm", [("nm", 1 / 0.02152, 0.02152), ("micron", 1 / 0.1243e-3, 0.1243), ("A", 1 / 1.5, 0.15)]
)
def test_pixel_size_from_imagej_metadata(tmp_path, unit, per_unit, expected_nm):
    tifffile.imwrite(
        tmp_path / "a.tif", np.ones((8, 8), np.uint16), imagej=True,
        resolution=(per_unit, per_unit), metadata={"unit": unit},
    )
    assert read_micrograph(tmp_path / "a.tif").pixel_size_nm == pytest.approx(expected_nm, rel=1e-6)


def test_pixel_size_from_centimetre_resolution_and_not_from_dpi(tmp_path):
    pixels_per_cm = 1 / (0.5e-7)  # 0.5 nm pixels
    tifffile.imwrite(
        tmp_path / "cm.tif", np.ones((8, 8), np.uint16),
        resolution=(pixels_per_cm, pixels_per_cm), resolutionunit="CENTIMETER",
    )
    assert read_micrograph(tmp_path / "cm.tif").pixel_size_nm == pytest.approx(0.5)
    # 72 dpi from an image editor is a print size, not a calibration.
    tifffile.imwrite(tmp_path / "dpi.tif", np.ones((8, 8), np.uint16), resolution=(72, 72), resolutionunit="INCH")
    assert read_micrograph(tmp_path / "dpi.tif").pixel_size_nm is None


def test_rgb_with_grey_content_becomes_one_channel(tmp_path, rng, caplog):
    grey = rng.integers(0, 256, size=(20, 30), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    with caplog.at_level(logging.INFO, logger="tem_rf.data.reading"):
        data = read_micrograph(tmp_path / "rgb.png").data
    np.testing.assert_array_equal(data, grey)
    assert "identical channels" in caplog.text


def test_rgb_tiff_planar_and_colour_conversion(tmp_path, rng, caplog):
    grey = rng.integers(0, 65535, size=(12, 14), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([grey] * 3), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "planar.tif").data, grey)
    colour = np.stack([grey, grey // 2, grey // 3], axis=-1)
    tifffile.imwrite(tmp_path / "colour.tif", colour, photometric="rgb")
    with caplog.at_level(logging.WARNING, logger="tem_rf.data.reading"):
        data = read_micrograph(tmp_path / "colour.tif").data
    expected = colour.astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    np.testing.assert_allclose(data, expected)
    assert "channels differ" in caplog.text


def test_nan_pixels_are_refused(tmp_path):
    values = np.ones((8, 8), np.float32)
    values[2, 3] = np.nan
    values[4, 4] = np.inf
    tifffile.imwrite(tmp_path / "nan.tif", values)
    with pytest.raises(InputError, match=r"nan\.tif: contains 2 NaN or infinite"):
        read_micrograph(tmp_path / "nan.tif")


def test_corrupt_and_truncated_files(tmp_path, rng):
    tifffile.imwrite(tmp_path / "good.tif", rng.integers(0, 9, size=(256, 256), dtype=np.uint16))
    content = (tmp_path / "good.tif").read_bytes()
    (tmp_path / "truncated.tif").write_bytes(content[: len(content) // 2])
    (tmp_path / "garbage.tif").write_bytes(b"not a tiff at all" * 10)
    (tmp_path / "empty.tif").write_bytes(b"")
    Image.fromarray(rng.integers(0, 255, size=(64, 64), dtype=np.uint8)).save(tmp_path / "p.png")
    png = (tmp_path / "p.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    for name, problem in [
        ("truncated.tif", "corrupt or truncated"),
        ("garbage.tif", "corrupt or truncated"),
        ("empty.tif", "empty"),
        ("truncated.png", "corrupt or truncated"),
        ("missing.tif", "does not exist"),
    ]:
        with pytest.raises(InputError, match=problem) as info:
            read_micrograph(tmp_path / name)
        assert name in str(info.value)
        assert info.value.path == tmp_path / name


def test_stack_and_unknown_suffix_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.ones((5, 8, 8), np.uint16))
    with pytest.raises(InputError, match="stack.tif.*single 2-D"):
        read_micrograph(tmp_path / "stack.tif")
    (tmp_path / "a.jpg2").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported micrograph file type"):
        read_micrograph(tmp_path / "a.jpg2")


def test_dm3_without_the_formats_extra_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "a.dm3").write_bytes(b"\0" * 64)
    # A None entry makes `import rsciio...` raise ImportError, as when the extra is missing.
    for name in ("rsciio", "rsciio.digitalmicrograph"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InputError, match=r'a\.dm3: .*pip install "tem_rf\[formats\]"'):
        read_micrograph(tmp_path / "a.dm3")


def test_mrc_and_emd_through_the_formats_extra(tmp_path):
    mrcfile = pytest.importorskip("mrcfile")
    emd = pytest.importorskip("rsciio.emd")
    values = np.arange(24 * 20, dtype=np.float32).reshape(24, 20)
    with mrcfile.new(tmp_path / "a.mrc") as mrc:
        mrc.set_data(values)
        mrc.voxel_size = 2.152  # Angstrom
    micrograph = read_micrograph(tmp_path / "a.mrc")
    np.testing.assert_array_equal(micrograph.data, values)
    assert micrograph.pixel_size_nm == pytest.approx(0.2152)
    axes = [
        {"name": n, "scale": 0.05, "offset": 0, "units": "nm", "size": s, "navigate": False}
        for n, s in (("y", 24), ("x", 20))
    ]
    emd.file_writer(
        str(tmp_path / "a.emd"),
        {"data": values.astype(np.uint16), "axes": axes, "original_metadata": {},
         "metadata": {"General": {"title": "a"}, "Signal": {"signal_type": ""}}},
    )
    micrograph = read_micrograph(tmp_path / "a.emd")
    np.testing.assert_array_equal(micrograph.data, values)
    assert micrograph.pixel_size_nm == pytest.approx(0.05)


# ---------------------------------------------------------------------------- masks


def _particles(shape=(32, 32)):
    ids = np.zeros(shape, np.uint16)
    ids[2:10, 3:12] = 1
    ids[15:25, 5:9] = 2
    ids[20:30, 20:31] = 3
    ids[10:14, 12:16] = 2
    return ids


def test_mask_0_255_png_is_binarised_with_the_rule_logged(tmp_path, caplog):
    ids = _particles()
    Image.fromarray(((ids > 0) * 255).astype(np.uint8)).save(tmp_path / "m.png")
    with caplog.at_level(logging.INFO, logger="tem_rf.data.reading"):
        mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, ids > 0)
    assert "0/255" in caplog.text


def test_instance_id_mask_is_binarised(tmp_path):
    ids = _particles()
    tifffile.imwrite(tmp_path / "ids.tif", ids)
    mask, rule = read_mask_and_rule(tmp_path / "ids.tif")
    np.testing.assert_array_equal(mask, (ids > 0).astype(np.uint8))
    assert "instance-id" in rule and "3 ids" in rule


def test_binary_mask_and_rgba_alpha_mask(tmp_path):
    ids = _particles()
    tifffile.imwrite(tmp_path / "b.tif", (ids > 0).astype(np.uint8))
    assert read_mask_and_rule(tmp_path / "b.tif")[1] == "binary 0/1"
    rgba = np.zeros(ids.shape + (4,), np.uint8)
    rgba[..., 3] = (ids > 0) * 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "alpha.png"), ids > 0)


def test_greyscale_photo_is_not_a_mask(tmp_path, rng):
    photo = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
    photo[:4] = 0
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(InputError, match=r"photo\.png: mask is neither binary nor instance ids.*greyscale"):
        read_mask(tmp_path / "photo.png")


@pytest.mark.parametrize(
    "values, problem",
    [
        (np.array([[0.0, 0.5], [1.0, 0.0]]), "non-integer"),
        (np.array([[1, 2], [2, 1]]), "no 0"),
        (np.array([[0, -1], [1, 0]]), "negative"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN"),
    ],
)
def test_bad_mask_values(values, problem):
    with pytest.raises(InputError, match=problem) as info:
        binarise_mask(values, "labels/x.png")
    assert str(info.value).startswith("labels/x.png: ")


def test_colour_and_grey_alpha_masks(tmp_path):
    ids = _particles()
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    Image.fromarray(palette[ids]).save(tmp_path / "colour.png")  # one colour per particle
    np.testing.assert_array_equal(read_mask(tmp_path / "colour.png"), ids > 0)
    grey_alpha = np.stack([((ids > 0) * 255).astype(np.uint8), np.full(ids.shape, 255, np.uint8)], axis=-1)
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "la.png"), ids > 0)


def test_constant_non_zero_mask_is_all_particle_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="tem_rf.data.reading"):
        mask, rule = binarise_mask(np.full((4, 4), 255, np.uint8), "labels/x.png")
    assert mask.all() and rule.startswith("binarised constant 255")
    assert "labels/x.png: mask is 255 everywhere (no 0 background pixel)" in caplog.text
