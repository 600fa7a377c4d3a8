"""Choosing what a sweep analysis shows: networks spanning the RF, a pool/dilation pair, a seed."""

import json
from pathlib import Path

import numpy as np
import pytest

from tem_rf.study import sweep_figures as sweep_analysis
from tem_rf.study.sweep_figures import RunInfo
from tem_rf.train.rundir import RunDir


def _run(name, pools, dilations, rf, seed=1, n=2):
    return RunInfo(name, seed, RunDir(Path(f"runs/{name}/seed{seed}")), n, tuple(pools), tuple(dilations), rf, "data")


RUNS = [
    _run("N2_k2-2", (2, 2), (1, 1, 1), 44),
    _run("N2_k2-4", (2, 4), (1, 1, 1), 64),
    _run("N2_k4-4", (4, 4), (1, 1, 1), 120),
    _run("N2_k4-8", (4, 8), (1, 1, 1), 200),
    _run("N2_k8-8", (8, 8), (1, 1, 1), 392),
    _run("N2_k2-2_d2-2-4", (2, 2), (2, 2, 4), 124),
    _run("N3_k2-2-2", (2, 2, 2), (1, 1, 1, 1), 96, n=3),
]


def test_series_spans_the_receptive_field_of_the_fewest_blocks():
    assert sweep_analysis.choose_series(RUNS, 3) == ["N2_k2-2", "N2_k4-4", "N2_k8-8"]  # 44, 120, 392
    assert sweep_analysis.choose_series(RUNS, 2) == ["N2_k2-2", "N2_k8-8"]
    assert sweep_analysis.choose_series(RUNS[:2], 3) == ["N2_k2-2", "N2_k2-4"]


def test_pool_dilation_pair_has_the_closest_receptive_fields():
    # Dilation (2,2,4) gives 124 px; pooling (4,4) 120 px is the closest at N=2.
    assert sweep_analysis.choose_pool_dilation_pair(RUNS) == ("N2_k4-4", "N2_k2-2_d2-2-4")
    assert sweep_analysis.choose_pool_dilation_pair(RUNS[:5]) is None


def test_common_seed():
    runs = [_run("a", (2, 2), (1, 1, 1), 44, seed=s) for s in (5, 7)] + [_run("b", (2, 4), (1, 1, 1), 64, seed=7)]
    assert {r.seed for r in sweep_analysis.common_seed(runs, ["a", "b"]).values()} == {7}
    with pytest.raises(ValueError, match="seed 5 is not finished for b"):
        sweep_analysis.common_seed(runs, ["a", "b"], seed=5)


def test_examples_are_where_networks_disagree_most():
    labels = np.zeros((3, 8, 8), np.int32)
    labels[:, 2:6, 2:6] = 1
    good = labels.astype(bool)
    bad = good.copy()
    bad[1] = False  # the networks disagree on patch 1 only
    assert sweep_analysis.choose_examples(labels, [good, bad], 1) == [1]


def test_find_runs_reads_finished_runs_only(tmp_path):
    finished = tmp_path / "runs" / "N2_k2-2_d1-1-1" / "seed3"
    finished.mkdir(parents=True)
    (finished / "config.json").write_text(json.dumps(
        {"num_blocks": 2, "pool_sizes": [2, 2], "dilations": [1, 1, 1], "receptive_field_px": 44, "data_dir": "d"}))
    (finished / "metrics.json").write_text("{}")
    (tmp_path / "runs" / "N2_k2-2_d1-1-1" / "seed4").mkdir()  # unfinished: no metrics.json
    (run,) = sweep_analysis.find_runs(tmp_path)
    assert (run.seed, run.family, run.receptive_field_px) == (3, "pool", 44)
    assert run.run.path == finished
    (finished / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        sweep_analysis.find_runs(tmp_path)


def test_report_lines_skip_the_fourier_reference_and_flag_clipped_windows():
    report = {
        "patches": 4, "split": "test", "data_dir": "data", "architectures": ["N2_k2-2", "N2_k4-4"],
        "fn_overlap_summary": [
            {"method": "fourier", "hard_dice_mean": 0.5, "fn_overlap_fourier_mean": 1.0,
             "closest_count": 0, "images_compared": 4},
            {"method": "N2_k2-2", "hard_dice_mean": 0.71, "fn_overlap_fourier_mean": 0.4,
             "closest_count": 3, "images_compared": 4},
        ],
        "erf": [{"architecture": "N2_k4-4", "radius_95_px": 30.4, "receptive_field_px": 120,
                 "window_clipped": True}],
        "outputs": {"erf_csv": "out/erf.csv"},
    }
    assert sweep_analysis.report_lines(report) == [
        "analysed 4 test patches of data with N2_k2-2, N2_k4-4",
        "  N2_k2-2: hard dice 0.710, FN overlap with Fourier filtering 0.400 (the most similar to "
        "Fourier's false negatives on 3 of 4 patches)",
        "  N2_k4-4: 95 % of the input gradient within 30 px (RF 120 px, window clipped by the patch)",
        "erf_csv: out/erf.csv",
    ]
