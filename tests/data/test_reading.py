"""tem_rf.data.reading: micrographs and masks as users have them, and clear errors for bad files."""

import logging
import os
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from tem_rf.data import tiff_files
from tem_rf.core.errors import InputError
from tem_rf.data.reading import binarise_mask, read_mask, read_mask_and_rule, read_micrograph
from tem_rf.data.signals import unit_to_nm


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


def test_stack_is_refused_naming_its_size_and_frame_takes_one(tmp_path):
    frames = np.arange(5 * 8 * 9, dtype=np.uint16).reshape(5, 8, 9)
    tifffile.imwrite(tmp_path / "stack.tif", frames, photometric="minisblack")
    with pytest.raises(InputError, match=r"stack\.tif: is a stack of 5 frames of 8x9 px, not a single image; "
                       r"choose one with --frame \(0 to 4\)"):
        read_micrograph(tmp_path / "stack.tif")
    micrograph = read_micrograph(tmp_path / "stack.tif", frame=3)
    np.testing.assert_array_equal(micrograph.data, frames[3])
    assert micrograph.frame == 3 and micrograph.signal is None
    for frame in (5, -1):
        with pytest.raises(InputError, match=rf"--frame={frame} is out of range: the stack has 5 frames"):
            read_micrograph(tmp_path / "stack.tif", frame=frame)
    tifffile.imwrite(tmp_path / "one.tif", frames[0])
    with pytest.raises(InputError, match=r"one\.tif: is a single image, --frame does not apply"):
        read_micrograph(tmp_path / "one.tif", frame=0)
    (tmp_path / "a.jpg2").write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported micrograph file type"):
        read_micrograph(tmp_path / "a.jpg2")


def test_imagej_time_series_and_rgb_stack(tmp_path, caplog):
    frames = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "t.tif", frames, imagej=True, metadata={"axes": "TYX", "unit": "nm"},
                     resolution=(1 / 0.5, 1 / 0.5))
    with pytest.raises(InputError, match="is a time series: a stack of 3 frames of 8x8 px"):
        read_micrograph(tmp_path / "t.tif")
    micrograph = read_micrograph(tmp_path / "t.tif", frame=2)
    np.testing.assert_array_equal(micrograph.data, frames[2])
    assert micrograph.pixel_size_nm == pytest.approx(0.5)
    # Two RGB frames: the frame is chosen first, then README's RGB rules apply to it.
    grey = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([grey] * 3, axis=-1), photometric="rgb")
    with pytest.raises(InputError, match="a stack of 2 frames of 8x8 px"):
        read_micrograph(tmp_path / "rgb.tif")
    with caplog.at_level(logging.INFO, logger="tem_rf.data.reading"):
        np.testing.assert_array_equal(read_micrograph(tmp_path / "rgb.tif", frame=1).data, grey[1])
    assert "identical channels" in caplog.text


@pytest.mark.parametrize(
    "unit, nm_per_unit",
    [("\\u00C5", 0.1), ("\\u00c5", 0.1), ("\\u00B5m", 1e3), ("um", 1e3), ("micron", 1e3), ("A", 0.1),
     ("pm", 1e-3), ("nm", 1.0)],
)
def test_imagej_units_including_escaped_angstrom(tmp_path, unit, nm_per_unit):
    units_per_pixel = 0.25
    tifffile.imwrite(tmp_path / "u.tif", np.ones((8, 8), np.uint16), imagej=True,
                     resolution=(1 / units_per_pixel, 1 / units_per_pixel), metadata={"unit": unit})
    assert read_micrograph(tmp_path / "u.tif").pixel_size_nm == pytest.approx(units_per_pixel * nm_per_unit, rel=1e-6)


def test_unit_names():
    for unit, nm in [("Å", 0.1), ("\u212b", 0.1), ("\\u00C5", 0.1), ("µm", 1e3), ("μm", 1e3), ("UM", 1e3),
                     (b"nm", 1.0), ("Angstrom", 0.1), ("pm", 1e-3)]:
        assert unit_to_nm(unit) == pytest.approx(nm), unit
    for unit in ("1/nm", "pixel", "", None, "eV", "s"):
        assert unit_to_nm(unit) is None, unit


