"""Scoring a run: pooled dice equals the metric over all rows; per-patch rows cover 8 variants."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tem_rf import data, metrics
from tem_rf.study import scoring as evaluation
from tem_rf.core.files import read_csv
from tem_rf.train.rundir import RunDir

from binaries import call_main
from training_helpers import make_tiny_dataset, read_json



@pytest.fixture
def trained_run(tiny_dataset, one_epoch_run):
    return tiny_dataset, one_epoch_run


def test_evaluate_model_matches_training_metrics(trained_run, capsys):
    data_dir, run = trained_run
    model = RunDir(run).load_model()
    summary, rows = evaluation.evaluate_model(model, data_dir, "test", augment=True, batch_size=3, progress=True)
    count = read_json(data_dir / "dataset.json")["counts"]["test"]
    batches = -(-8 * count // 3)
    assert f"test batches: 100% {batches}/{batches} batch" in capsys.readouterr().err  # every batch counted
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


def test_evaluate_run_writes_the_runs_own_scores_and_keeps_them_apart(trained_run, tmp_path):
    data_dir, run = trained_run
    summary, paths = evaluation.evaluate_run(run, split="val", augment=False, out_dir=tmp_path)
    assert paths == {"csv": tmp_path / "eval_val.csv", "json": tmp_path / "eval_val.json"}
    assert read_json(paths["json"]) == summary and summary["data_dir"] == str(data_dir)
    rows = read_csv(paths["csv"])
    assert tuple(rows[0]) == evaluation.PER_PATCH_FIELDS and len(rows) == summary["patches"]
    other = tmp_path / "other_data"
    shutil.copytree(data_dir, other)
    _, paths = evaluation.evaluate_run(run / "model.keras", other, "val", augment=False, out_dir=tmp_path)
    assert paths["json"].name == "eval_val_other_data.json" and paths["json"].exists()
    shutil.copy(run / "best.keras", tmp_path / "alone.keras")  # no config.json beside it
    with pytest.raises(ValueError, match="alone.keras: no config.json .* pass --data_dir"):
        evaluation.evaluate_run(tmp_path / "alone.keras")


def test_evaluate_binary_writes_csv_and_json(trained_run, tmp_path):
    data_dir, run = trained_run
    out = call_main("experiments.evaluate", f"--run_dir={run}", "--split=val", "--augment=false",
                     f"--out_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = read_json(tmp_path / "eval_val.json")
    count = read_json(data_dir / "dataset.json")["counts"]["val"]
    assert summary["patches"] == count and summary["augment"] is False
    assert (tmp_path / "eval_val.csv").read_text().count("\n") == count + 1


def _evaluate(*args):
    return call_main("experiments.evaluate", *args)


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
        ([f"--run_dir={run}", f"--out_dir={tmp_path / 'file' / 'out'}"],
         f"error: {tmp_path / 'file'}: cannot write eval_val.csv into it: it is a file, not a folder"),
    ]:
        out = _evaluate(*args, "--split=val", "--noaugment")
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith(message), out.stderr[-500:]


def test_patches_the_divisor_does_not_divide_are_one_clear_line(trained_run, tmp_path):
    _, run = trained_run
    odd = make_tiny_dataset(tmp_path, patch_size=30)  # the default network's divisor is 4
    out = _evaluate(f"--run_dir={run}", f"--data_dir={odd}", "--split=val", "--noaugment", f"--out_dir={tmp_path / 'o'}")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {odd}: its 30 px patches are not a multiple of the model's size divisor 4 (its "
        "pooling strides); score it on a dataset made with a --patch_size that 4 divides, or "
        "segment whole micrographs instead"
    )
    assert not (tmp_path / "o").exists()
