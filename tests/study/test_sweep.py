"""Sweep planning, sharing out, skipping finished runs, aggregation and the figure."""

from __future__ import annotations

import json
import logging

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
def test_sweep_trains_skips_finished_runs_and_aggregates(tmp_path, caplog):
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
    assert all(r["seeds"] == 2 and r["seeds_unfinished"] == 0 and r["trainable_params"] == 8074 for r in rows)
    for r in rows:
        metrics = [json.loads((run.run_dir(tmp_path / "sweep") / "metrics.json").read_text())
                   for run in runs if run.architecture.name == r["architecture"]]
        assert r["hard_dice_mean"] == pytest.approx(sum(m["test_hard_dice"] for m in metrics) / 2)
    # a run that has not finished is not averaged in, but counted and warned about
    (runs[0].run_dir(tmp_path / "sweep") / "metrics.json").unlink()
    with caplog.at_level(logging.WARNING, logger="tem_rf.study.sweep"):
        rows = sweep.aggregate(tmp_path / "sweep")
    assert (rows[0]["seeds"], rows[0]["seeds_unfinished"]) == (1, 1)
    assert "1 run(s) have not finished and are left out of the results: N2_k2-2_d1-1-1 (1)" in caplog.text


def test_check_fits_patch_names_architectures_the_patches_cannot_hold():
    fits = sweep.Architecture(2, (2, 8), (1, 1, 1))
    sweep.check_fits_patch([fits], 64)
    with pytest.raises(ValueError, match=r"patches are 64 px: N3_k8-8-2_d1-1-1-1 \(divisor 128\)"):
        sweep.check_fits_patch([fits, sweep.Architecture(3, (8, 8, 2), (1, 1, 1, 1))], 64)


def _small_sweep(tmp_path):
    runs = sweep.plan([sweep.Architecture(2, (2, 2), (1, 1, 1)), sweep.Architecture(2, (2, 4), (1, 1, 1))], (752,))
    settings = dict(data_dir=str(tmp_path / "data"), batch_size=8, epochs=2, learning_rate=1e-2,
                    precision="float32", strategy="default", jit_compile=False, seeds=[752])
    sweep.write_sweep_file(tmp_path, runs, settings)
    return runs, settings


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(learning_rate=1e-3), "--learning_rate is 0.001 but this sweep was run with 0.01"),
        (dict(precision="auto", jit_compile=True),
         "--precision is auto but this sweep was run with float32; --xla is true but this sweep was run with false"),
        (dict(epochs=1), r"--epochs is 1 but this sweep was run with 2 \(it may only grow\)"),
        (dict(seeds=[752, 140]), "--seeds is 752,140 but this sweep was run with 752"),
    ],
)
def test_a_sweep_rerun_with_changed_settings_is_refused_naming_them(tmp_path, change, message):
    runs, settings = _small_sweep(tmp_path)
    with pytest.raises(ValueError, match=f"{tmp_path}: {message}; use another --sweep_dir"):
        sweep.check_sweep_file(tmp_path, runs, {**settings, **change})


def test_a_sweep_rerun_may_grow_epochs_but_not_change_its_architectures(tmp_path):
    runs, settings = _small_sweep(tmp_path)
    assert sweep.check_sweep_file(tmp_path, runs, settings)["settings"] == settings
    assert sweep.check_sweep_file(tmp_path, runs, {**settings, "epochs": 5})["settings"]["epochs"] == 2
    assert sweep.check_sweep_file(tmp_path / "new", runs, settings) is None
    with pytest.raises(ValueError, match=r"the architectures differ .*\(new: N2_k2-8_d1-1-1; not in these flags: "
                                         r"N2_k2-4_d1-1-1\)"):
        sweep.check_sweep_file(tmp_path, sweep.plan([runs[0].architecture, sweep.Architecture(2, (2, 8), (1, 1, 1))],
                                                    (752,)), settings)


def test_a_finished_run_with_other_settings_is_refused_and_one_with_fewer_epochs_trains_on(tmp_path):
    from tem_rf.train import TrainConfig

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = dict(data_dir=str(tmp_path / "data"), model_dir="/elsewhere", num_blocks=2, pool_sizes=[2, 2],
                 dilations=[1, 1, 1], batch_size=8, epochs=2, learning_rate=0.01, seed=752, precision="float32",
                 precision_requested="auto", strategy="default", strategy_requested="auto", augment=True)
    (run_dir / "config.json").write_text(json.dumps(saved))
    (run_dir / "metrics.json").write_text("{}")
    config = lambda **c: TrainConfig(**{**dict(data_dir=str(tmp_path / "data"), model_dir=str(run_dir),  # noqa: E731
                                               epochs=2, learning_rate=0.01), **c}).validated()
    assert not sweep.needs_training(run_dir, config())  # finished with these settings: skipped
    assert sweep.needs_training(run_dir, config(epochs=3))  # grown: trains on
    with pytest.raises(ValueError, match=f"{run_dir}: --precision is float32 but this run was trained with auto; "
                                         "--augment is false but this run was trained with true"):
        sweep.needs_training(run_dir, config(precision="float32", augment=False))


@pytest.mark.large
def test_a_boundary_sweep_fits_every_runs_instance_rule_also_after_a_stop(tiny_dataset, tmp_path):
    archs = [sweep.Architecture(2, (2, 2), (1, 1, 1))]
    runs = sweep.plan(archs, (752,))
    base = dict(data_dir=str(tiny_dataset), epochs=1, batch_size=8, learning_rate=1e-2, precision="float32",
                strategy="default", target="boundary", boundary_width=1)
    sweep.write_sweep_file(tmp_path / "sweep", runs, base)
    assert len(sweep.run_sweep(tmp_path / "sweep", runs, base, progress=False)) == 1
    rule = runs[0].run_dir(tmp_path / "sweep") / "instance_rule.json"
    fitted = json.loads(rule.read_text())
    assert fitted["split"] == "val" and 0.0 <= fitted["f1"] <= 1.0
    rule.unlink()  # as if the sweep stopped between training and the fit
    assert sweep.run_sweep(tmp_path / "sweep", runs, base, progress=False) == []  # nothing trains again
    assert json.loads(rule.read_text())["f1"] == fitted["f1"]