def _dm_tiff(path, units, scale):
    """A TIFF with DigitalMicrograph's private calibration tags only (no resolution tags)."""
    tags = [(65003, "s", 0, units, False), (65004, "s", 0, units, False),
            (65009, "d", 1, scale, False), (65010, "d", 1, scale, False)]
    tifffile.imwrite(path, np.arange(64, dtype=np.uint16).reshape(8, 8), extratags=tags)


def test_tiff_calibration_that_only_rosettasciio_understands(tmp_path, recwarn, caplog):
    pytest.importorskip("rsciio.tiff")
    _dm_tiff(tmp_path / "dm.tif", "nm", 0.25)
    with caplog.at_level(logging.DEBUG):
        assert read_micrograph(tmp_path / "dm.tif").pixel_size_nm == pytest.approx(0.25)
    # rosettasciio's own warnings and log lines stay out of the user's log.
    assert not [r for r in caplog.records if r.name.startswith("rsciio") and r.levelno >= logging.INFO]
    assert not [w for w in recwarn if "rsciio" in str(w.filename)]
    _dm_tiff(tmp_path / "fft.tif", "1/nm", 0.25)
    with pytest.raises(InputError, match=r"fft\.tif: is a diffraction pattern .*reciprocal space .*not a real-space"):
        read_micrograph(tmp_path / "fft.tif")


def test_plain_tiff_does_not_ask_rosettasciio(tmp_path, monkeypatch):
    def fail(path):
        raise AssertionError("rosettasciio asked for a TIFF without vendor tags")

    monkeypatch.setattr(tiff_files, "_rosettasciio_tiff_calibration", fail)
    tifffile.imwrite(tmp_path / "plain.tif", np.ones((8, 8), np.uint16))
    assert read_micrograph(tmp_path / "plain.tif").pixel_size_nm is None


def test_imagej_reciprocal_unit_is_a_diffraction_pattern(tmp_path):
    tifffile.imwrite(tmp_path / "fft.tif", np.ones((8, 8), np.float32), imagej=True,
                     resolution=(2.0, 2.0), metadata={"unit": "1/nm"})
    with pytest.raises(InputError, match="diffraction pattern of 8x8 px in reciprocal space"):
        read_micrograph(tmp_path / "fft.tif")


def test_things_that_are_not_regular_files_are_named(tmp_path):
    os.mkfifo(tmp_path / "fifo.tif")  # opening it would block: must be refused before
    (tmp_path / "folder.tif").mkdir()
    os.symlink(tmp_path / "loop.tif", tmp_path / "loop.tif")
    os.symlink(tmp_path / "gone.tif", tmp_path / "dangling.tif")
    for name, problem in [
        ("fifo.tif", "is a named pipe (FIFO), not a regular file"),
        ("folder.tif", "is a folder, expected a file"),
        ("loop.tif", "is a loop of symbolic links (it never reaches a file)"),
        ("dangling.tif", f"is a broken symbolic link (to {tmp_path / 'gone.tif'}, which does not exist)"),
    ]:
        with pytest.raises(InputError) as info:
            read_micrograph(tmp_path / name)
        assert str(info.value) == f"{tmp_path / name}: {problem}"


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


def test_berkeley_emd_time_series_written_by_rosettasciio(tmp_path):
    emd = pytest.importorskip("rsciio.emd")
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    # Berkeley EMD keeps no navigation flags: the names and units must tell the time axis.
    axes = [{"name": "time", "scale": 0.5, "offset": 0, "units": "s", "size": 3, "navigate": True}] + [
        {"name": n, "scale": 0.05, "offset": 0, "units": "nm", "size": k, "navigate": False}
        for n, k in (("y", 4), ("x", 5))
    ]
    emd.file_writer(str(tmp_path / "t.emd"), {"data": frames, "axes": axes, "original_metadata": {},
                    "metadata": {"General": {"title": "t"}, "Signal": {"signal_type": ""}}})
    with pytest.raises(InputError, match="is a time series: a stack of 3 frames of 4x5 px"):
        read_micrograph(tmp_path / "t.emd")
    micrograph = read_micrograph(tmp_path / "t.emd", frame=1)
    np.testing.assert_array_equal(micrograph.data, frames[1])
    assert micrograph.pixel_size_nm == pytest.approx(0.05)


