"""The learning curve: test quality against the number of labelled training micrographs."""

from __future__ import annotations

import csv
import json

import pytest

from tem_rf.study import learning_curve as lc

from binaries import call_main


def test_sizes_are_numbers_of_micrographs_or_all():
    assert lc.resolve_sizes(["4", "1", "all", "2", "4"], available=7) == [1, 2, 4, 7]
    assert lc.resolve_sizes(["ALL", "7"], available=7) == [7]
    for sizes, message in ((["0"], "0 micrographs asked, the training split has 7"),
                           (["8"], "8 micrographs asked"), (["two"], "'two' is neither"), ([], "at least one")):
        with pytest.raises(ValueError, match=message):
            lc.resolve_sizes(sizes, available=7)


def test_summary_gives_mean_spread_and_range_over_seeds():
    rows = [dict(start="scratch", train_images=2, test_hard_dice=d, instance_f1=f, test_pixel_dice=None,
                 median_diameter_error_percent=None) for d, f in ((0.5, 0.2), (0.7, 0.4))]
    rows.append(dict(rows[0], train_images=1, test_hard_dice=0.3))
    one, two = lc.summarise(rows)
    assert (one["train_images"], one["runs"], one["test_hard_dice_mean"]) == (1, 1, 0.3)
    assert two["runs"] == 2 and two["test_hard_dice_mean"] == pytest.approx(0.6)
    assert two["test_hard_dice_std"] == pytest.approx(0.1)
    assert (two["test_hard_dice_min"], two["test_hard_dice_max"]) == (0.5, 0.7)
    assert two["instance_f1_mean"] == pytest.approx(0.3) and two["test_pixel_dice_mean"] is None


@pytest.mark.large  # four short trainings and their test measurements: CI's full suite runs it
def test_the_binary_trains_each_size_from_scratch_and_from_given_weights(tiny_dataset, one_epoch_run, tmp_path):
    out = tmp_path / "curve"
    args = [f"--data_dir={tiny_dataset}", f"--out_dir={out}", "--sizes=1,all", "--seeds=752", "--epochs=1",
            "--epoch_steps=2", "--pool_sizes=2,2", "--learning_rate=0.01", f"--init_from={one_epoch_run}",
            "--noprogress"]
    result = call_main("experiments.learning_curve", *args)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "learning_curve.csv").open()))
    assert [(r["start"], r["train_images"]) for r in rows] == [
        ("scratch", "1"), ("scratch", "3"), ("init_from", "1"), ("init_from", "3")]
    for row in rows:
        assert row["steps"] == "2" and 0.0 <= float(row["test_hard_dice"]) <= 1.0
        assert 0.0 <= float(row["instance_f1"]) <= 1.0 and row["test_pixel_dice"]
        config = json.loads((out / row["run_dir"].split(str(out) + "/")[1] / "config.json").read_text())
        assert config["train_images"] == (1 if row["train_images"] == "1" else 0)  # the whole split: a plain run
        assert config["init_from"] == ("" if row["start"] == "scratch" else str(one_epoch_run))
    single = lc.run_dir_of(out, "scratch", 1, 752)
    assert len(json.loads((single / "config.json").read_text())["train_sources"]) == 1
    summary = json.loads((out / "learning_curve.json").read_text())
    assert [(s["start"], s["train_images"], s["runs"]) for s in summary["summary"]] == [
        ("init_from", 1, 1), ("init_from", 3, 1), ("scratch", 1, 1), ("scratch", 3, 1)]
    assert summary["settings"]["sizes"] == [1, 3]
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "scratch" in result.stdout and "test dice" in result.stdout

    # again: the results are not replaced without --overwrite; with it, the finished runs are reused
    before = (out / "learning_curve.csv").read_bytes()
    trained = (single / "history.csv").stat().st_mtime_ns
    again = call_main("experiments.learning_curve", *args)
    assert again.returncode == 1 and "learning_curve.csv: exists; pass --overwrite" in again.stderr
    replaced = call_main("experiments.learning_curve", *args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (single / "history.csv").stat().st_mtime_ns == trained
    assert (out / "learning_curve.csv").read_bytes() == before


def test_weights_of_another_architecture_are_refused_before_training(tiny_dataset, one_epoch_run, tmp_path):
    result = call_main("experiments.learning_curve", f"--data_dir={tiny_dataset}", f"--out_dir={tmp_path / 'c'}",
                       "--pool_sizes=4,4", f"--init_from={one_epoch_run}", "--sizes=1")
    assert result.returncode == 1
    assert (f"--init_from {one_epoch_run} is N2_k2-2_d1-1-1 (--target=mask) but the curve trains N2_k4-4_d1-1-1 "
            "(--target=mask)") in result.stderr
    assert not (tmp_path / "c").exists()
    too_many = call_main("experiments.learning_curve", f"--data_dir={tiny_dataset}", f"--out_dir={tmp_path / 'c'}",
                         "--sizes=1,9")
    assert too_many.returncode == 1 and "9 micrographs asked, the training split has 3" in too_many.stderr
