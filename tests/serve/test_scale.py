"""tem_rf.serve.scale: every network applied at the pixel size it learned; sizes that do not depend
on the micrograph's pixel size; micrographs that cannot be served refused with the numbers."""

import numpy as np
import pytest
import tifffile
from skimage.transform import resize

from tem_rf.core.errors import InputError
from tem_rf.data.synthetic import make_micrograph
from tem_rf.serve.predictor import Predictor
from tem_rf.serve.scale import (
    MAX_SCALE_FACTOR, ScalePlan, micrograph_pixel_size, plan_scale, to_micrograph_grid, to_network_grid,
)
from tem_rf.serve.segment import segment_file

from stub_networks import blur_predictor

TRAINING_NM = 0.5  # the demo's low-resolution pixel size


_blur_predictor = blur_predictor


def _write(path, image, pixel_size_nm):
    kwargs = {}
    if pixel_size_nm is not None:
        kwargs = dict(imagej=True, resolution=(1 / pixel_size_nm, 1 / pixel_size_nm), metadata={"unit": "nm"})
    tifffile.imwrite(path, image.astype(np.float32), **kwargs)
    return path


def test_sizes_do_not_depend_on_the_pixel_size(tmp_path):
    # One demo micrograph drawn at the training pixel size, and the same field saved at half and
    # at twice the sampling (its new pixel size recorded): the particles found agree.
    image, _ = make_micrograph("low_res", size=384, pixel_size_nm=TRAINING_NM, rng=11)
    predictor = _blur_predictor()
    results = {}
    for name, scale in (("native", 1.0), ("coarse", 0.5), ("fine", 2.0)):
        shape = (round(image.shape[0] * scale),) * 2
        data = image if scale == 1.0 else resize(image, shape, order=1, anti_aliasing=scale < 1, preserve_range=True)
        path = _write(tmp_path / f"{name}.tif", data, TRAINING_NM / scale)
        result = segment_file(path, predictor, tmp_path / "out", tile_size=None, overlay=False)
        assert result.shape == shape and result.scale["resample_factor"] == pytest.approx(1 / scale)
        results[name] = result.particles
    native = results["native"]
    assert native["count"] >= 20 and native["diameter_unit"] == "nm"
    for name in ("coarse", "fine"):
        assert results[name]["count"] == pytest.approx(native["count"], rel=0.05), name
        assert results[name]["diameter_median"] == pytest.approx(native["diameter_median"], rel=0.03), name
    # Without resampling the network's 3 px blur is another physical length: the sizes drift.
    never = segment_file(tmp_path / "coarse.tif", predictor, tmp_path / "never", tile_size=None, overlay=False,
                         resample="never")
    assert never.pixel_size_warning
    assert abs(never.particles["diameter_median"] / native["diameter_median"] - 1) > 0.03  # +7 % here
    never = segment_file(tmp_path / "fine.tif", predictor, tmp_path / "never_fine", tile_size=None, overlay=False,
                         resample="never")
    assert never.particles["count"] > 1.5 * native["count"]  # noise blobs split the particles: 98 vs 37 here


def test_the_plan_follows_the_rules():
    assert micrograph_pixel_size("a.tif", 0.1, 0.2) == (0.1, "file")  # the file's own calibration wins
    assert micrograph_pixel_size("a.png", None, 0.2) == (0.2, "flag")
    assert micrograph_pixel_size("a.png", None, None) == (None, "unknown")
    within = plan_scale("a.tif", (100, 80), 0.505, "file", 0.5)  # 1 % off: the network's own grid
    assert not within.resampled and within.factor == 1.0
    plan = plan_scale("a.tif", (100, 80), 0.25, "file", 0.5)
    assert plan == ScalePlan(0.25, "file", 0.5, 0.5, (100, 80), (50, 40)) and plan.resampled
    assert not plan_scale("a.tif", (100, 80), 0.25, "file", 0.5, policy="never").resampled
    assert not plan_scale("a.png", (100, 80), None, "unknown", None).resampled  # trained without a pixel size
    with pytest.raises(InputError, match=r"a\.png: has no pixel size and the network was trained at 0\.5 nm/px.*"
                                         r"--pixel_size_nm, or --resample=never"):
        plan_scale("a.png", (100, 80), None, "unknown", 0.5)
    for pixel_size, factor in ((1500.0, "3e\\+03x"), (0.05, "0.1x")):  # 3,000x and 1/10 of the training pixel size
        with pytest.raises(InputError, match=rf"a\.dm4: pixel size {pixel_size:g} nm is {factor} the network's "
                                             rf"training pixel size 0\.5 nm; resampling by more than 8x"):
            plan_scale("a.dm4", (100, 80), pixel_size, "file", 0.5)
    assert plan_scale("a.tif", (100, 80), 0.5 * MAX_SCALE_FACTOR, "file", 0.5).network_shape == (800, 640)
    with pytest.raises(InputError, match="--resample must be one of auto, never"):
        plan_scale("a.tif", (100, 80), 0.5, "file", 0.5, policy="always")


