"""Tiled inference equals the single pass (the halo itself is tested in tests/models/
test_geometry.py); segmentation outputs; bad micrographs get one clear error naming the file."""

import csv
import json
import logging
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.segmentation import find_boundaries

from tem_rf.serve.predictor import keras_predictor
from tem_rf.serve.signatures import SIGNATURE_OUTPUT
from tem_rf.serve.predictor import Predictor
from tem_rf.serve.overlay import EDGE_COLOUR
from tem_rf.serve.segmented_micrograph import MASK_VALUE
from tem_rf.serve.overlay import MASK_OUTLINE_COLOUR, OVERLAY_COLOUR
from tem_rf.serve.segment_outputs import check_no_overwrite
from tem_rf.serve.segment import check_pixel_size, check_threshold, segment_file, segment_image
from tem_rf.serve.segment_batch import segment_files
from tem_rf.serve.inputs import expand_inputs, segmentation_output_of
from tem_rf.serve.segment_command import SegmentationRun, check_output_dir, segment_micrographs
from tem_rf.serve.tiling import pad_to_divisor, plan_axis, predict_probability
from tem_rf.core.errors import InputError
from tem_rf.data.reading import read_micrograph
from tem_rf.models import residual_unet
from tem_rf.data.synthetic import make_micrograph

PIXEL_SIZE_NM = 0.02152


def _predictor(num_blocks=2, pools=2, pixel_size_nm=PIXEL_SIZE_NM):
    model = residual_unet(num_blocks, pools, seed=0)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    return keras_predictor(model, {"pixel_size_nm": pixel_size_nm})


@pytest.fixture(scope="module")
def predictor():
    return _predictor()


def _write_tiff(path, image, pixel_size_nm=PIXEL_SIZE_NM):
    kwargs = {}
    if pixel_size_nm is not None:
        kwargs = {"resolution": (1 / pixel_size_nm, 1 / pixel_size_nm), "metadata": {"unit": "nm"}}
    tifffile.imwrite(path, image, imagej=True, **kwargs)
    return path


# ---------------------------------------------------------------------------------------------
# Tile plan


def test_plan_axis_windows_are_aligned_equal_and_cover_their_cores():
    size, tile, halo, divisor = 200, 64, 24, 4
    tiles = plan_axis(size, tile, halo)
    window = tile + 2 * halo
    covered = np.zeros(size, int)
    for t in tiles:
        assert t.window_start % divisor == 0 and 0 <= t.window_start <= size - window
        assert t.core_start - t.window_start >= (halo if t.window_start > 0 else 0)
        assert t.window_start + window - t.core_stop >= (halo if t.window_start + window < size else 0)
        covered[t.core_start : t.core_stop] += 1
    assert (covered == 1).all()


# ---------------------------------------------------------------------------------------------
# Exactness


def test_tiled_equals_single_pass_and_a_short_halo_does_not(predictor):
    image = np.random.default_rng(3).normal(size=(200, 136)).astype("float32")
    single = predict_probability(image, predictor, tile_size=None)
    assert single.shape == (200, 136) and single.dtype == np.float32
    tiled = predict_probability(image, predictor, tile_size=64, batch_size=3)  # 4 x 3 tiles
    np.testing.assert_allclose(tiled, single, atol=1e-5)
    short = predict_probability(image, predictor, tile_size=64, halo=predictor.halo_px - 4)
    assert np.abs(short - single).max() > 1e-5  # the tolerance above would catch it


def test_tiled_equals_single_pass_for_sizes_not_multiple_of_divisor(predictor):
    image = np.random.default_rng(4).normal(size=(203, 141)).astype("float32")
    single = predict_probability(image, predictor, tile_size=None)
    np.testing.assert_allclose(
        predict_probability(image, predictor, tile_size=60, batch_size=2), single, atol=1e-5
    )
    # Reflection padding at the bottom/right, same in both paths.
    padded = pad_to_divisor(image, 4)
    assert padded.shape == (204, 144)
    np.testing.assert_array_equal(padded[203, :141], image[201])
    np.testing.assert_array_equal(padded[:203, 141:], image[:, 139:136:-1])


@pytest.mark.parametrize("tile_size, batch_size", [(None, 1), (60, 2), (32, 5)])
def test_tiles_cut_from_bands_of_rows_equal_tiles_cut_from_the_whole_image(predictor, tile_size, batch_size):
    # A RowSource gives the rows a row of tiles needs (reflected past the bottom edge), never the
    # whole padded image: the tiles, and so the output, are the same bits.
    from tem_rf.serve.tiling import ArrayRows, padded_rows

    image = np.random.default_rng(8).normal(size=(203, 141)).astype("float32")
    asked = []

    class Rows(ArrayRows):
        def rows(self, start, stop):
            asked.append((start, stop))
            return super().rows(start, stop)

    whole = predict_probability(image, predictor, tile_size=tile_size, batch_size=batch_size)
    banded = predict_probability(Rows(image), predictor, tile_size=tile_size, batch_size=batch_size)
    np.testing.assert_array_equal(banded, whole)
    np.testing.assert_array_equal(padded_rows(ArrayRows(image), 190, 204, 4), pad_to_divisor(image, 4)[190:204])
    if tile_size is not None:
        assert max(stop - start for start, stop in asked) < image.shape[0]


