"""SavedModel export: serving signature equals the Keras model, metadata asset, mixed precision,
loading run directories / .keras files / SavedModels, clear errors for bad model paths, and what
an export may replace (only a previous tem_rf export, with overwrite; nothing on failure)."""

import errno
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tem_rf import __version__
from tem_rf.serve.export import (
    METADATA_FILENAME,
    ExportError,
    export_run,
    export_saved_model,
    float32_model,
    is_tem_rf_export,
)
from tem_rf.serve.predictor import ModelLoadError, load_predictor, load_run, read_metadata
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
    assert metadata["config"] == config
    assert metadata["tem_rf_version"] == __version__
    assert metadata["trainable_params"] == 8074
    assert metadata["signature"]["output_dtype"] == "float32"
    assert metadata["source"].endswith("best.keras")


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

    metadata = export_saved_model(model, tmp_path / "fp32")
    output = tf.saved_model.load(str(tmp_path / "fp32")).signatures["serving_default"](
        image=tf.constant(x)
    )["particle_probability"]
    assert output.dtype == tf.float32
    assert metadata["signature"]["compute_dtype"] == "float32"
    np.testing.assert_allclose(output.numpy(), reference_fp32, atol=1e-5)

    metadata = export_saved_model(model, tmp_path / "fp16", keep_mixed_precision=True)
    output = tf.saved_model.load(str(tmp_path / "fp16")).signatures["serving_default"](
        image=tf.constant(x)
    )["particle_probability"]
    assert output.dtype == tf.float32
    assert metadata["signature"]["compute_dtype"] == "mixed_float16"
    np.testing.assert_allclose(output.numpy(), model(x).numpy()[..., 1], atol=1e-3)


def test_failed_export_leaves_the_existing_export(exported, tmp_path):
    root, _, _, _ = exported
    target = tmp_path / "saved_model"
    export_run(root / "run", target)
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
    metadata = export_saved_model(model, tmp_path / "sm", config)
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
    metadata = export_saved_model(model, tmp_path / "sm", {"architecture": "new"}, overwrite=True)
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
        export_saved_model(residual_unet(2, seed=3), tmp_path / "sm", overwrite=True)
    if expected is ExportError:
        assert str(raised.value).startswith(f"{tmp_path / 'sm'}: cannot write the export: ")
    assert _tree(tmp_path) == before