def test_a_micrograph_too_coarse_for_the_learned_particles_is_refused_before_the_network():
    trained = {"count": 50, "median": 12.0, "q05": 6.0, "q95": 20.0}  # px on the network's 0.5 nm grid
    # at 4x the training pixel size the largest learned particles are 5 px across: served
    plan = plan_scale("a.dm4", (100, 80), 2.0, "file", 0.5, trained_particle_px=trained)
    assert plan.factor == 4.0
    # at 8x they would be 2.5 px: no resampling brings back what they need
    with pytest.raises(InputError, match=r"a\.dm4: at 4 nm/px the particles this network learned \(up to 10 nm, "
                                         r"20 px at its 0\.5 nm/px\) would be at most 2\.5 px across; under 3 px"):
        plan_scale("a.dm4", (100, 80), 4.0, "file", 0.5, trained_particle_px=trained)
    # finer micrographs (shrunk to the network's grid) and unknown sizes are not judged by it
    assert plan_scale("a.dm4", (100, 80), 0.0625, "file", 0.5, trained_particle_px=trained).factor == 0.125
    assert plan_scale("a.dm4", (100, 80), 4.0, "file", 0.5).factor == 8.0


def test_particles_too_small_to_size_are_not_counted(tmp_path):
    from tem_rf.particles.measure import MIN_MEASURABLE_AREA_PX, min_area_in_px

    # 1 nm^2 is under a pixel at 2 nm/px: the default minimum area is a disc 3 px across instead
    assert min_area_in_px(2.0) == MIN_MEASURABLE_AREA_PX == pytest.approx(7.07, abs=0.01)
    assert min_area_in_px(0.1) == pytest.approx(100.0)  # finer: 1 nm^2 as before
    assert min_area_in_px(2.0, min_area_nm2=4.0) == 1.0 and min_area_in_px(2.0, min_area_px=1) == 1.0  # asked for
    # A field of dots 2 px across at 1 nm/px, a network that finds them, trained without x-ray
    # cleaning (which would take dots this small for x-ray hits), and one particle 8 px across.
    image = np.random.default_rng(0).normal(1000.0, 10.0, (96, 96)).astype(np.float32)
    image[4:92:8, 4:92:8] = image[5:93:8, 4:92:8] = image[4:92:8, 5:93:8] = image[5:93:8, 5:93:8] = 200.0
    rows, cols = np.mgrid[:96, :96]
    image[(rows - 47.5) ** 2 + (cols - 47.5) ** 2 <= 16] = 200.0
    path = _write(tmp_path / "dots.tif", image, 1.0)
    stub = _blur_predictor(sigma_px=0.1, pixel_size_nm=1.0)
    predictor = Predictor(stub.function, {**stub.metadata, "normalisation": {"xray_threshold": None}}, "stub")
    counted = segment_file(path, predictor, tmp_path / "out", tile_size=None, overlay=False)
    assert counted.particles["count"] == 1 and counted.particles["min_area_px"] == pytest.approx(7.07, abs=0.01)
    assert counted.particles["diameter_median"] == pytest.approx(9.0, rel=0.05)  # with the dots it covers
    asked = segment_file(path, predictor, tmp_path / "asked", tile_size=None, overlay=False, min_particle_area_px=1)
    assert asked.particles["count"] > 100  # the dots, when a smaller minimum is asked for


def test_resampling_there_and_back_keeps_a_smooth_probability():
    rows, cols = np.mgrid[:120, :90]
    probability = (0.5 + 0.5 * np.sin(rows / 9.0) * np.cos(cols / 7.0)).astype(np.float32)
    for micrograph_nm in (0.25, 1.0):
        plan = plan_scale(None, probability.shape, micrograph_nm, "file", 0.5)
        back = to_micrograph_grid(to_network_grid(probability, plan), plan)
        assert back.shape == probability.shape and back.dtype == np.float32
        assert 0.0 <= back.min() and back.max() <= 1.0
        assert np.abs(back - probability)[5:-5, 5:-5].max() < 0.05