def test_a_large_micrograph_is_preprocessed_in_bands_with_the_same_result(predictor, monkeypatch):
    from tem_rf.serve import segment as segment_lib

    image = np.random.default_rng(9).normal(1000, 30, size=(150, 170)).astype("uint16")
    image[40, 50] = 60000  # an x-ray
    whole = segment_lib.segment_maps(image, predictor, tile_size=64)
    made = []
    real = segment_lib.BandedPreprocess

    def banded(*args, **kwargs):
        made.append(real(*args, band_pixels=1000, **kwargs))
        return made[-1]

    monkeypatch.setattr(segment_lib, "BANDED_FROM_PIXELS", image.size)
    monkeypatch.setattr(segment_lib, "BandedPreprocess", banded)
    in_bands = segment_lib.segment_maps(image, predictor, tile_size=64)
    assert len(made) == 1 and made[0].xray_pixels_replaced == 1
    assert isinstance(in_bands.probability, np.memmap)  # the maps of a large micrograph are disk-backed
    np.testing.assert_array_equal(in_bands.probability, whole.probability)
    np.testing.assert_array_equal(in_bands.mask, whole.mask)


def test_halo_of_half_the_receptive_field_is_not_enough_for_pools_8_2():
    predictor = _predictor(2, (8, 2))
    assert predictor.halo_px == 96
    image = np.random.default_rng(5).normal(size=(208, 176)).astype("float32")
    single = predict_probability(image, predictor, tile_size=None)
    np.testing.assert_allclose(
        predict_probability(image, predictor, tile_size=32, batch_size=4), single, atol=1e-5
    )
    half_rf = predict_probability(image, predictor, tile_size=32, halo=80, batch_size=4)
    assert np.abs(half_rf - single).max() > 1e-5


# ---------------------------------------------------------------------------------------------
# Whole micrographs and bad input


def test_segment_image_rejects_small_nan_and_constant_images(predictor):
    with pytest.raises(InputError, match=r"tiny.tif: image is 3x40 px, smaller than .* divisor 4"):
        segment_image(np.ones((3, 40)), predictor, path="tiny.tif")
    nan_image = np.random.default_rng(0).normal(size=(32, 32))
    nan_image[5, 5] = np.nan
    with pytest.raises(InputError, match="nan.tif: .*NaN"):
        segment_image(nan_image, predictor, path="nan.tif")
    with pytest.raises(InputError, match="flat.tif: .*constant"):
        segment_image(np.full((32, 32), 7.0), predictor, path="flat.tif")


def test_pixel_size_warning_names_the_file(caplog):
    with caplog.at_level(logging.WARNING, logger="tem_rf.serve.segment"):
        assert check_pixel_size("close.tif", 0.0230, 0.02152)  # +7 %
        assert not caplog.records
        assert not check_pixel_size("far.tif", 0.0250, 0.02152)  # +16 %
    assert len(caplog.records) == 1 and "far.tif" in caplog.text and "+16%" in caplog.text
    assert check_pixel_size("unknown.tif", None, 0.02152)


def test_segment_demo_micrograph_writes_mask_probability_and_overlay(predictor, tmp_path):
    image, _ = make_micrograph("high_res", size=96, rng=0)
    image = image[:90]  # non-square, not a multiple of the divisor
    path = _write_tiff(tmp_path / "demo.tif", np.rint(image).astype(np.uint16))
    result = segment_file(path, predictor, tmp_path / "out", tile_size=32, save_probability=True, measure=False)
    assert result.particles is None and not (tmp_path / "out" / "demo_labels.tif").exists()

    mask = tifffile.imread(tmp_path / "out" / "demo_mask.tif")
    assert mask.shape == (90, 96) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, MASK_VALUE}
    probability = tifffile.imread(tmp_path / "out" / "demo_prob.tif")
    assert probability.dtype == np.float32 and probability.shape == (90, 96)
    np.testing.assert_array_equal(mask == MASK_VALUE, probability > 0.5)
    assert result.particle_fraction == pytest.approx((mask > 0).mean())
    # Same as the single pass of the training preprocessing.
    _, expected = segment_image(read_micrograph(path).data, predictor, tile_size=None)
    np.testing.assert_array_equal(mask > 0, expected > 0)
    assert read_micrograph(tmp_path / "out" / "demo_mask.tif").pixel_size_nm == pytest.approx(
        PIXEL_SIZE_NM
    )
    overlay = np.asarray(Image.open(tmp_path / "out" / "demo_overlay.png"))
    assert overlay.shape[1:] == (96, 3) and overlay.shape[0] > 90  # the micrograph, then the key strip
    overlay = overlay[:90]
    outline = (overlay == OVERLAY_COLOUR).all(axis=-1)  # grey pixels never match the colour
    assert outline.any()
    np.testing.assert_array_equal(outline, find_boundaries(mask > 0, mode="inner"))


