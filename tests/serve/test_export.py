"""SavedModel export: serving signature equals the Keras model, the raw-micrograph signatures equal
`segment` (also in a Python where tem_rf cannot be imported), small inputs, metadata asset without
absolute paths, mixed precision, loading run directories / .keras files / SavedModels, clear errors
for bad model paths, and what an export may replace (only a previous tem_rf export, with overwrite;
nothing on failure)."""

import errno
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tem_rf import __version__
from tem_rf.core.errors import InputError
from tem_rf.serve.signatures import METADATA_FILENAME, RAW_DTYPES
from tem_rf.serve.export import ExportError, export_run, export_saved_model, float32_model, is_tem_rf_export
from tem_rf.serve.serving_functions import particle_probability_fn
from tem_rf.serve.export_metadata import strip_paths
from tem_rf.train.rundir import ModelLoadError, load_run
from tem_rf.serve.predictor import load_predictor, read_metadata
from tem_rf.serve.segment import segment_image
from tem_rf.models import residual_unet

PIXEL_SIZE_NM = 0.02152


def _randomise_batch_norm(model, seed=0):
    """Non-trivial BN statistics, so a wrong (training-mode or dropped) BN would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    return model


def _make_run_dir(path, num_blocks=2, pixel_size_nm=PIXEL_SIZE_NM):
    """A run directory as design.md lays it out (untrained weights)."""
    model = _randomise_batch_norm(residual_unet(num_blocks, seed=0))
    path.mkdir(parents=True)
    model.save(path / "best.keras")
    config = {
        "num_blocks": num_blocks, "pool_sizes": [2] * num_blocks, "dilations": [1] * (num_blocks + 1),
        "architecture": model.name, "seed": 0, "batch_size": 4, "epochs": 1, "learning_rate": 1e-4,
        "precision": "float32", "strategy": "default", "data_dir": str(path / "no_data"),
        "patch_size": 512, "pixel_size_nm": pixel_size_nm, "receptive_field_px": 44,
        "receptive_field_nm": 44 * pixel_size_nm, "trainable_params": 8074, "size_divisor": 4,
        "tem_rf_version": __version__,
    }
    (path / "config.json").write_text(json.dumps(config))
    return model, config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export shared by the tests below (exporting costs seconds)."""
    root = tmp_path_factory.mktemp("export")
    model, config = _make_run_dir(root / "run")
    export_run(root / "run", root / "saved_model")
    x = np.random.default_rng(1).normal(size=(2, 40, 28, 1)).astype("float32")
    expected = model(x, training=False).numpy()[..., 1]
    return root, config, x, expected


def test_saved_model_output_equals_keras_model_on_non_square_image(exported):
    root, _, x, expected = exported
    loaded = tf.saved_model.load(str(root / "saved_model"))
    serve = loaded.signatures["serving_default"]
    output = serve(image=tf.constant(x))["particle_probability"]
    assert output.dtype == tf.float32
    assert tuple(output.shape) == (2, 40, 28)
    np.testing.assert_allclose(output.numpy(), expected, atol=1e-5)