# ---------------------------------------------------------------------------- rosettasciio's answers
# What rosettasciio's readers return for files we cannot make here (DM is read-only in
# rosettasciio; Velox EMD has no writer): its signal dicts, fed through a stand-in file_reader.


def _axis(name, size, units="nm", scale=0.1, navigate=False):
    return {"name": name, "size": size, "units": units, "scale": scale, "offset": 0.0, "navigate": navigate}


def _signal(data, axes, title, signal_type=""):
    return {"data": data, "axes": axes, "metadata": {"General": {"title": title}, "Signal": {"signal_type": signal_type}},
            "original_metadata": {}}


def _image(title, rng, shape=(6, 7), units="nm", scale=0.1):
    return _signal(rng.integers(0, 900, size=shape).astype(np.uint16),
                   [_axis("y", shape[0], units, scale), _axis("x", shape[1], units, scale)], title)


@pytest.fixture
def fake_dm(tmp_path, monkeypatch):
    """A .dm4 file whose reader answers with the signal dicts given to the returned function."""
    dm = pytest.importorskip("rsciio.digitalmicrograph")
    path = tmp_path / "a.dm4"
    path.write_bytes(b"\0" * 64)

    def answer(*signals):
        monkeypatch.setattr(dm, "file_reader", lambda filename, **kwargs: list(signals))
        return path

    return answer


def test_the_only_image_among_several_signals_is_used_and_named(fake_dm, rng, caplog):
    haadf = _image("HAADF", rng, scale=0.0177516)
    eds = _signal(np.zeros((6, 7, 50), np.float32),
                  [_axis("y", 6, navigate=True), _axis("x", 7, navigate=True), _axis("X-ray energy", 50, "keV", 0.01)],
                  "EDS", "EDS_TEM")
    plot = _signal(np.zeros(40, np.float32), [_axis("x", 40, "", 1.0)], "Plot")
    path = fake_dm(haadf, eds, plot)
    with caplog.at_level(logging.INFO, logger="tem_rf.data.reading"):
        micrograph = read_micrograph(path)
    np.testing.assert_array_equal(micrograph.data, haadf["data"])
    assert micrograph.signal == "HAADF" and micrograph.pixel_size_nm == pytest.approx(0.0177516)
    assert "using 'HAADF', the only 2-D real-space image" in caplog.text
    assert "'EDS' (a spectrum image of 50 channels x 6 x 7 px (EDS_TEM))" in caplog.text
    np.testing.assert_array_equal(read_micrograph(path, signal="HAADF").data, haadf["data"])
    with pytest.raises(InputError, match="is a spectrum image of 50 channels x 6 x 7 px"):
        read_micrograph(path, signal="eds")  # case-insensitive


def test_several_images_are_refused_listing_their_titles_and_signal_picks_one(fake_dm, rng):
    detectors = [_image(title, rng) for title in ("HAADF", "DF4-A", "DF4-B", "BF")]
    path = fake_dm(*detectors)
    with pytest.raises(InputError) as info:
        read_micrograph(path)
    message = str(info.value)
    assert message.startswith(f"{path}: holds 4 signals: 'HAADF' (a 6x7 px image), 'DF4-A' (a 6x7 px image)")
    assert "4 of them are 2-D real-space images, choose one by title with --signal" in message
    micrograph = read_micrograph(path, signal="DF4-B")
    np.testing.assert_array_equal(micrograph.data, detectors[2]["data"])
    assert micrograph.signal == "DF4-B"
    assert read_micrograph(path, signal="df4-a").signal == "DF4-A"
    with pytest.raises(InputError, match=r"has no signal titled 'DF2'; its signals are 'HAADF' \(a 6x7 px image\), 'DF4-A'"):
        read_micrograph(path, signal="DF2")


