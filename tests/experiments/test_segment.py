"""experiments/segment.py end to end: SavedModel in, masks/overlays out, bad files reported."""

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tem_rf.serve.export import export_saved_model
from tem_rf.models import residual_unet
from tem_rf.data.synthetic import make_micrograph

from binaries import call_main


def _run(*args):
    return call_main("experiments.segment", *args)


def test_segment_saved_model_over_a_glob(tmp_path):
    export_saved_model(residual_unet(2, seed=0), tmp_path / "model", {"pixel_size_nm": 0.02152}, raw_dtypes=())
    images = tmp_path / "session"
    images.mkdir()
    demo, _ = make_micrograph("high_res", size=72, rng=0)
    tifffile.imwrite(  # 0.03 nm/px: more than 10 % off the training pixel size
        images / "demo.tif", np.rint(demo).astype(np.uint16), imagej=True,
        resolution=(1 / 0.03, 1 / 0.03), metadata={"unit": "nm"},
    )
    grey = np.random.default_rng(0).integers(0, 255, size=(50, 61)).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(images / "rgb.png")
    nan_image = demo.copy()
    nan_image[1, 2] = np.nan
    tifffile.imwrite(images / "holes.tif", nan_image)

    out = _run(  # rgb.png records no pixel size: --pixel_size_nm gives it
        f"--model={tmp_path / 'model'}", f"--images={images / '*.tif'},{images / '*.png'}",
        f"--out_dir={tmp_path / 'masks'}", "--tile_size=32", "--save_probability", "--pixel_size_nm=0.02152",
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "differs from the training pixel size" not in out.stderr  # resampled to it instead
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: 1 of 3 micrographs failed: {images / 'holes.tif'}: contains 1 NaN or infinite "
        "pixel(s); fix or mask them first"
    )
    assert "wrote 2 of 3 segmentations" in out.stdout
    masks = tmp_path / "masks"
    assert tifffile.imread(masks / "demo_mask.tif").shape == (72, 72)
    assert tifffile.imread(masks / "rgb_mask.tif").shape == (50, 61)
    assert tifffile.imread(masks / "rgb_prob.tif").dtype == np.float32
    assert (masks / "demo_overlay.png").stat().st_size > 0
    assert not (masks / "holes_mask.tif").exists()
    summary = json.loads((masks / "segmentation.json").read_text())
    assert summary["halo_px"] == 24 and len(summary["results"]) == 2
    scales = {Path(r["input"]).name: r["scale"] for r in summary["results"]}
    # 0.03 nm/px seen at the training 0.02152 nm/px: 72 px become round(72 x 1.394) = 100 px
    assert scales["demo.tif"]["pixel_size_source"] == "file"
    assert scales["demo.tif"]["resample_factor"] == pytest.approx(0.03 / 0.02152)
    assert scales["demo.tif"]["network_shape"] == [100, 100]
    assert scales["rgb.png"] == {"pixel_size_nm": 0.02152, "pixel_size_source": "flag", "training_pixel_size_nm": 0.02152,
                                 "resample_factor": 1.0, "network_shape": [50, 61], "first_pass_particle_px": None,
                                 "trained_particle_px": None}
    assert tifffile.TiffFile(masks / "rgb_mask.tif").imagej_metadata["unit"] == "nm"  # the flag's pixel size, recorded

    native = _run(f"--model={tmp_path / 'model'}", f"--images={images / 'demo.tif'}", f"--out_dir={tmp_path / 'native'}",
                  "--resample=never", "--nomeasure")
    assert native.returncode == 0, native.stderr
    assert "demo.tif: pixel size 0.03 nm differs from the training pixel size 0.02152 nm" in native.stderr


def test_segment_bad_model_and_inputs_are_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    tifffile.imwrite(tmp_path / "a.tif", np.ones((8, 8), np.uint16))
    out = _run(f"--model={tmp_path / 'empty'}", f"--input={tmp_path / 'a.tif'}", f"--output_dir={tmp_path / 'o'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "--output_dir is deprecated; use --out_dir" in out.stderr  # the old names still work
    assert "--input is deprecated; use --images" in out.stderr
    assert "not a run directory (no best.keras or model.keras) and not a SavedModel" in out.stderr.splitlines()[-1]
    out = _run(f"--model={tmp_path / 'empty'}", f"--images={tmp_path / '*.mrc'}", f"--out_dir={tmp_path / 'o'}")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].endswith("matches no micrograph files")


def test_segment_output_dir_that_is_a_file_and_several_failures(tmp_path):
    export_saved_model(residual_unet(2, seed=0), tmp_path / "model", {"pixel_size_nm": 0.02152}, raw_dtypes=())
    (tmp_path / "notes.txt").write_text("x")
    tifffile.imwrite(tmp_path / "tiny.tif", np.arange(9, dtype=np.uint16).reshape(3, 3))
    tifffile.imwrite(tmp_path / "flat.tif", np.ones((8, 8), np.uint16))
    out = _run(f"--model={tmp_path / 'model'}", f"--images={tmp_path / 'tiny.tif'}",
               f"--out_dir={tmp_path / 'notes.txt'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'notes.txt'}: is a file, not a folder (--out_dir)"
    out = _run(f"--model={tmp_path / 'model'}", f"--images={tmp_path / '*.tif'}", f"--out_dir={tmp_path / 'o'}",
               "--resample=never")  # uncalibrated files, at their own grid
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: 2 of 2 micrographs failed: {tmp_path / 'flat.tif'}, {tmp_path / 'tiny.tif'} "
        f"(reasons above and in {tmp_path / 'o' / 'segmentation.json'})"
    )
    assert "tiny.tif: image is 3x3 px, smaller than the network's size divisor 4" in out.stderr


