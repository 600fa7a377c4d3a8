"""Run directories: file paths, config/metrics/history, model resolution, sweep discovery, and the
preprocessing a run records so that its export needs no dataset."""

from __future__ import annotations

import errno
import json
import pathlib
import shutil

import numpy as np
import pytest

from tem_rf import train as training
from tem_rf.models import residual_unet
from tem_rf.train.rundir import ModelLoadError, RunDir, find_runs, sweep_run_path

from training_helpers import read_json

CONFIG = {"num_blocks": 2, "pool_sizes": [2, 2], "dilations": [1, 1, 1], "data_dir": "gone"}
METRICS = {"test_hard_dice": 0.5, "best_epoch": 1}


@pytest.fixture(scope="module")
def tiny_model():
    return residual_unet(2, seed=0)


@pytest.fixture
def run_dir(tmp_path, tiny_model):
    """A finished run as docs/design.md lays it out: config, metrics and best.keras."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(CONFIG))
    (run / "metrics.json").write_text(json.dumps(METRICS))
    tiny_model.save(run / "best.keras")
    return run


def _same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_run_dir_paths_config_metrics_and_best_model(run_dir, tiny_model):
    run = RunDir(run_dir)
    assert (run.config_file, run.metrics_file, run.history_file) == (
        run_dir / "config.json", run_dir / "metrics.json", run_dir / "history.csv")
    assert (run.checkpoints_dir, run.logs_dir) == (run_dir / "checkpoints", run_dir / "logs")
    assert (run.best_model_file, run.last_model_file) == (run_dir / "best.keras", run_dir / "model.keras")
    assert run.config() == CONFIG and run.metrics() == METRICS and run.is_finished
    assert run.model_file() == run_dir / "best.keras"
    assert _same_weights(run.load_model(), tiny_model)


def test_model_file_falls_back_to_the_last_model_and_names_the_run_when_neither(run_dir):
    run = RunDir(run_dir)
    with pytest.raises(ModelLoadError, match=f"{run_dir}: not a run directory \\(no model.keras\\)"):
        run.model_file("model")
    shutil.move(run_dir / "best.keras", run_dir / "model.keras")
    assert run.model_file("best") == run.model_file("model") == run_dir / "model.keras"
    (run_dir / "model.keras").unlink()
    with pytest.raises(ModelLoadError, match=f"{run_dir}: not a run directory \\(no best.keras or model.keras\\)"):
        run.model_file()
    with pytest.raises(ValueError, match="weights must be one of"):
        run.model_file("last")


def test_a_keras_file_opens_its_run_and_is_the_model_loaded(run_dir, tiny_model):
    tiny_model.save(run_dir / "epoch3.keras")
    run = RunDir.open(run_dir / "epoch3.keras")
    assert run.path == run_dir and run.config() == CONFIG
    assert run.model_file("model") == run_dir / "epoch3.keras"  # the file asked for, not best/last
    assert RunDir.open(run_dir) == RunDir(run_dir)
    with pytest.raises(ModelLoadError, match="missing.keras: no such Keras model file"):
        RunDir.open(run_dir / "missing.keras").load_model()


def test_missing_and_bad_files_give_errors_naming_the_path(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_finished and run.history() == []
    for read, name in ((run.config, "config.json"), (run.metrics, "metrics.json")):
        with pytest.raises(ModelLoadError, match=f"{tmp_path / name}: no such file"):
            read()
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=f"{tmp_path / 'config.json'}: not valid JSON"):
        run.config()
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match=f"{tmp_path / 'config.json'}: expected a JSON object"):
        run.config()


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped"])
def test_a_corrupt_keras_file_is_called_corrupt_not_missing(run_dir, damage):
    best = run_dir / "best.keras"
    content = bytearray(best.read_bytes())
    if damage == "truncated":
        content = content[: len(content) // 2]
    elif damage == "empty":
        content = b""
    else:  # bytes of a member changed, the zip directory intact
        content[200:400] = bytes(b ^ 0xFF for b in content[200:400])
    best.write_bytes(bytes(content))
    with pytest.raises(ModelLoadError, match=f"{best}: corrupt or truncated Keras file \\(.+\\)") as error:
        RunDir(run_dir).load_model()
    assert "not found" not in str(error.value)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_writing_run_files_names_the_file_and_leaves_no_temporary(run_dir, tiny_model,
                                                                                  monkeypatch):
    run = RunDir(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}

    def half_then_full(path, text, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write(text[: len(text) // 2])
        _no_space()

    class Model:  # saves half an archive, then finds the disk full
        def save(self, path):
            pathlib.Path(path).write_bytes(b"PK\x03\x04half")
            _no_space()

    with monkeypatch.context() as patched:
        patched.setattr(pathlib.Path, "write_text", half_then_full)
        for write, name in ((lambda: run.write_history([{"epoch": 1}]), "history.csv"),
                            (lambda: run.write_metrics({"a": 1}), "metrics.json"),
                            (lambda: run.write_config({"a": 1}), "config.json")):
            with pytest.raises(training.TrainingError) as error:
                write()
            assert str(error.value) == f"{run_dir / name}: cannot write (No space left on device)"
    for path in (run.best_model_file, run.last_model_file):
        with pytest.raises(training.TrainingError, match=f"{path}: cannot write \\(No space left on device\\)"):
            run.write_model(Model(), path)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # old files kept, no temporaries
    run.write_model(tiny_model, run.last_model_file)
    assert _same_weights(RunDir(run_dir).load_model("model"), tiny_model)


def test_stale_temporaries_of_a_killed_writer_are_removed(run_dir):
    stale = [run_dir / ".best.keras.ab12.tmp", run_dir / ".best.keras.ab12.tmp.keras",
             run_dir / ".history.csv.x9.tmp", run_dir / "checkpoints" / "ckpt-3_temp" / "part-0",
             run_dir / "checkpoints" / "ckpt-3.index.tempstate123",
             run_dir / "checkpoints" / "checkpoint.tmp259e6d0429294e20a4e0b6e88542d9d1"]
    kept = [run_dir / "checkpoints" / "ckpt-2.index", run_dir / "checkpoints" / "checkpoint",
            run_dir / ".notes.tmp", run_dir / ".lock"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    RunDir(run_dir).remove_stale_temporaries()
    assert all(path.exists() for path in kept)
    assert not any(path.exists() for path in stale) and not (run_dir / "checkpoints" / "ckpt-3_temp").exists()


def test_history_round_trips_with_typed_values(tmp_path):
    run = RunDir(tmp_path)
    rows = [{"epoch": e, "train_loss": 1.0 / e, "seconds": 2.5} for e in (1, 2)]
    run.write_history(rows)
    assert run.history() == rows
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == "epoch,train_loss,seconds"
    run.write_config(CONFIG)
    run.write_metrics(METRICS)
    assert read_json(tmp_path / "config.json") == CONFIG and run.metrics() == METRICS


def test_find_runs_sorts_and_keeps_finished_runs(tmp_path):
    for name in ("N2_k2-4/seed752", "N2_k2-2/seed956", "N2_k2-2/seed140", "N2_k2-4/seed140"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    for name in ("N2_k2-2/seed956", "N2_k2-4/seed140"):
        (tmp_path / "runs" / name / "metrics.json").write_text("{}")
    (tmp_path / "runs" / "N2_k2-2" / "notes.txt").write_text("not a run")
    assert find_runs(tmp_path) == [RunDir(tmp_path / "runs" / n) for n in ("N2_k2-2/seed956", "N2_k2-4/seed140")]
    assert [r.path.relative_to(tmp_path / "runs").as_posix() for r in find_runs(tmp_path, finished_only=False)] == [
        "N2_k2-2/seed140", "N2_k2-2/seed956", "N2_k2-4/seed140", "N2_k2-4/seed752"]
    assert find_runs(tmp_path / "nothing") == []
    assert find_runs(tmp_path)[0].path == sweep_run_path(tmp_path, "N2_k2-2", 956)  # the one layout


def _dataset_with_xray_threshold(root, xray_threshold):
    """A tiny dataset preprocessed with a non-default x-ray threshold."""
    from tem_rf import data
    from tem_rf.data import dataset, synthetic

    synthetic.write_demo_dataset(root / "demo", num_images=5, size=64, kind="low_res", seed=0, pixel_size_nm=0.5)
    pairs = dataset.match_masks(dataset.find_image_files(root / "demo" / "images"), root / "demo" / "labels")
    data.build_dataset(pairs, root / "data", patch_size=32, min_particle_pixels=20, num_shards=2,
                       xray_threshold=xray_threshold, progress=False)
    return root / "data"


@pytest.mark.large  # an export or a training of its own: CI's full suite runs it
def test_a_run_records_the_preprocessing_and_exports_without_its_dataset(tmp_path):
    from tem_rf.serve.export import export_run

    data_dir = _dataset_with_xray_threshold(tmp_path, 4.5)
    run = tmp_path / "run"
    training.train(
        training.TrainConfig(data_dir=str(data_dir), model_dir=str(run), epochs=1, precision="float32",
                             strategy="default", num_images=0),
        progress=False,
    )
    config = RunDir(run).config()
    assert config["preprocessing"] == read_json(data_dir / "dataset.json")["preprocessing"]
    assert config["preprocessing"]["xray_threshold"] == 4.5
    shutil.rmtree(data_dir)
    metadata = export_run(run, tmp_path / "exported", raw_dtypes=())
    assert metadata["normalisation"]["xray_threshold"] == 4.5
    assert metadata["normalisation"]["dataset_preprocessing"] == config["preprocessing"]


def test_a_run_without_recorded_preprocessing_exports_the_default_with_a_warning(run_dir, tmp_path, caplog):
    from tem_rf.data.preprocess import DEFAULT_XRAY_THRESHOLD
    from tem_rf.serve.export import export_run

    metadata = export_run(run_dir, tmp_path / "exported", raw_dtypes=())
    assert metadata["normalisation"]["xray_threshold"] == DEFAULT_XRAY_THRESHOLD
    assert "records no dataset preprocessing" in caplog.text