def test_segment_refuses_an_uncalibrated_micrograph_and_takes_the_flag(tmp_path):
    image, _ = make_micrograph("low_res", size=96, pixel_size_nm=TRAINING_NM, rng=3)
    path = _write(tmp_path / "export.tif", image, None)
    with pytest.raises(InputError, match="export.tif: has no pixel size"):
        segment_file(path, _blur_predictor(), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = segment_file(path, _blur_predictor(), tmp_path / "out", pixel_size_nm=1.0, overlay=False)
    assert result.pixel_size_nm == 1.0 and result.scale["pixel_size_source"] == "flag"
    assert result.scale["resample_factor"] == 2.0 and result.scale["network_shape"] == [192, 192]
    assert result.particles["diameter_unit"] == "nm"
    with tifffile.TiffFile(result.mask) as tif:  # the flag's pixel size travels with the outputs
        assert tif.imagej_metadata["unit"] == "nm"


def test_a_file_s_calibration_is_replaced_only_when_asked(tmp_path, caplog):
    from tem_rf.serve.scale import check_scale_options

    image, _ = make_micrograph("low_res", size=96, pixel_size_nm=TRAINING_NM, rng=3)
    path = _write(tmp_path / "miscalibrated.tif", image, 2 * TRAINING_NM)  # the file says 1 nm/px: wrong
    kept = segment_file(path, _blur_predictor(), tmp_path / "kept", pixel_size_nm=TRAINING_NM, overlay=False)
    assert kept.pixel_size_nm == 1.0 and kept.scale["pixel_size_source"] == "file"
    assert "(--override_pixel_size uses the flag's)" in caplog.text
    fixed = segment_file(path, _blur_predictor(), tmp_path / "fixed", pixel_size_nm=TRAINING_NM,
                         override_pixel_size=True, overlay=False)
    assert fixed.pixel_size_nm == TRAINING_NM and fixed.scale["pixel_size_source"] == "override"
    assert fixed.scale["resample_factor"] == 1.0  # at the training pixel size now: no resampling
    assert fixed.particles["diameter_median"] == pytest.approx(kept.particles["diameter_median"] / 2, rel=0.25)
    assert "the file says 1 nm/px; using 0.5 from --pixel_size_nm (--override_pixel_size)" in caplog.text
    assert micrograph_pixel_size("a.tif", None, 0.3, override=True) == (0.3, "flag")  # nothing to override
    with pytest.raises(InputError, match="--override_pixel_size needs --pixel_size_nm"):
        check_scale_options(None, "auto", "never", override_pixel_size=True)


def _uncalibrated(predictor, trained):
    """``predictor`` as a network trained without a pixel size on particles of ``trained`` sizes."""
    metadata = {**predictor.metadata, "pixel_size_nm": None, "particle_diameter_px": trained}
    return Predictor(predictor.function, metadata, "stub")


def test_a_network_without_pixel_size_sees_particles_at_the_trained_sizes(tmp_path):
    # Literature figures carry no pixel size: a network trained on such images learned particles
    # of some size in px. The same field saved at 1/4, 1/2 and 2x the sampling, uncalibrated, is
    # rescaled so that its particles have the trained sizes, and gives the native result.
    from tem_rf.data.particle_sizes import mask_particle_diameters, summarise_diameters

    image, mask = make_micrograph("low_res", size=384, pixel_size_nm=TRAINING_NM, rng=11)
    trained = summarise_diameters(mask_particle_diameters(mask, mask, instance_ids=False))
    predictor = _uncalibrated(_blur_predictor(), trained)
    native = segment_file(_write(tmp_path / "native.tif", image, None), predictor, tmp_path / "out", tile_size=None,
                          overlay=False)
    assert native.scale["resample_factor"] == 1.0 and native.particles["diameter_unit"] == "px"
    assert native.particles["count"] >= 20
    for name, sampling in (("quarter", 0.25), ("coarse", 0.5), ("fine", 2.0)):
        size = round(384 * sampling)
        path = _write(tmp_path / f"{name}.tif", resize(image, (size, size), order=1, anti_aliasing=sampling < 1,
                                                      preserve_range=True), None)
        result = segment_file(path, predictor, tmp_path / "out", tile_size=None, overlay=False, rescale="auto")
        # the first pass, at a scale the network never learned, sizes the particles roughly (3.15 for 4)
        assert result.scale["resample_factor"] == pytest.approx(1 / sampling, rel=0.25), name
        assert result.scale["trained_particle_px"] == trained["median"]
        assert not trained["q05"] <= result.scale["first_pass_particle_px"] <= trained["q95"], name
        assert result.particles["count"] == pytest.approx(native.particles["count"], rel=0.05), name
        # px of its own grid: the native sizes times the sampling
        assert result.particles["diameter_median"] / sampling == pytest.approx(native.particles["diameter_median"],
                                                                              rel=0.05), name
    plain = segment_file(tmp_path / "quarter.tif", predictor, tmp_path / "plain", tile_size=None, overlay=False)
    assert plain.particles["count"] < 0.5 * native.particles["count"]  # 6 of 36 here


def test_a_rescaled_pass_whose_particles_miss_the_trained_sizes_is_not_kept(tmp_path, caplog):
    from tem_rf.data.particle_sizes import summarise_diameters

    image, _ = make_micrograph("low_res", size=384, pixel_size_nm=TRAINING_NM, rng=5)
    trained = summarise_diameters([300.0] * 10)  # particles far larger than any this network finds
    predictor = _uncalibrated(_blur_predictor(), trained)
    first = segment_file(_write(tmp_path / "a.tif", image, None), predictor, tmp_path / "never", tile_size=None,
                         overlay=False)  # rescale="never", the default
    with caplog.at_level("WARNING"):
        result = segment_file(tmp_path / "a.tif", predictor, tmp_path / "auto", tile_size=None, overlay=False,
                              rescale="auto")
    assert "could not be brought to the trained sizes" in caplog.text
    assert result.scale["resample_factor"] == 1.0 and result.particles == first.particles