@pytest.mark.parametrize("fields", ["RGBA", "RGB"])
def test_dm_rgb_follows_the_rgb_rules(fake_dm, rng, caplog, fields):
    grey = rng.integers(0, 256, size=(5, 6)).astype(np.uint8)
    rgba = np.zeros((5, 6), dtype=[(c, "u1") for c in fields])
    for c in fields:
        rgba[c] = grey if c != "A" else 255
    axes = [_axis("y", 5, ""), _axis("x", 6, "")]
    path = fake_dm(_signal(rgba, axes, "colour"))
    with caplog.at_level(logging.INFO, logger="tem_rf.data.reading"):
        np.testing.assert_array_equal(read_micrograph(path).data, grey)
    assert "identical channels" in caplog.text
    rgba["G"] = grey // 2
    path = fake_dm(_signal(rgba, axes, "colour"))
    with caplog.at_level(logging.WARNING, logger="tem_rf.data.reading"):
        data = read_micrograph(path).data
    expected = 0.2125 * grey + 0.7154 * (grey // 2) + 0.0721 * grey
    np.testing.assert_allclose(data, expected)
    assert "channels differ" in caplog.text


@pytest.mark.parametrize(
    "signal, problem",
    [
        (_signal(np.zeros((670, 3, 4), np.float32),
                 [_axis("Wavelength", 670, "nm", 0.15, navigate=True), _axis("y", 3, "µm"), _axis("x", 4, "µm")],
                 "CL", "CL"),
         "is a spectrum image of 670 channels x 3 x 4 px (CL), not a 2-D micrograph"),
        (_signal(np.zeros((3, 4, 80), np.float32),
                 [_axis("y", 3, navigate=True), _axis("x", 4, navigate=True), _axis("Energy loss", 80, "eV", 0.5)],
                 "EELS SI", "EELS"),
         "is a spectrum image of 80 channels x 3 x 4 px (EELS), not a 2-D micrograph"),
        (_signal(np.zeros((9, 9), np.int32), [_axis("y", 9, "1/nm"), _axis("x", 9, "1/nm")], "DP"),
         "is a diffraction pattern of 9x9 px in reciprocal space (axes in 1/nm), not a real-space micrograph"),
        (_signal(np.zeros((9, 9), np.int32), [_axis("y", 9, "mrad"), _axis("x", 9, "mrad")], "DP"),
         "is a diffraction pattern of 9x9 px in reciprocal space (axes in mrad), not a real-space micrograph"),
        (_signal(np.zeros((2, 3, 9, 9), np.int32),
                 [_axis("y", 2, navigate=True), _axis("x", 3, navigate=True), _axis("ky", 9, "1/Å"), _axis("kx", 9, "1/Å")],
                 "4D"),
         "is 6 diffraction patterns of 9x9 px in reciprocal space (axes in 1/Å), not a real-space micrograph"),
        (_signal(np.zeros(40, np.float32), [_axis("Energy", 40, "eV")], "spec", "EELS"),
         "holds a spectrum of 40 channels (EELS), not a 2-D image"),
    ],
)
def test_spectra_and_diffraction_patterns_are_refused(fake_dm, signal, problem):
    path = fake_dm(signal)
    with pytest.raises(InputError) as info:
        read_micrograph(path)
    assert str(info.value) == f"{path}: {problem}"


def test_velox_time_series_is_a_stack_never_rgb(fake_dm):
    frames = np.arange(2 * 3 * 3, dtype=np.int16).reshape(2, 3, 3)  # last axis of 3: not RGB
    path = fake_dm(_signal(frames, [_axis("Time", 2, "s", 0.8, navigate=True), _axis("y", 3, "pm", 8.17),
                                    _axis("x", 3, "pm", 8.17)], "Ceta"))
    with pytest.raises(InputError, match=r"is a time series: a stack of 2 frames of 3x3 px, not a single image; "
                                         r"choose one with --frame \(0 to 1\)"):
        read_micrograph(path)
    micrograph = read_micrograph(path, frame=1)
    np.testing.assert_array_equal(micrograph.data, frames[1])
    assert micrograph.pixel_size_nm == pytest.approx(0.00817)


def test_a_missing_optional_package_is_named_with_the_install_command(tmp_path, monkeypatch):
    emd = pytest.importorskip("rsciio.emd")

    def needs_sparse(filename, **kwargs):  # what rosettasciio raises for a Velox EDS file
        raise ModuleNotFoundError(
            "The 'sparse' library was not found. To load EDS spectrum image data from Velox EMD "
            "files, 'sparse' must be installed."
        )

    monkeypatch.setattr(emd, "file_reader", needs_sparse)
    (tmp_path / "eds.emd").write_bytes(b"\0" * 64)
    with pytest.raises(InputError) as info:
        read_micrograph(tmp_path / "eds.emd")
    assert str(info.value) == (
        f"{tmp_path / 'eds.emd'}: reading this file needs the Python package 'sparse', which is not "
        'installed: pip install "tem_rf[formats]" (or pip install sparse)'
    )
    monkeypatch.setattr(emd, "file_reader", lambda filename, **kwargs: __import__("no_such_module_xyz"))
    with pytest.raises(InputError, match="needs the Python package 'no_such_module_xyz'") as info:
        read_micrograph(tmp_path / "eds.emd")
    assert "corrupt" not in str(info.value)


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


def test_a_frame_of_a_compressed_or_mrc_stack_is_read_without_the_others(tmp_path):
    from tem_rf.data.reading import MICROGRAPH_SUFFIXES, _read_signals, frame_count

    frames = np.arange(6 * 32 * 40, dtype=np.uint16).reshape(6, 32, 40)
    tifffile.imwrite(tmp_path / "zlib.tif", frames, imagej=True, compression="zlib", metadata={"axes": "TYX"})
    stacks = {"zlib.tif": "Array"}  # dask, page by page
    mrcfile = pytest.importorskip("mrcfile")
    with mrcfile.new(tmp_path / "movie.mrc") as mrc:
        mrc.set_data(frames.astype(np.float32))
        mrc.voxel_size = 5.0
    stacks["movie.mrc"] = "memmap"
    pytest.importorskip("dask")
    for name, kind in stacks.items():
        signal, = _read_signals(tmp_path / name, "micrograph", MICROGRAPH_SUFFIXES, calibrate=True, lazy=True)
        assert type(signal.data).__name__ == kind, name  # nothing read yet but the header
        assert frame_count(tmp_path / name) == 6
        for frame in (0, 4, 5):
            micrograph = read_micrograph(tmp_path / name, frame=frame)
            np.testing.assert_array_equal(micrograph.data, frames[frame])
            assert micrograph.data.flags.writeable and type(micrograph.data) is np.ndarray
    assert read_micrograph(tmp_path / "movie.mrc", frame=1).pixel_size_nm == pytest.approx(0.5)


def test_a_movie_file_is_read_once_and_gives_each_frame_as_read_micrograph_does(tmp_path, monkeypatch):
    from tem_rf.data import reading
    from tem_rf.data.reading import MovieFile

    frames = np.arange(5 * 16 * 20, dtype=np.uint16).reshape(5, 16, 20)
    tifffile.imwrite(tmp_path / "m.tif", frames, imagej=True, metadata={"axes": "TYX", "finterval": 0.25})
    tifffile.imwrite(tmp_path / "one.tif", frames[0])
    expected = [read_micrograph(tmp_path / "m.tif", frame=i) for i in range(5)]
    reads = []
    read_signals = reading._read_signals
    monkeypatch.setattr(reading, "_read_signals", lambda *a, **k: reads.append(a[0]) or read_signals(*a, **k))
    movie = MovieFile(tmp_path / "m.tif")
    assert (movie.count, movie.interval_s) == (5, 0.25)
    for index in (4, 0, 2):
        frame = movie.frame(index)
        np.testing.assert_array_equal(frame.data, expected[index].data)
        assert frame.frame == index and frame.pixel_size_nm == expected[index].pixel_size_nm
    assert reads == [tmp_path / "m.tif"]  # the file's signals once, not once per frame
    single = MovieFile(tmp_path / "one.tif")
    assert (single.count, single.interval_s) == (1, None)
    np.testing.assert_array_equal(single.frame(0).data, frames[0])
    assert single.frame(0).frame is None  # a single image is read as one, whatever frame is asked
