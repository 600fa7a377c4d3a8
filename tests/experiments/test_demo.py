"""experiments/demo.py (README's main command) end to end at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile

from binaries import ROOT, binary_env, call_main


@pytest.mark.parametrize(
    "flags, pools, deprecated",
    [
        ([], ((2, 2), (4, 4)), False),
        (["--pool_sizes=2,2", "--pool_sizes=2,8"], ((2, 2), (2, 8)), False),
        (["--pool_sizes=4,4,2"], ((4, 4, 2),), False),
        (["--pools=2-2,4-4"], ((2, 2), (4, 4)), True),
    ],
)
def test_pool_flags_reach_the_demo_config(monkeypatch, tmp_path, flags, pools, deprecated):
    # Only the flag handling: run_demo itself (minutes of training) is replaced by a recorder.
    from tem_rf.study import demo

    configs = []

    def record(config, progress=True):
        configs.append(config)
        return {"architectures": [], "best_architecture": "-", "dataset": "-", "sweep": "-",
                "results_csv": "-", "figure": "-", "saved_model": "-", "segmentation": "-",
                "particles": {"diameter_unit": "nm", "count": 3, "count_measured": 2, "median_diameter": 4.0,
                              "true_median_diameter_nm": 5.0, "median_diameter_error_percent": -20.0,
                              "true_count": 4, "count_error_percent": -25.0, "instance_f1": None},
                "seconds": {}}

    monkeypatch.setattr(demo, "run_demo", record)
    out = call_main("experiments.demo", f"--out_dir={tmp_path}", *flags)
    assert out.returncode == 0, out.stderr
    assert [c.pools for c in configs] == [pools]
    assert "particles in it:              3 (2 away from the edge), median diameter 4.00 nm" in out.stdout
    assert ("measured vs true (drawn):     median diameter 4.00 vs 5.00 nm (-20.0 %), count 3 vs 4 (-25.0 %), "
            "instance F1 -") in out.stdout
    assert ("--pools is deprecated; use --pool_sizes" in out.stderr) == deprecated


def test_pools_and_pool_sizes_together_is_a_flag_error(tmp_path):
    out = call_main("experiments.demo", f"--out_dir={tmp_path}", "--pools=2-2", "--pool_sizes=4,4")
    assert out.returncode == 1 and "give only --pool_sizes" in out.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.large  # a real `python -m` run of README's first command, twice
def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    env = binary_env()
    cmd = [sys.executable, "-m", "experiments.demo", f"--out_dir={out}", "--num_images=5",
           "--image_size=128", "--patch_size=64", "--pools=2-2", "--dilation_grid=1-1-2",
           "--seeds=752", "--epochs=1", "--segment_size=200", "--progress=false"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {r["architecture"] for r in summary["architectures"]} == {"N2_k2-2_d1-1-1", "N2_k2-2_d1-1-2"}
    assert {r["receptive_field_px"] for r in summary["architectures"]} == {44, 60}
    assert Path(summary["figure"]).read_bytes()[:4] == b"\x89PNG"
    assert (Path(summary["saved_model"]) / "saved_model.pb").exists()
    mask = tifffile.imread(next(Path(summary["segmentation"]).glob("*_mask.tif")))
    assert mask.shape == (200, 200)  # not a multiple of the divisor: padded, then cropped
    assert "dice vs receptive field plot:" in result.stdout
    particles = summary["particles"]
    rows = next(Path(summary["segmentation"]).glob("*_particles.csv")).read_text().splitlines()
    assert particles["count"] == len(rows) - 1 and particles["true_count"] > 0
    assert particles["diameter_unit"] == "nm" and "measured vs true (drawn):" in result.stdout
    assert "seconds per stage:            data " in result.stdout and "{" not in result.stdout
    assert "Sharding callback" not in result.stderr  # TensorFlow's checkpoint INFO lines stay out
    # Running again reuses every finished stage.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["architectures"] == summary["architectures"]