def test_saved_model_pads_sizes_that_are_not_multiples_of_the_divisor(exported):
    root, _, x, _ = exported
    model, _, _ = load_run(root / "run")
    serve = tf.saved_model.load(str(root / "saved_model")).signatures["serving_default"]
    odd = x[:, :38, :26]  # divisor 4: padded by reflection to 40 x 28, cropped back
    output = serve(image=tf.constant(odd))["particle_probability"].numpy()
    padded = np.pad(odd, ((0, 0), (0, 2), (0, 2), (0, 0)), mode="reflect")
    expected = model(padded, training=False).numpy()[:, :38, :26, 1]
    assert output.shape == (2, 38, 26)
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_metadata_asset_is_readable_and_right(exported):
    root, config, _, _ = exported
    path = root / "saved_model" / "assets" / METADATA_FILENAME
    metadata = json.loads(path.read_text())
    assert metadata == read_metadata(root / "saved_model")
    assert metadata["receptive_field_px"] == 44
    assert metadata["receptive_field_nm"] == pytest.approx(44 * PIXEL_SIZE_NM)
    assert metadata["size_divisor"] == 4
    assert metadata["halo_px"] == 24  # ceil(44 / 2) = 22 rounded up to the divisor
    assert metadata["pixel_size_nm"] == PIXEL_SIZE_NM
    assert metadata["class_names"] == ["background", "particle"]
    assert metadata["particle_class"] == 1
    assert metadata["normalisation"]["xray_threshold"] == 6.0
    assert metadata["config"] == {**config, "data_dir": "no_data"}  # relative to the run
    assert metadata["tem_rf_version"] == __version__
    assert metadata["trainable_params"] == 8074
    assert metadata["signature"]["output_dtype"] == "float32"
    assert metadata["signature"]["aliases"] == ["serving_preprocessed", "serve"]
    assert metadata["signature"]["raw"]["keys"]["uint16"] == "serving_raw_uint16"
    assert metadata["signature"]["min_size_px"] == 11  # ceil(44 / 4)
    assert metadata["source"] == "best.keras"
    text = path.read_text()
    assert str(root) not in text and '": "/' not in text  # no absolute path of this machine


def test_strip_paths_keeps_names_relative_to_the_run_or_last_components(tmp_path):
    config = {
        "data_dir": "/data/users/me/au5nm", "model_dir": str(tmp_path / "run"),
        "log": str(tmp_path / "run" / "logs" / "train"), "windows": "C:\\Users\\me\\DATA\\",
        "nested": {"images": ["~/raw/images", "relative/keep"]}, "n": 2, "none": None,
    }
    assert strip_paths(config, tmp_path / "run") == {
        "data_dir": "au5nm", "model_dir": ".", "log": "logs/train", "windows": "DATA",
        "nested": {"images": ["images", "relative/keep"]}, "n": 2, "none": None,
    }