def test_segment_frame_threshold_and_a_rerun_into_the_input_folder(tmp_path):
    export_saved_model(residual_unet(2, seed=0), tmp_path / "model", {"pixel_size_nm": 0.02152}, raw_dtypes=())
    session = tmp_path / "session"
    session.mkdir()
    frames = np.random.default_rng(0).normal(1000, 30, size=(3, 36, 40)).astype(np.float32)
    tifffile.imwrite(session / "stack.tif", frames, photometric="minisblack")
    model = f"--model={tmp_path / 'model'}"
    for value in ("nan", "1.5"):
        out = _run(model, "--resample=never", f"--images={session}", f"--out_dir={session}", f"--threshold={value}")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1] == f"error: --threshold must be a probability from 0 to 1, got {value}"
    out = _run(model, "--resample=never", f"--images={session}", f"--out_dir={session}")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: 1 of 1 micrographs failed: {session / 'stack.tif'}: is a stack of 3 frames of 36x40 px, "
        "not a single image; choose one with --frame (0 to 2)"
    )
    # Outputs go next to the micrographs; a second run does not segment them, and replaces the
    # first run's outputs only when asked to.
    out = _run(model, "--resample=never", f"--images={session}", f"--out_dir={session}", "--frame=1")
    assert out.returncode == 0, out.stderr
    first = {p.name: p.read_bytes() for p in session.iterdir()}
    out = _run(model, "--resample=never", f"--images={session}", f"--out_dir={session}", "--frame=1")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == (
        f"error: {session}: already holds segmentation.json and 6 more of this run's outputs; pass "
        "--overwrite to replace them, or choose another --out_dir"
    )
    assert {p.name: p.read_bytes() for p in session.iterdir()} == first
    out = _run(model, "--resample=never", f"--images={session}", f"--out_dir={session}", "--frame=1", "--overwrite")
    assert out.returncode == 0, out.stderr
    assert "wrote 1 of 1 segmentations" in out.stdout
    assert ("left out 4 file(s) written by an earlier segmentation (stack_labels.tif, stack_mask.tif, "
            "stack_overlay.png, stack_sizes.png)") in out.stderr
    assert tifffile.imread(session / "stack_mask.tif").shape == (36, 40)
    summary = json.loads((session / "segmentation.json").read_text())
    assert summary["options"]["frame"] == 1 and summary["results"][0]["frame"] == 1
    out = _run(model, f"--images={session / 'stack.tif'}", f"--out_dir={tmp_path / 'o'}", "--signal=HAADF")
    assert out.returncode == 1
    assert "stack.tif: has no signal titled 'HAADF'; its signals are signal 1 (untitled) (a stack of 3 frames" in out.stderr


def test_segment_measures_particles_and_nomeasure_skips_it(tmp_path):
    export_saved_model(residual_unet(2, seed=0), tmp_path / "model", {"pixel_size_nm": 0.02152}, raw_dtypes=())
    images = tmp_path / "session"
    images.mkdir()
    for index in range(2):
        demo, _ = make_micrograph("high_res", size=64, rng=index)
        tifffile.imwrite(images / f"m{index}.tif", np.rint(demo).astype(np.uint16), imagej=True,
                         resolution=(1 / 0.02152, 1 / 0.02152), metadata={"unit": "nm"})
    model = f"--model={tmp_path / 'model'}"
    out = _run(model, f"--images={images}", f"--out_dir={tmp_path / 'a'}", "--min_particle_area_px=4",
               "--noprogress")
    assert out.returncode == 0, out.stderr
    a = tmp_path / "a"
    summary = json.loads((a / "segmentation.json").read_text())
    for result, name in zip(summary["results"], ("m0", "m1")):
        rows = (a / f"{name}_particles.csv").read_text().splitlines()
        assert len(rows) - 1 == result["particles"]["count"]
        assert result["particles"]["min_area_px"] == 4 and result["particles"]["diameter_unit"] == "nm"
        labels = tifffile.imread(a / f"{name}_labels.tif")
        assert labels.dtype == np.uint16 and labels.max() == result["particles"]["count"]
        assert f"{name}.tif: 64x64 px" in out.stdout and f"{result['particles']['count']} particles" in out.stdout
    assert summary["pooled"]["micrographs"] == 2 and (a / "particles.csv").exists()
    assert (a / "particle_sizes.png").exists()
    out = _run(model, f"--images={images}", f"--out_dir={tmp_path / 'b'}", "--nomeasure")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "m0_mask.tif", "m0_overlay.png", "m1_mask.tif", "m1_overlay.png", "segmentation.json"
    ]
    out = _run(model, f"--images={images}", f"--out_dir={tmp_path / 'c'}", "--min_particle_area_px=-2")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: --min_particle_area_px: ")
    assert not (tmp_path / "c").exists()
