"""Sweep planning, sharing out, skipping finished runs, aggregation and the figure."""

from __future__ import annotations

import json

import pytest

from tem_rf.study import sweep

from training_helpers import make_tiny_dataset


@pytest.mark.large  # several whole training runs: CI's full suite runs it
def test_pool_grid_keeps_receptive_fields_below_the_patch():
    grid = sweep.pool_grid((2,), (2, 4, 8), patch_size=512)
    assert len(grid) == 9  # RF 44 ... 392 px, all < 512
    names = {a.name for a in sweep.pool_grid((3,), (4, 8), patch_size=512, per_level=False)}
    assert names == {"N3_k4-4-4_d1-1-1-1"}  # RF 488 px; (8,8,8) has 3144 px
    uniform = sweep.pool_grid((2,), (2, 4, 8), patch_size=128, per_level=False)
    assert [a.pool_sizes for a in uniform] == [(2, 2), (4, 4)]  # (8,8): RF 392 >= 128


def test_plan_and_share_cover_every_run_once():
    archs = sweep.pool_grid((2,), (2, 8), 512) + sweep.dilation_grid([(1, 1, 2), (2, 2, 4)])
    runs = sweep.plan(archs, sweep.PAPER_SEEDS)
    assert len(runs) == 6 * 5
    shares = [sweep.share(runs, i, 4) for i in range(4)]
    assert sorted(r for s in shares for r in s) == sorted(runs)
    assert sum(len(s) for s in shares) == len(runs)
    assert sweep.plan(archs + archs, sweep.PAPER_SEEDS) == runs  # duplicates collapse
    with pytest.raises(ValueError, match="task_index 4"):
        sweep.share(runs, 4, 4)


def _fake_rows():
    base = dict(family="pool", dilations="1-1-1", seeds=5, soft_dice_mean=0.7, soft_dice_std=0.01)
    return [
        dict(base, architecture="N2_k2-2_d1-1-1", num_blocks=2, pool_sizes="2-2", trainable_params=8074,
             receptive_field_px=44, receptive_field_nm=0.95, hard_dice_mean=0.727, hard_dice_std=0.004),
        dict(base, architecture="N2_k8-8_d1-1-1", num_blocks=2, pool_sizes="8-8", trainable_params=8074,
             receptive_field_px=392, receptive_field_nm=8.4, hard_dice_mean=0.783, hard_dice_std=0.007),
        dict(base, architecture="N4_k2-2-2-2_d1-1-1-1-1", num_blocks=4, pool_sizes="2-2-2-2",
             trainable_params=130682, receptive_field_px=200, receptive_field_nm=4.3,
             hard_dice_mean=0.79, hard_dice_std=0.01),
    ]


def test_lightest_within_one_std_of_best():
    rows = _fake_rows()
    # Best 0.79 +- 0.01: N2 with RF 392 px (0.783) is within one std and has 16x fewer params.
    assert sweep.lightest_within_one_std(rows)["architecture"] == "N2_k8-8_d1-1-1"
    rows[1]["hard_dice_mean"] = 0.70
    assert sweep.lightest_within_one_std(rows)["architecture"] == "N4_k2-2-2-2_d1-1-1-1-1"


def test_write_results_makes_csv_json_and_png(tmp_path):
    paths = sweep.write_results(tmp_path, _fake_rows())
    summary = json.loads(paths["json"].read_text())
    assert summary["best"] == "N4_k2-2-2-2_d1-1-1-1-1"
    assert summary["lightest_within_one_std_of_best"] == "N2_k8-8_d1-1-1"
    assert paths["csv"].read_text().count("\n") == 4
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.large  # several whole training runs: CI's full suite runs it
def test_sweep_trains_skips_finished_runs_and_aggregates(tmp_path):
    data_dir = make_tiny_dataset(tmp_path)
    archs = [sweep.Architecture(2, (2, 2), (1, 1, 1)), sweep.Architecture(2, (2, 2), (1, 1, 2), "dilation")]
    runs = sweep.plan(archs, (752, 2245))
    base = dict(data_dir=str(data_dir), epochs=1, batch_size=8, learning_rate=1e-2, precision="float32",
                strategy="default")
    sweep.write_sweep_file(tmp_path / "sweep", runs, base)
    done = sweep.run_sweep(tmp_path / "sweep", sweep.share(runs, 0, 2), base, progress=False)
    assert len(done) == 2
    done = sweep.run_sweep(tmp_path / "sweep", runs, base, progress=False)
    assert len(done) == 2  # the first share is finished and skipped
    assert sweep.run_sweep(tmp_path / "sweep", runs, base, progress=False) == []
    rows = sweep.aggregate(tmp_path / "sweep")
    assert [r["architecture"] for r in rows] == ["N2_k2-2_d1-1-1", "N2_k2-2_d1-1-2"]
    assert [r["family"] for r in rows] == ["pool", "dilation"]
    assert [r["receptive_field_px"] for r in rows] == [44, 60]
    assert all(r["seeds"] == 2 and r["trainable_params"] == 8074 for r in rows)
    for r in rows:
        metrics = [json.loads((run.run_dir(tmp_path / "sweep") / "metrics.json").read_text())
                   for run in runs if run.architecture.name == r["architecture"]]
        assert r["hard_dice_mean"] == pytest.approx(sum(m["test_hard_dice"] for m in metrics) / 2)


def test_check_fits_patch_names_architectures_the_patches_cannot_hold():
    fits = sweep.Architecture(2, (2, 8), (1, 1, 1))
    sweep.check_fits_patch([fits], 64)
    with pytest.raises(ValueError, match=r"patches are 64 px: N3_k8-8-2_d1-1-1-1 \(divisor 128\)"):
        sweep.check_fits_patch([fits, sweep.Architecture(3, (8, 8, 2), (1, 1, 1, 1))], 64)