def _raw_micrographs(shape=(2, 46, 38), seed=3):
    """Raw uint16 counts with x-ray hits (single pixels, a 2x2 cluster) and a dead pixel."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(400, shape).astype(np.uint16)
    counts[:, 7, 9] = 60000
    counts[0, 20:22, 30:32] = 50000
    counts[-1, 0, 0] = 65535  # a corner: its neighbours are partly outside the image
    counts[-1, 12, 3] = 0
    return counts


def _segment_probabilities(images, model_path):
    predictor = model_path if callable(model_path) else load_predictor(model_path)
    return np.stack([segment_image(image, predictor, tile_size=None)[0] for image in images])


def test_raw_signatures_equal_segment_for_every_dtype_and_layout(exported):
    root, _, _, _ = exported
    loaded = tf.saved_model.load(str(root / "saved_model"))
    predictor = load_predictor(root / "run")
    counts = _raw_micrographs()  # 46 x 38: not multiples of the divisor 4
    for dtype in RAW_DTYPES:
        values = {"uint8": np.minimum(counts // 4, 255), "int16": counts // 2}.get(dtype, counts)
        values = values.astype(dtype)
        expected = _segment_probabilities(values, predictor)
        clear = np.abs(expected - 0.5) > 1e-5  # the mask is compared off the knife edge
        signature = loaded.signatures[f"serving_raw_{dtype}"]
        for layout in (values, values[..., None]):
            output = signature(micrograph=tf.constant(layout))
            probability, mask = output["particle_probability"], output["particle_mask"]
            assert probability.dtype == tf.float32 and mask.dtype == tf.uint8
            assert tuple(probability.shape) == tuple(mask.shape) == counts.shape
            np.testing.assert_allclose(probability.numpy(), expected, atol=1e-5, err_msg=dtype)
            np.testing.assert_array_equal(mask.numpy()[clear], (expected > 0.5)[clear].astype(np.uint8))
        # one micrograph as read, [H, W] (README's three lines): answered [H, W]
        single = signature(micrograph=tf.constant(values[0]))
        assert tuple(single["particle_probability"].shape) == tuple(single["particle_mask"].shape) == counts.shape[1:]
        np.testing.assert_allclose(single["particle_probability"].numpy(), expected[0], atol=1e-5, err_msg=dtype)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be \[height, width\], \[batch, height, width\]"):
        loaded.signatures["serving_raw_float32"](micrograph=tf.zeros([1, 64, 64, 2]))


@pytest.mark.large  # an export or a training of its own: CI's full suite runs it
def test_the_segment_function_runs_each_dtype_as_it_is_and_refuses_others(exported):
    root, _, _, _ = exported
    loaded = tf.saved_model.load(str(root / "saved_model"))
    assert read_metadata(root / "saved_model")["signature"]["raw"]["function"] == "segment"
    counts = _raw_micrographs()
    for dtype in ("uint8", "uint16", "float64"):  # each dtype's trace (all six: the signature test above)
        values = {"uint8": np.minimum(counts // 4, 255), "int16": counts // 2}.get(dtype, counts).astype(dtype)
        expected = loaded.signatures[f"serving_raw_{dtype}"](micrograph=tf.constant(values))["particle_probability"]
        np.testing.assert_array_equal(loaded.segment(values)["particle_probability"].numpy(), expected.numpy(),
                                      err_msg=dtype)
        single = loaded.segment(values[0])["particle_probability"].numpy()  # one micrograph as read
        np.testing.assert_allclose(single, expected.numpy()[0], atol=1e-6, err_msg=dtype)
    # What a typed signature does with a NumPy array of another dtype: converts it silently
    # (1.7 -> 1, 70000 -> 4464); the function refuses it instead.
    as_float = counts.astype(np.float32) + 0.7
    converted = loaded.signatures["serving_raw_uint16"](micrograph=as_float)["particle_probability"].numpy()
    np.testing.assert_array_equal(converted, loaded.segment(counts.astype(np.uint16))["particle_probability"].numpy())
    for wrong in (counts.astype(np.int64), counts.astype(np.uint32), (counts % 2048).astype(np.float16)):
        with pytest.raises(ValueError, match=r"Could not find matching concrete function(.|\n)*dtype=tf\.uint16"):
            loaded.segment(wrong)


def test_the_scaled_signature_equals_segment_at_any_pixel_size(exported):
    from tem_rf.serve.scale import plan_scale

    root, _, _, _ = exported
    metadata = read_metadata(root / "saved_model")
    assert metadata["signature"]["raw"]["scaled"]["key"] == "serving_raw_float32_scaled"
    scaled = tf.saved_model.load(str(root / "saved_model")).signatures["serving_raw_float32_scaled"]
    predictor = load_predictor(root / "run")
    counts = _raw_micrographs((1, 60, 52), seed=8).astype(np.float32)
    for factor in (0.5, 1.01, 1.37, 2.0):  # the micrograph's pixel size over the training one
        pixel_size = PIXEL_SIZE_NM * factor
        plan = plan_scale(None, counts.shape[1:], pixel_size, "file", PIXEL_SIZE_NM)
        expected = segment_image(counts[0], predictor, tile_size=None, scale=plan)[0]
        output = scaled(micrograph=tf.constant(counts), pixel_size_nm=tf.constant(pixel_size, tf.float64))
        probability = output["particle_probability"].numpy()[0]
        assert probability.shape == counts.shape[1:]
        np.testing.assert_allclose(probability, expected, atol=1e-3, err_msg=str(factor))
    for pixel_size in (PIXEL_SIZE_NM * 9, 0.0, float("nan")):
        with pytest.raises(tf.errors.InvalidArgumentError, match="within 8x of the training pixel size"):
            scaled(micrograph=tf.constant(counts), pixel_size_nm=tf.constant(pixel_size, tf.float64))


@pytest.mark.large  # a fresh interpreter importing TensorFlow: CI's full suite runs it
def test_raw_signature_in_a_python_where_tem_rf_cannot_be_imported(exported, tmp_path):
    root, _, _, _ = exported
    counts = _raw_micrographs((1, 61, 53), seed=4)
    np.save(tmp_path / "counts.npy", counts)
    script = """
import os, sys
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "tem_rf"))]
sys.modules["tem_rf"] = None  # also blocks the editable install's import hook
try:
    import tem_rf
except ImportError:
    pass
