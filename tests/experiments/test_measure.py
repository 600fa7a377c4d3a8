"""experiments/measure.py: instance scores of a model or the Fourier baseline; bad input in one line."""

import json

import numpy as np
import tifffile
from PIL import Image

from tem_rf.data.synthetic import make_micrograph

from binaries import call_main


def _run(*args):
    return call_main("experiments.measure", *args)


def _demo_pairs(folder, count=2, size=96):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for index in range(count):
        image, mask = make_micrograph("high_res", size=size, pixel_size_nm=0.05, rng=index)
        tifffile.imwrite(folder / "images" / f"m{index}.tif", np.rint(image).astype(np.uint16), imagej=True,
                         resolution=(20.0, 20.0), metadata={"unit": "nm"})
        Image.fromarray(mask * np.uint8(255)).save(folder / "labels" / f"m{index}_mask.png")


def test_measure_fourier_and_a_keras_model(tmp_path):
    _demo_pairs(tmp_path)
    out = _run("--method=fourier", "--lattice_spacings_nm=0.235,0.204", "--sigma_px=3",
               f"--images={tmp_path / 'images'}", f"--labels={tmp_path / 'labels'}",
               f"--out_dir={tmp_path / 'fourier'}", "--min_particle_area_px=30", "--noprogress")
    assert out.returncode == 0, out.stderr
    assert "Fourier filter: lattice_spacings_nm=(0.235, 0.204)" in out.stdout
    assert out.stdout.count("\nm0.tif") == 1 and "\npooled" in out.stdout
    summary = json.loads((tmp_path / "fourier" / "instances.json").read_text())
    assert summary["method"] == "fourier" and summary["pooled"]["images"] == 2
    assert len((tmp_path / "fourier" / "instances.csv").read_text().splitlines()) == 3

    from tem_rf.models import residual_unet

    residual_unet(2, seed=0).save(tmp_path / "model.keras")
    out = _run(f"--model={tmp_path / 'model.keras'}", f"--images={tmp_path / 'images'}",
               f"--labels={tmp_path / 'labels'}", f"--out_dir={tmp_path / 'network'}", "--tile_size=64",
               "--min_particle_area_px=30", "--noprogress")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "network" / "instances.json").read_text())
    assert summary["method"] == "network" and summary["model"].endswith("model.keras")
    assert summary["pooled"]["true_count"] > 0 and summary["pooled"]["diameter_unit"] == "nm"


def test_measure_bad_inputs_are_one_line_and_write_nothing(tmp_path):
    _demo_pairs(tmp_path, count=1, size=64)
    (tmp_path / "empty").mkdir()
    common = ("--method=fourier", f"--images={tmp_path / 'images'}", f"--out_dir={tmp_path / 'out'}")
    out = _run(*common, f"--labels={tmp_path / 'empty'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'empty'}: no masks found")
    Image.fromarray(np.zeros((60, 64), np.uint8)).save(tmp_path / "labels" / "m0_mask.png")
    out = _run(*common, f"--labels={tmp_path / 'labels'}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'labels' / 'm0_mask.png'}: is 60x64 px, but its micrograph m0.tif is 64x64 px"
    )
    out = _run(f"--images={tmp_path / 'images'}", f"--labels={tmp_path / 'labels'}", f"--out_dir={tmp_path / 'out'}")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: --model is needed with --method=network (or use --method=fourier)"
    )
    out = _run(*common, f"--labels={tmp_path / 'labels'}", "--iou_threshold=0")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == "error: --iou_threshold must lie in (0, 1], got 0.0"
    assert not (tmp_path / "out").exists()