def test_overlay_of_a_large_image_is_downsampled(predictor, tmp_path):
    image = np.random.default_rng(0).normal(1000, 30, size=(260, 200)).astype("float32")
    path = _write_tiff(tmp_path / "big.tif", image)
    result = segment_file(path, predictor, tmp_path, tile_size=128, overlay_max_size=100)
    assert np.asarray(Image.open(tmp_path / "big_overlay.png")).shape[1] == 67
    assert result.overlay_key["block_factor"] == 3  # 260 x 200 shown as 87 x 67


def test_rgb_saved_grey_micrograph_is_segmented_as_grey(predictor, tmp_path):
    grey = np.random.default_rng(1).integers(0, 255, size=(40, 52)).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    _write_tiff(tmp_path / "grey.tif", grey, pixel_size_nm=None)
    # Neither file records a pixel size: the network is applied at their own grid.
    rgb = segment_file(tmp_path / "rgb.png", predictor, tmp_path / "out", save_probability=True, resample="never")
    segment_file(tmp_path / "grey.tif", predictor, tmp_path / "out", save_probability=True, resample="never")
    assert rgb.shape == (40, 52)
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "out" / "rgb_prob.tif"),
        tifffile.imread(tmp_path / "out" / "grey_prob.tif"),
    )


def test_segment_files_skips_bad_files_and_writes_a_summary(predictor, tmp_path):
    good = np.random.default_rng(2).normal(1000, 30, size=(32, 36)).astype("float32")
    bad = good.copy()
    bad[0, 0] = np.nan
    paths = [_write_tiff(tmp_path / "good.tif", good), _write_tiff(tmp_path / "bad.tif", bad)]
    results, failures = segment_files(paths, predictor, tmp_path / "out", progress=False)
    assert [r.input for r in results] == [str(paths[0])]
    assert len(failures) == 1 and "bad.tif" in failures[0][1] and "NaN" in failures[0][1]
    assert not (tmp_path / "out" / "bad_mask.tif").exists()
    summary = json.loads((tmp_path / "out" / "segmentation.json").read_text())
    assert summary["halo_px"] == 24 and len(summary["results"]) == 1
    assert summary["failures"][0]["input"] == str(paths[1])