else:
    sys.exit("tem_rf is importable")
import numpy as np
import tensorflow as tf

model = tf.saved_model.load(sys.argv[1])  # README's three lines
result = model.segment(np.load(sys.argv[2]))
np.save(sys.argv[3], result["particle_probability"].numpy())
try:  # another dtype than the micrograph's own: refused, not converted
    model.segment(np.load(sys.argv[2]).astype(np.int64))
except ValueError as error:
    assert "Could not find matching concrete function" in str(error)
else:
    sys.exit("an int64 micrograph was converted")
assert not [name for name in sys.modules if name.startswith("tem_rf") and sys.modules[name] is not None]
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env |= {"PYTHONNOUSERSITE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, str(root / "saved_model"), "counts.npy", "probability.npy"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    expected = _segment_probabilities(counts, root / "saved_model")
    np.testing.assert_allclose(np.load(tmp_path / "probability.npy"), expected, atol=1e-5)


@pytest.mark.large  # exports and serves several sizes: CI's full suite runs it
def test_small_inputs_are_padded_and_too_small_ones_get_a_clear_error(exported):
    root, _, _, _ = exported
    model, _, _ = load_run(root / "run")
    loaded = tf.saved_model.load(str(root / "saved_model"))
    x = np.random.default_rng(5).normal(size=(1, 11, 13, 1)).astype("float32")  # 11: ceil(44 / 4)
    output = loaded.signatures["serving_default"](image=tf.constant(x))["particle_probability"].numpy()
    padded = np.pad(x, ((0, 0), (0, 1), (0, 3), (0, 0)), mode="reflect")
    np.testing.assert_allclose(output, model(padded, training=False).numpy()[:, :11, :13, 1], atol=1e-5)
    too_small = r"image smaller than 11 px \(a quarter of the receptive field, 44 px\) in height or width"
    for name, kwargs in [
        ("serving_default", {"image": tf.zeros((1, 10, 40, 1))}),
        ("serving_preprocessed", {"image": tf.zeros((2, 40, 3, 1))}),
        ("serving_raw_uint16", {"micrograph": tf.zeros((1, 10, 12), tf.uint16)}),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=too_small):
            loaded.signatures[name](**kwargs)
    nan_image = np.zeros((1, 64, 64, 1), np.float32)
    nan_image[0, 5, 5, 0] = np.nan  # a NaN gave a finite probability before
    with pytest.raises(tf.errors.InvalidArgumentError, match="image holds NaN or infinite values"):
        loaded.signatures["serving_default"](image=tf.constant(nan_image))
    raw = loaded.signatures["serving_raw_float32"]
    for micrograph, problem in [
        (tf.ones((1, 20, 20)), "image is constant"),
        (tf.fill((1, 20, 20), float("nan")), "NaN or infinite"),
        (tf.zeros((1, 20, 20, 2)), r"must be \[height, width\], \[batch, height, width\] or \[batch, height, width, 1\]"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=problem):
            raw(micrograph=micrograph)
    # finite values near float64's limit: their spread overflows (garbage came out before)
    huge = np.random.default_rng(2).normal(1.0, 0.3, (1, 64, 64)) * 1e300
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large to standardise in float64"):
        loaded.signatures["serving_raw_float64"](micrograph=tf.constant(huge))
    assert np.isfinite(loaded.signatures["serving_raw_float64"](micrograph=tf.constant(huge * 1e-150))[
        "particle_probability"].numpy()).all()  # 1e150: served
    # segment through the SavedModel reports it as bad input (one line), not a TensorFlow error
    with pytest.raises(InputError, match=too_small):
        load_predictor(root / "saved_model")(np.zeros((1, 8, 8, 1), np.float32))


def test_images_smaller_than_the_divisor_are_padded_by_repeated_reflection():
    model = residual_unet(2, pool_sizes=(4, 4), seed=0)  # divisor 16
    x = np.random.default_rng(6).normal(size=(1, 5, 7, 1)).astype("float32")
    output = particle_probability_fn(model, 16)(tf.constant(x))["particle_probability"].numpy()
    padded = np.pad(x, ((0, 0), (0, 11), (0, 9), (0, 0)), mode="reflect")  # numpy reflects repeatedly
    np.testing.assert_allclose(output, model(padded, training=False).numpy()[:, :5, :7, 1], atol=1e-5)


def test_load_predictor_from_saved_model_run_dir_and_keras_file(exported):
    root, _, x, expected = exported
    for source in (root / "saved_model", root / "run", root / "run" / "best.keras"):
        predictor = load_predictor(source)
        assert predictor.size_divisor == 4 and predictor.halo_px == 24
        assert predictor.pixel_size_nm == PIXEL_SIZE_NM
        output = predictor(x)
        assert output.dtype == np.float32
        np.testing.assert_allclose(output, expected, atol=1e-5, err_msg=str(source))


def test_mixed_precision_model_exports_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = _randomise_batch_norm(residual_unet(2, seed=0))
    keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("enc1_conv1").compute_dtype == "float16"
    x = np.random.default_rng(2).normal(size=(1, 16, 24, 1)).astype("float32")
    reference_fp32 = float32_model(model)(x).numpy()[..., 1]
    assert reference_fp32.dtype == np.float32

    metadata = export_saved_model(model, tmp_path / "fp32", raw_dtypes=())
    output = tf.saved_model.load(str(tmp_path / "fp32")).signatures["serving_default"](
        image=tf.constant(x)
    )["particle_probability"]
    assert output.dtype == tf.float32
    assert metadata["signature"]["compute_dtype"] == "float32"
    np.testing.assert_allclose(output.numpy(), reference_fp32, atol=1e-5)

    metadata = export_saved_model(model, tmp_path / "fp16", keep_mixed_precision=True, raw_dtypes=())
    output = tf.saved_model.load(str(tmp_path / "fp16")).signatures["serving_default"](
        image=tf.constant(x)
    )["particle_probability"]
    assert output.dtype == tf.float32
    assert metadata["signature"]["compute_dtype"] == "mixed_float16"
    np.testing.assert_allclose(output.numpy(), model(x).numpy()[..., 1], atol=1e-3)


def test_failed_export_leaves_the_existing_export(exported, tmp_path):
    root, _, _, _ = exported
    target = tmp_path / "saved_model"
    export_run(root / "run", target, raw_dtypes=())
    before = read_metadata(target)["exported_at"]
    with pytest.raises(ModelLoadError):
        export_run(tmp_path / "missing_run", target, overwrite=True)
    assert read_metadata(target)["exported_at"] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]  # no temporaries left


def test_bad_model_paths_get_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a run directory .* not a SavedModel"):
        load_predictor(tmp_path / "empty")
    with pytest.raises(ModelLoadError, match="no such file or directory"):
        load_predictor(tmp_path / "nothing_here")
    (tmp_path / "broken.keras").write_bytes(b"not a zip file")
    # rundir.py (being changed elsewhere) names a corrupt file "corrupt or truncated Keras file"
    with pytest.raises(ModelLoadError, match="broken.keras: (cannot load Keras model|corrupt or truncated)"):
        load_predictor(tmp_path / "broken.keras")
    foreign = tmp_path / "foreign_saved_model"
    foreign.mkdir()
    (foreign / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no assets/tem_rf.json; not exported by tem_rf"):
        load_predictor(foreign)


def test_unknown_pixel_size_exports_none(tmp_path):
    _make_run_dir(tmp_path / "run", pixel_size_nm=float("nan"))
    model, config, _ = load_run(tmp_path / "run")
    metadata = export_saved_model(model, tmp_path / "sm", config, raw_dtypes=())
    assert metadata["pixel_size_nm"] is None and metadata["receptive_field_nm"] is None
    assert read_metadata(tmp_path / "sm")["config"]["pixel_size_nm"] is None  # NaN is not JSON


def _tree(root):
    return {str(p.relative_to(root)): "dir" if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def test_is_tem_rf_export_accepts_only_our_export_with_nothing_foreign(exported, tmp_path):
    root, _, _, _ = exported
    shutil.copytree(root / "saved_model", tmp_path / "sm")
    assert is_tem_rf_export(tmp_path / "sm")
    (tmp_path / "sm" / "variables" / "notes.txt").write_text("mine")
    assert not is_tem_rf_export(tmp_path / "sm")
    (tmp_path / "sm" / "variables" / "notes.txt").unlink()
    (tmp_path / "sm" / "assets" / "tem_rf.json").write_text("not json")
    assert not is_tem_rf_export(tmp_path / "sm")
    (tmp_path / "sm" / "assets" / "tem_rf.json").unlink()
    assert not is_tem_rf_export(tmp_path / "sm")  # a foreign SavedModel
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "saved_model.pb").write_bytes(b"")
    assert not is_tem_rf_export(tmp_path / "bare")
    assert not is_tem_rf_export(tmp_path / "nothing")


def test_export_refuses_a_previous_export_unless_overwrite(exported, tmp_path):
    root, config, _, _ = exported
    shutil.copytree(root / "saved_model", tmp_path / "sm")
    before = _tree(tmp_path)
    with pytest.raises(ExportError, match=f"^{tmp_path / 'sm'}: holds a previous tem_rf export"):
        export_run(root / "run", tmp_path / "sm")
    assert _tree(tmp_path) == before
    model = residual_unet(2, seed=3)
    metadata = export_saved_model(model, tmp_path / "sm", {"architecture": "new"}, overwrite=True, raw_dtypes=())
    assert read_metadata(tmp_path / "sm") == metadata and metadata["config"] == {"architecture": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]


def test_export_run_refuses_a_folder_holding_its_run_before_loading(exported, tmp_path, monkeypatch):
    root, _, _, _ = exported
    shutil.copytree(root / "run", tmp_path / "runs" / "run")
    monkeypatch.setattr("tem_rf.serve.export.load_run", lambda path: pytest.fail("loaded the model"))
    before = _tree(tmp_path)
    for target, problem in [(tmp_path / "runs" / "run", "is the model's run directory"),
                            (tmp_path / "runs", "contains the model's run directory")]:
        with pytest.raises(ExportError, match=f"^{target}: {problem}"):
            export_run(tmp_path / "runs" / "run", target, overwrite=True)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("failure", [
    tf.errors.ResourceExhaustedError(None, None, "disk quota exceeded"),
    OSError(errno.ENOSPC, "No space left on device"),
    KeyboardInterrupt(),
])
def test_a_failed_overwrite_keeps_the_previous_export_and_leaves_no_temporary(exported, tmp_path, monkeypatch, failure):
    root, _, _, _ = exported
    shutil.copytree(root / "saved_model", tmp_path / "sm")
    before = _tree(tmp_path)
    real_save = tf.saved_model.save

    def save_then_fail(obj, export_dir, *args, **kwargs):
        real_save(obj, export_dir, *args, **kwargs)
        raise failure

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else ExportError
    with pytest.raises(expected) as raised:
        export_saved_model(residual_unet(2, seed=3), tmp_path / "sm", overwrite=True, raw_dtypes=())
    if expected is ExportError:
        assert str(raised.value).startswith(f"{tmp_path / 'sm'}: cannot write the export: ")
    assert _tree(tmp_path) == before


def test_an_export_says_whether_its_run_finished(one_epoch_run, tmp_path, caplog):
    import json
    import shutil

    from tem_rf.serve.export import export_run

    finished = export_run(one_epoch_run, tmp_path / "finished", raw_dtypes=())
    assert finished["training"] == {"finished": True, "epochs_trained": 1, "epochs": 1}
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    (run / "metrics.json").unlink()  # training stopped before its test scores
    config = json.loads((run / "config.json").read_text())
    config["epochs"] = 5
    (run / "config.json").write_text(json.dumps(config))
    unfinished = export_run(run, tmp_path / "unfinished", raw_dtypes=())
    assert unfinished["training"] == {"finished": False, "epochs_trained": 1, "epochs": 5}
    assert "the run has not finished training (1 of 5 epochs, no metrics.json)" in caplog.text
    written = json.loads((tmp_path / "unfinished" / "assets" / "tem_rf.json").read_text())
    assert written["training"]["finished"] is False
