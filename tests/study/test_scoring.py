"""Scoring a run: pooled dice equals the metric over all rows; per-patch rows cover 8 variants."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tem_rf import data, metrics
from tem_rf.study import scoring as evaluation
from tem_rf import train as training

from binaries import run_binary
from training_helpers import make_tiny_dataset, read_json



@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    data_dir = make_tiny_dataset(root)
    run = root / "run"
    training.train(
        training.TrainConfig(data_dir=str(data_dir), model_dir=str(run), epochs=1, learning_rate=1e-2,
                             precision="float32", strategy="default"),
        progress=False,
    )
    return data_dir, run


def test_evaluate_model_matches_training_metrics(trained_run):
    data_dir, run = trained_run
    model = evaluation.load_run_model(run)
    summary, rows = evaluation.evaluate_model(model, data_dir, "test", augment=True, batch_size=3)
    count = read_json(data_dir / "dataset.json")["counts"]["test"]
    assert summary["patches"] == len(rows) == 8 * count
    assert sorted({r["transform"] for r in rows}) == list(range(8))
    # The run's own test score used the same weights (best) and the same 8 variants.
    assert summary["hard_dice"] == pytest.approx(read_json(run / "metrics.json")["test_hard_dice"], abs=1e-6)
    # Pooled dice from per-patch rows: recompute from the model directly.
    images, labels = [], []
    for x, y in data.load_split(data_dir, "test", 64, augment=True):
        images.append(x.numpy())
        labels.append(y.numpy())
    probs = model.predict(np.concatenate(images), verbose=0)
    assert summary["soft_dice"] == pytest.approx(metrics.soft_dice(np.concatenate(labels), probs), rel=1e-5)
    csv_text = evaluation.per_patch_csv(rows)
    assert csv_text.splitlines()[0] == ",".join(evaluation.PER_PATCH_FIELDS)


def test_load_run_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        evaluation.load_run_model(tmp_path)
    (tmp_path / "weights.h5").write_text("x")
    with pytest.raises(ValueError, match="not a .keras model file"):
        evaluation.load_run_model(tmp_path / "weights.h5")


def test_evaluate_binary_writes_csv_and_json(trained_run, tmp_path):
    data_dir, run = trained_run
    out = run_binary("experiments.evaluate", f"--run_dir={run}", "--split=val", "--augment=false",
                     f"--out_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = read_json(tmp_path / "eval_val.json")
    count = read_json(data_dir / "dataset.json")["counts"]["val"]
    assert summary["patches"] == count and summary["augment"] is False
    assert (tmp_path / "eval_val.csv").read_text().count("\n") == count + 1


def _evaluate(*args):
    return run_binary("experiments.evaluate", *args)


def test_evaluate_binary_on_another_dataset_keeps_the_runs_own_scores(trained_run, tmp_path):
    data_dir, run = trained_run
    other = tmp_path / "other_data"
    shutil.copytree(data_dir, other)
    out = _evaluate(f"--run_dir={run / 'best.keras'}", f"--data_dir={other}", "--split=val", "--noaugment",
                    f"--out_dir={tmp_path}")  # a .keras file inside a run directory
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "eval_val_other_data.json").exists() and not (tmp_path / "eval_val.json").exists()
    out = _evaluate(f"--run_dir={run / 'best.keras'}", "--split=val", "--noaugment", f"--out_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]  # the run's own dataset, from config.json beside it
    assert (tmp_path / "eval_val.json").exists()


def test_evaluate_binary_bad_paths_are_one_clear_line(trained_run, tmp_path):
    _, run = trained_run
    (tmp_path / "file").write_text("x")
    for args, message in [
        ([f"--run_dir={tmp_path / 'nothere'}"], f"error: {tmp_path / 'nothere'}: no such run directory"),
        ([f"--run_dir={run}", f"--out_dir={tmp_path / 'file' / 'out'}"], f"error: {tmp_path / 'file' / 'out'}: cannot write"),
    ]:
        out = _evaluate(*args, "--split=val", "--noaugment")
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith(message), out.stderr[-500:]