def test_a_write_failure_while_the_next_micrograph_is_segmented_removes_its_outputs(predictor, tmp_path,
                                                                                   monkeypatch):
    # Micrograph a is written in a thread while b is segmented; a's overlay fails (disk full):
    # none of a's outputs stay, b is never written, and the folder the call made goes.
    from tem_rf.serve import segmented_micrograph as segment_lib

    image = np.random.default_rng(3).normal(1000, 30, size=(32, 36)).astype("float32")
    paths = [_write_tiff(tmp_path / "a.tif", image), _write_tiff(tmp_path / "b.tif", image)]
    real = segment_lib.write_overlay

    def failing(target, *args, **kwargs):
        if Path(target).name.startswith("a_"):
            raise OSError(28, "No space left on device")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(segment_lib, "write_overlay", failing)
    with pytest.raises(OSError, match="No space left"):
        segment_files(paths, predictor, tmp_path / "out" / "deeper", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_failed_labels_tiff_written_beside_the_overlay_leaves_no_file(predictor, tmp_path, monkeypatch):
    # The labels TIFF is written in a thread while the overlay is drawn: when it fails (disk
    # full), the overlay still finishes first and then every output of the micrograph goes.
    import tem_rf.particles

    image = np.random.default_rng(5).normal(1000, 30, size=(32, 36)).astype("float32")
    path = _write_tiff(tmp_path / "a.tif", image)

    def failing(target, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tem_rf.particles, "write_labels", failing)
    with pytest.raises(OSError, match="No space left"):
        segment_files([path], predictor, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_failures_are_reported_in_file_order_when_writing_overlaps_the_next(predictor, tmp_path, monkeypatch):
    from tem_rf.serve import segmented_micrograph as segment_lib

    image = np.random.default_rng(4).normal(1000, 30, size=(32, 36)).astype("float32")
    broken = image.copy()
    broken[0, 0] = np.nan
    paths = [_write_tiff(tmp_path / name, data) for name, data in
             (("a.tif", image), ("b.tif", broken), ("c.tif", image))]
    real = segment_lib._measure_and_write

    def too_many(path, *args, **kwargs):
        if Path(path).name == "a.tif":
            raise InputError(path, "has 70000 particles, more than a uint16 label image holds (65535)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(segment_lib, "_measure_and_write", too_many)
    results, failures = segment_files(paths, predictor, tmp_path / "out", progress=False)
    assert [Path(r.input).name for r in results] == ["c.tif"]
    assert [Path(p).name for p, _ in failures] == ["a.tif", "b.tif"]
    assert "70000 particles" in failures[0][1] and "NaN" in failures[1][1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("a_")) == []
    assert (tmp_path / "out" / "c_mask.tif").exists() and (tmp_path / "out" / "c_labels.tif").exists()


def test_expand_inputs_globs_folders_and_clashing_names(tmp_path):
    for name in ("a.tif", "b.tiff", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.dm4").write_bytes(b"x")
    assert expand_inputs([str(tmp_path / "*.tif*")]) == [tmp_path / "a.tif", tmp_path / "b.tiff"]
    assert expand_inputs([str(tmp_path)]) == [tmp_path / "a.tif", tmp_path / "b.tiff"]
    with pytest.raises(InputError, match="matches no micrograph files"):
        expand_inputs([str(tmp_path / "*.mrc")])
    with pytest.raises(InputError, match="same name stem as"):
        expand_inputs([str(tmp_path / "a.tif"), str(tmp_path / "sub" / "a.dm4")])


def test_segment_and_make_tfrecords_take_the_same_files_from_a_folder_or_glob(tmp_path):
    # One rule (tem_rf.data.source_files.is_input_name): micrograph extensions in any case, no
    # hidden files (macOS's ._a.tif companions, tem_rf's temporaries); a file named alone is taken.
    from tem_rf.data.source_files import find_image_files

    for name in ("a.tif", "B.TIF", "c.dm4", "._a.tif", ".a.tif.tmp-1.tif", "notes.txt", "d.tif.bak"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.tif").write_bytes(b"x")
    taken = [tmp_path / "B.TIF", tmp_path / "a.tif", tmp_path / "c.dm4"]
    for given in (str(tmp_path), str(tmp_path / "*"), str(tmp_path / "*.*")):
        assert expand_inputs([given]) == taken
        assert find_image_files(given) == taken
    assert expand_inputs([str(tmp_path / "**" / "*.tif")]) == [tmp_path / "a.tif", tmp_path / "sub" / "e.tif"]
    assert find_image_files(str(tmp_path / "**" / "*.tif")) == [tmp_path / "a.tif", tmp_path / "sub" / "e.tif"]
    assert expand_inputs([str(tmp_path / "._a.tif")]) == [tmp_path / "._a.tif"]  # named alone: taken


def test_a_file_name_with_commas_survives_the_comma_separated_flag(tmp_path):
    for name in ("grid 3, area 2.tif", "a.tif", "b,c,d.tif"):
        (tmp_path / name).write_bytes(b"x")
    split = f"{tmp_path}/grid 3, area 2.tif,{tmp_path}/a.tif,{tmp_path}/b,c,d.tif".split(",")
    assert expand_inputs(split) == [tmp_path / "grid 3, area 2.tif", tmp_path / "a.tif", tmp_path / "b,c,d.tif"]
    with pytest.raises(InputError, match=r"/b: no such file or folder"):  # no joined name exists
        expand_inputs([str(tmp_path / "b"), "c"])


def test_output_dir_under_a_file_is_refused_before_the_model_is_loaded(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    check_output_dir(tmp_path / "new" / "masks")  # missing folders are created later
    for out_dir in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "masks"):
        with pytest.raises(InputError, match=r"notes.txt: is a file, not a folder \(--out_dir\)"):
            check_output_dir(out_dir)
        with pytest.raises(InputError, match="is a file, not a folder"):  # not: no such model
            segment_micrographs(tmp_path / "no_model", [str(tmp_path / "*.tif")], out_dir)


def test_failure_line_gives_one_reason_or_names_the_files(tmp_path):
    def run(failures):
        return SegmentationRun("model", [tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "o", [], failures)

    assert run([]).failure_line() is None
    assert run([("a.tif", "a.tif: contains NaN")]).failure_line() == "1 of 2 micrographs failed: a.tif: contains NaN"
    assert run([("a.tif", "x"), ("b.tif", "y")]).failure_line() == (
        f"2 of 2 micrographs failed: a.tif, b.tif (reasons above and in {tmp_path / 'o' / 'segmentation.json'})"
    )
    assert run([]).summary_lines() == [f"wrote 0 of 2 segmentations to {tmp_path / 'o'}"]


# ---------------------------------------------------------------------------------------------
# Options and inputs a microscopist gets wrong


@pytest.mark.parametrize("threshold", [float("nan"), -0.1, 1.5, float("inf")])
def test_threshold_nan_or_outside_0_1_is_one_clear_error(predictor, tmp_path, threshold):
    expected = rf"^--threshold must be a probability from 0 to 1, got {threshold!r}$"
    with pytest.raises(InputError, match=expected):
        check_threshold(threshold)
    with pytest.raises(InputError, match=expected):
        segment_image(np.ones((8, 8)), predictor, threshold=threshold)
    with pytest.raises(InputError, match=expected):  # before the (missing) model is loaded
        segment_micrographs(tmp_path / "no_model", [str(tmp_path / "*.tif")], tmp_path / "o", threshold=threshold)
    assert check_threshold(0) == 0.0 and check_threshold(1) == 1.0


def test_unreadable_matches_are_named_not_skipped(predictor, tmp_path, monkeypatch):
    folder = tmp_path / "session"
    folder.mkdir()
    _write_tiff(folder / "good.tif", np.random.default_rng(0).normal(1000, 30, size=(32, 32)).astype("float32"))
    (folder / "folder.tif").mkdir()
    (folder / "raw").mkdir()  # a plain sub-folder is not an input
    os.mkfifo(folder / "pipe.tif")
    os.symlink(folder / "gone.tif", folder / "dangling.tif")
    os.symlink(folder / "loop.tif", folder / "loop.tif")
    names = ["dangling.tif", "folder.tif", "good.tif", "loop.tif", "pipe.tif"]
    assert expand_inputs([str(folder)]) == [folder / n for n in names]
    assert expand_inputs([str(folder / "*")]) == [folder / n for n in names]
    results, failures = segment_files(expand_inputs([str(folder)]), predictor, tmp_path / "out", progress=False)
    assert [r.input for r in results] == [str(folder / "good.tif")]
    assert dict(failures) == {
        str(folder / "dangling.tif"): f"{folder / 'dangling.tif'}: is a broken symbolic link (to "
        f"{folder / 'gone.tif'}, which does not exist)",
        str(folder / "folder.tif"): f"{folder / 'folder.tif'}: is a folder, expected a file",
        str(folder / "loop.tif"): f"{folder / 'loop.tif'}: is a loop of symbolic links (it never reaches a file)",
        str(folder / "pipe.tif"): f"{folder / 'pipe.tif'}: is a named pipe (FIFO), not a regular file",
    }


def test_outputs_of_an_earlier_run_are_never_read_back(predictor, tmp_path, caplog):
    folder = tmp_path / "session"
    folder.mkdir()
    image = np.random.default_rng(0).normal(1000, 30, size=(32, 32)).astype("float32")
    _write_tiff(folder / "a.tif", image)
    _write_tiff(folder / "b_mask.tif", image)  # a micrograph that happens to end in _mask
    segment_files([folder / "a.tif"], predictor, folder, progress=False, save_probability=True)
    assert {p.name for p in folder.iterdir()} == {
        "a.tif", "b_mask.tif", "a_mask.tif", "a_prob.tif", "a_overlay.png", "a_labels.tif", "a_particles.csv",
        "a_sizes.png", "segmentation.json", "summary.csv",
    }
    with caplog.at_level(logging.WARNING, logger="tem_rf.serve.segment"):
        assert expand_inputs([str(folder)]) == [folder / "a.tif", folder / "b_mask.tif"]
    assert ("left out 5 file(s) written by an earlier segmentation (a_labels.tif, a_mask.tif, a_overlay.png, "
            "a_prob.tif, a_sizes.png)") in caplog.text
    with pytest.raises(InputError, match=r"a_labels\.tif: is an output of an earlier segmentation \(of .*a\.tif\)"):
        expand_inputs([str(folder / "a_labels.tif")])
    assert expand_inputs([str(folder / "*.tif")]) == [folder / "a.tif", folder / "b_mask.tif"]
    with pytest.raises(InputError, match=r"a_mask\.tif: is an output of an earlier segmentation \(of .*a\.tif\)"):
        expand_inputs([str(folder / "a_mask.tif")])
    with pytest.raises(InputError, match=r"matches no micrograph files \(only outputs of an earlier segmentation\)"):
        expand_inputs([str(folder / "*_prob.tif")])
    # The micrograph moved away: segmentation.json still says whose output it is.
    (folder / "a.tif").rename(tmp_path / "a.tif")
    assert expand_inputs([str(folder)]) == [folder / "b_mask.tif"]
    assert segmentation_output_of(folder / "a_mask.tif") == folder / "a.tif"
    assert segmentation_output_of(folder / "a_labels.tif") == folder / "a.tif"
    assert segmentation_output_of(folder / "b_mask.tif") is None


def test_frame_of_a_stack_is_segmented_and_recorded(predictor, tmp_path):
    frames = np.random.default_rng(0).normal(1000, 30, size=(3, 32, 40)).astype("float32")
    tifffile.imwrite(tmp_path / "stack.tif", frames, photometric="minisblack")
    with pytest.raises(InputError, match="is a stack of 3 frames of 32x40 px"):
        segment_file(tmp_path / "stack.tif", predictor, tmp_path / "out")
    result = segment_file(tmp_path / "stack.tif", predictor, tmp_path / "out", frame=2, save_probability=True,
                          resample="never")  # an uncalibrated stack: the network's own grid
    assert result.frame == 2 and result.shape == (32, 40)
    expected, _ = segment_image(frames[2], predictor, tile_size=None)
    np.testing.assert_allclose(tifffile.imread(result.probability), expected, atol=1e-5)
    with pytest.raises(InputError, match=r"--frame must be a frame number, 0 or more, got -1"):
        segment_micrographs(tmp_path / "no_model", [str(tmp_path / "stack.tif")], tmp_path / "o", frame=-1)


# ---------------------------------------------------------------------------------------------
# Particles: counts and sizes of what was segmented


def _threshold_predictor(pixel_size_nm=0.5):
    """A stub network: particle wherever the standardised image is above 0 (pixel-wise, so tiling
    does not matter), for micrographs of known particles."""

    def function(images):
        return {SIGNATURE_OUTPUT: (np.asarray(images)[..., 0] > 0).astype(np.float32)}

    metadata = {"size_divisor": 4, "halo_px": 0, "pixel_size_nm": pixel_size_nm, "architecture": "stub"}
    return Predictor(function, metadata, "stub")


def _discs(shape, discs):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for row, col, radius in discs:
        mask |= (rows - row) ** 2 + (cols - col) ** 2 <= radius**2
    return mask


# Five discs of radius 8 px: two touching (split by the watershed), one cut by the image edge.
DISCS = [(20, 20, 8), (20, 60, 8), (70, 30, 8), (70, 45.5, 8), (100, 124, 8)]


def _disc_micrograph(path, discs=DISCS, shape=(112, 128), pixel_size_nm=0.5, seed=0):
    mask = _discs(shape, discs)
    image = np.where(mask, 1000.0, 200.0) + np.random.default_rng(seed).normal(0, 5, shape)
    return _write_tiff(path, image.astype(np.float32), pixel_size_nm=pixel_size_nm), mask


def test_segment_measures_particles_of_known_discs(tmp_path):
    path, mask = _disc_micrograph(tmp_path / "discs.tif")
    result = segment_file(path, _threshold_predictor(), tmp_path / "out", tile_size=32,
                          min_particle_area_px=20)
    out = tmp_path / "out"
    written = tifffile.imread(out / "discs_mask.tif") > 0
    assert (written != mask).sum() <= 4  # x-ray outlier removal may fill a pixel where discs touch
    mask = written
    rows = list(csv.DictReader(open(out / "discs_particles.csv")))
    assert len(rows) == 5 and [r["touches_edge"] for r in rows].count("True") == 1
    inner = [float(r["diameter_nm"]) for r in rows if r["touches_edge"] == "False"]
    assert np.median(inner) == pytest.approx(8.0, rel=0.03)  # 2 r p = 2 * 8 * 0.5 nm
    labels = tifffile.imread(out / "discs_labels.tif")
    assert labels.dtype == np.uint16 and labels.max() == 5 and set(np.unique(labels)) == set(range(6))
    np.testing.assert_array_equal(labels > 0, mask)  # the touching pair split, nothing lost
    assert read_micrograph(out / "discs_labels.tif").pixel_size_nm == pytest.approx(0.5)
    summary = result.particles
    assert summary["count"] == 5 and summary["count_edge"] == 1 and summary["count_measured"] == 4
    assert summary["diameter_unit"] == "nm" and summary["diameter_median"] == pytest.approx(8.0, rel=0.03)
    assert summary["area_fraction"] == pytest.approx(mask.mean())
    # The overlay outlines each particle (the line between the touching pair too).
    overlay = np.asarray(Image.open(out / "discs_overlay.png"))[:labels.shape[0]]
    red = (overlay == OVERLAY_COLOUR).all(axis=-1)
    cyan = (overlay == EDGE_COLOUR).all(axis=-1)  # the particle cut by the image edge
    outlines = find_boundaries(labels, mode="inner") & (labels > 0)
    edge_id = int(next(r["id"] for r in rows if r["touches_edge"] == "True"))
    np.testing.assert_array_equal(cyan, outlines & (labels == edge_id))
    np.testing.assert_array_equal(red, outlines & (labels != edge_id))
    assert red[62:78, 37:39].any()  # where the two discs touch
    assert result.overlay_key["scale_bar"] == "10 nm" and result.overlay_key["scale_bar_px"] == 20
    assert not (overlay == MASK_OUTLINE_COLOUR).all(axis=-1).any()  # every mask region is a particle


def test_small_specks_are_not_counted_and_outlined_in_amber(tmp_path):
    path, _ = _disc_micrograph(tmp_path / "specks.tif", discs=[(40, 40, 10), (90, 90, 2)])
    result = segment_file(path, _threshold_predictor(), tmp_path, min_particle_area_nm2=10.0)  # 40 px
    assert result.particles["count"] == 1 and result.particles["min_area_px"] == pytest.approx(40.0)
    overlay = np.asarray(Image.open(tmp_path / "specks_overlay.png"))[:128]
    amber = (overlay == MASK_OUTLINE_COLOUR).all(axis=-1)
    assert amber[86:95, 86:95].any() and not amber[25:56, 25:56].any()


def test_more_particles_than_uint16_labels_hold_is_one_error_and_no_files(tmp_path):
    image = np.random.default_rng(0).normal(1000, 30, size=(520, 520)).astype(np.float32)
    path = _write_tiff(tmp_path / "dots.tif", image)

    def dots(images):  # single isolated pixels: 260 x 260 = 67600 particles
        out = np.zeros(np.shape(images)[:-1], np.float32)
        out[:, ::2, ::2] = 1.0
        return {SIGNATURE_OUTPUT: out}

    predictor = Predictor(dots, {"size_divisor": 4, "halo_px": 0, "pixel_size_nm": PIXEL_SIZE_NM}, "stub")
    with pytest.raises(InputError, match=r"dots\.tif.*67600 particles, more than a uint16 label image holds"):
        segment_file(path, predictor, tmp_path / "out", tile_size=None, min_particle_area_px=1)
    assert list((tmp_path / "out").iterdir()) == []


def test_particle_summary_of_an_empty_mask_is_clean_json(tmp_path):
    image = np.random.default_rng(0).normal(1000, 30, size=(64, 64)).astype(np.float32)
    path = _write_tiff(tmp_path / "empty.tif", image, pixel_size_nm=None)

    def nothing(images):
        return {SIGNATURE_OUTPUT: np.zeros(np.shape(images)[:-1], np.float32)}

    predictor = Predictor(nothing, {"size_divisor": 4, "halo_px": 0}, "stub")
    segment_files([path], predictor, tmp_path / "out", progress=False)
    text = (tmp_path / "out" / "segmentation.json").read_text()
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in segmentation.json"))
    particles = summary["results"][0]["particles"]
    assert particles["count"] == 0 and particles["diameter_unit"] == "px"
    assert particles["diameter_median"] is None and particles["diameter_std"] is None
    assert particles["area_fraction"] == 0.0 and particles["min_area_px"] == 16
    assert (tmp_path / "out" / "empty_particles.csv").read_text().startswith("id,")
    assert tifffile.imread(tmp_path / "out" / "empty_labels.tif").max() == 0


def test_two_micrographs_give_a_pooled_csv_and_a_size_histogram(tmp_path, caplog):
    session = tmp_path / "session"
    session.mkdir()
    _disc_micrograph(session / "a.tif")
    _disc_micrograph(session / "b.tif", discs=[(30, 30, 6), (80, 80, 6)], seed=1)
    results, failures = segment_files(expand_inputs([str(session)]), _threshold_predictor(), session,
                                      progress=False, min_particle_area_px=20)
    assert not failures and [r.particles["count"] for r in results] == [5, 2]
    rows = list(csv.DictReader(open(session / "particles.csv")))
    assert [r["source"] for r in rows] == ["a.tif"] * 5 + ["b.tif"] * 2
    assert list(rows[0])[:2] == ["source", "id"]
    assert (session / "particle_sizes.png").read_bytes()[:4] == b"\x89PNG"
    pooled = json.loads((session / "segmentation.json").read_text())["pooled"]
    assert pooled["count"] == 7 and pooled["count_measured"] == 6 and pooled["diameter_unit"] == "nm"
    assert pooled["diameter_median"] == pytest.approx(8.0, rel=0.03)
    # Nothing of this run is read back as a micrograph, the histogram PNG included ...
    with caplog.at_level(logging.WARNING, logger="tem_rf.serve.segment"):
        assert expand_inputs([str(session)]) == [session / "a.tif", session / "b.tif"]
    assert "particle_sizes.png" in caplog.text and "b_labels.tif" in caplog.text
    with pytest.raises(InputError, match=r"particle_sizes\.png: is an output of an earlier segmentation"):
        expand_inputs([str(session / "particle_sizes.png")])
    # ... and nothing is replaced without --overwrite: the particle files, pooled ones included.
    inputs = [session / "a.tif", session / "b.tif"]
    aside = tmp_path / "aside"
    aside.mkdir()
    for output in [p for p in session.iterdir() if p not in inputs]:
        output.rename(aside / output.name)
    check_no_overwrite(inputs, session)
    for name in ("b_labels.tif", "a_particles.csv", "particle_sizes.png", "particles.csv"):
        (aside / name).rename(session / name)
        with pytest.raises(InputError, match=rf"already holds {name}; pass --overwrite"):
            check_no_overwrite(inputs, session)
        check_no_overwrite(inputs, session, measure=False)  # --nomeasure does not write it
        (session / name).rename(aside / name)


def test_particle_options_that_cannot_apply_are_refused(tmp_path):
    path, _ = _disc_micrograph(tmp_path / "nopix.tif", pixel_size_nm=None)
    with pytest.raises(InputError, match=r"nopix\.tif: pixel size unknown, so --min_particle_area_nm2 cannot apply"):
        segment_file(path, _threshold_predictor(), tmp_path / "out", min_particle_area_nm2=5.0, resample="never")
    assert not (tmp_path / "out").exists()
    result = segment_file(path, _threshold_predictor(), tmp_path / "out", min_particle_area_px=20, resample="never")
    assert result.particles["diameter_unit"] == "px" and result.particles["count"] == 5
    for options, message in (
        ({"min_particle_area_nm2": 1.0, "min_particle_area_px": 4}, "not both"),
        ({"min_particle_area_px": -1}, r"--min_particle_area_px: .*>= 0"),
        ({"min_particle_area_nm2": float("nan")}, r"--min_particle_area_nm2: .*>= 0"),
    ):
        with pytest.raises(InputError, match=message):  # before the (missing) model is loaded
            segment_micrographs(tmp_path / "no_model", [str(path)], tmp_path / "o", **options)


def test_tiles_of_a_large_micrograph_show_progress(predictor, capsys):
    image = np.random.default_rng(0).normal(size=(200, 200)).astype(np.float32)
    single = predict_probability(image, predictor, tile_size=None)
    tiled = predict_probability(image, predictor, tile_size=64, progress_desc="big.tif: tiles")
    np.testing.assert_allclose(tiled, single, atol=1e-5)
    line = capsys.readouterr().err.strip()
    # 4 x 4 tiles of 64 px cover the 200 px image (padded to 200); one line, as stderr is no terminal.
    assert line.startswith("big.tif: tiles: 100% 16/16 tile") and "\r" not in line
    predict_probability(image, predictor, tile_size=None, progress_desc="one pass")
    predict_probability(image, predictor, tile_size=64)
    assert capsys.readouterr().err == ""  # one network call, or no description: nothing to show


def test_frozen_heap_keeps_alive_objects_out_of_collections_and_hands_them_back(request):
    import gc

    from tem_rf.serve.segment_command import frozen_heap

    gc.unfreeze()  # conftest froze the test session's modules; this test starts with none frozen
    request.addfinalizer(gc.freeze)
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # everything alive at entry
        made_since = [[i] for i in range(5000)]  # a nested freeze would take these in too
        with frozen_heap():  # already frozen: left as it is (other threads may move a few objects)
            assert abs(gc.get_freeze_count() - frozen) < 1000
        assert abs(gc.get_freeze_count() - frozen) < 1000 and len(made_since) == 5000
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("a failure inside")
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_run_that_fails_half_way_leaves_the_previous_run_whole(predictor, tmp_path, monkeypatch, failure):
    # The first micrograph's outputs are written, the second's overlay fails (a full disk, or the
    # user's Ctrl-C): the earlier run's files come back byte for byte, nothing new stays.
    from tem_rf.serve import segmented_micrograph as segment_lib

    rng = np.random.default_rng(6)
    paths = [_write_tiff(tmp_path / f"{name}.tif", rng.normal(1000, 30, size=(32, 36)).astype("float32"))
             for name in ("a", "b", "c")]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    segment_files(paths, predictor, out, progress=False, threshold=0.3)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "segmentation.json" in before and "particles.csv" in before and "b_overlay.png" in before
    real = segment_lib.write_overlay

    def failing(target, *args, **kwargs):
        if Path(target).name.startswith("b_"):
            raise failure
        return real(target, *args, **kwargs)

    monkeypatch.setattr(segment_lib, "write_overlay", failing)
    with pytest.raises(type(failure)):
        segment_files(paths, predictor, out, progress=False, threshold=0.7)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # hidden set-aside files gone too

    fresh = tmp_path / "fresh"
    with pytest.raises(type(failure)):
        segment_files(paths, predictor, fresh, progress=False)
    assert not fresh.exists()  # a's outputs went with the failed run


def test_an_info_bar_and_regions_are_left_out_of_mask_and_particles(tmp_path):
    shape = (112, 128)
    mask = _discs(shape, DISCS[:3])
    image = np.where(mask, 1000.0, 200.0) + np.random.default_rng(0).normal(0, 5, shape)
    bar = np.zeros((20, 128))  # a black info bar with bright 'text' the stub network takes for particles
    for start in range(10, 60, 8):  # letters 4 px wide
        bar[6:12, start:start + 4] = 1500.0
    path = _write_tiff(tmp_path / "sem.tif", np.vstack([image, bar]).astype(np.float32), pixel_size_nm=0.5)
    result = segment_file(path, _threshold_predictor(), tmp_path / "out", tile_size=None, min_particle_area_px=5,
                          exclude_regions="0:20,0:30")  # and the corner that halves disc 1
    written = tifffile.imread(tmp_path / "out" / "sem_mask.tif") > 0
    assert not written[112:].any() and not written[:20, :30].any()
    np.testing.assert_array_equal(written[20:112], mask[20:])  # the sample, as without a bar
    assert result.excluded == {"info_bar_rows": {"top": 0, "bottom": 20}, "regions": "0:20,0:30",
                               "pixels": 20 * 128 + 20 * 30}
    rows = list(csv.DictReader(open(tmp_path / "out" / "sem_particles.csv")))
    # in scan order disc 2, then disc 1 cut by the region (listed, out of the sizes), disc 3; no text
    assert [r["touches_edge"] for r in rows] == ["False", "True", "False"]
    kept = segment_file(path, _threshold_predictor(), tmp_path / "kept", tile_size=None, min_particle_area_px=5,
                        info_bar="keep")
    assert kept.excluded["pixels"] == 0
    assert (tifffile.imread(kept.mask)[112:] > 0).any()  # the bar's text taken for particles


def test_a_label_mask_given_as_a_micrograph_is_refused(tmp_path):
    from tem_rf.serve.segment import check_not_a_mask

    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 255
    path = _write_tiff(tmp_path / "a_mask.tif", mask, pixel_size_nm=None)
    with pytest.raises(InputError, match=r"a_mask\.tif: holds two values only \(0 and 255\): a label mask"):
        segment_file(path, _threshold_predictor(), tmp_path / "out", pixel_size_nm=0.5)
    assert not (tmp_path / "out").exists()
    check_not_a_mask("x.tif", mask + np.arange(64, dtype=np.uint8)[:, None] % 2)  # three values: a micrograph
    check_not_a_mask("tiny.tif", np.eye(4))  # too small to tell
