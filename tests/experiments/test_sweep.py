"""experiments/sweep.py in process: explicit pools, the deprecated --pools, sweep.json settings."""

from __future__ import annotations

import json

import pytest

from binaries import call_main
from training_helpers import make_tiny_dataset


@pytest.mark.large
def test_sweep_of_explicit_pools_and_the_deprecated_pools_flag(tmp_path):
    data_dir = make_tiny_dataset(tmp_path)
    sweep_dir = tmp_path / "sweep"
    args = [f"--data_dir={data_dir}", f"--sweep_dir={sweep_dir}", "--dilation_grid=", "--seeds=752",
            "--epochs=1", "--learning_rate=1e-2", "--precision=float32", "--strategy=default", "--noprogress",
            "--num_tasks=2"]  # task 0 records both runs but trains only the first: half the time
    out = call_main("experiments.sweep", *args, "--pool_sizes=2,2", "--pool_sizes=2,4")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 runs in the sweep (2 architectures x 1 seeds); this task trains 1" in out.stderr
    written = json.loads((sweep_dir / "sweep.json").read_text())
    assert [r["architecture"] for r in written["runs"]] == ["N2_k2-2_d1-1-1", "N2_k2-4_d1-1-1"]
    # Every TrainConfig setting shared by the runs, from the one dict the runs were trained with.
    assert written["settings"] == {
        "data_dir": str(data_dir), "batch_size": 8, "epochs": 1, "learning_rate": 1e-2, "precision": "float32",
        "strategy": "default", "jit_compile": False, "target": "mask", "boundary_width": 2, "seeds": [752],
    }
    assert "best: N2_k2-2_d1-1-1" in out.stdout and (sweep_dir / "results.csv").exists()
    assert "task 0 of 2 done" in out.stdout

    # The old flag still works (finished runs are skipped) and says what replaces it.
    again = call_main("experiments.sweep", *args, "--pools=2-2,2-4")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "--pools is deprecated; use --pool_sizes" in again.stderr
    assert json.loads((sweep_dir / "sweep.json").read_text())["runs"] == written["runs"]
    assert "0 of 1 runs to train (1 already finished)" in again.stderr

    both = call_main("experiments.sweep", *args, "--pools=2-2", "--pool_sizes=2,2")
    assert both.returncode == 1 and "give only --pool_sizes" in both.stderr

    # A rerun with other settings is refused, naming them, before sweep.json or a run changes.
    recorded = (sweep_dir / "sweep.json").read_bytes()
    run_files = sorted(p.relative_to(sweep_dir) for p in (sweep_dir / "runs").rglob("*"))
    for extra, message in [
        (["--learning_rate=1e-3", "--pool_sizes=2,2", "--pool_sizes=2,4"],
         f"error: {sweep_dir}: --learning_rate is 0.001 but this sweep was run with 0.01; use another --sweep_dir"),
        (["--pool_sizes=2,2", "--pool_sizes=2,8"], "the architectures differ from those this sweep was run with "
                                                   "(new: N2_k2-8_d1-1-1; not in these flags: N2_k2-4_d1-1-1)"),
    ]:
        changed = call_main("experiments.sweep", *[a for a in args if not a.startswith("--learning_rate")]
                            + (["--learning_rate=1e-2"] if "--learning_rate=1e-3" not in extra else []), *extra)
        assert changed.returncode == 1 and message in changed.stderr, changed.stderr[-2000:]
        assert "Traceback" not in changed.stderr
        assert (sweep_dir / "sweep.json").read_bytes() == recorded
        assert sorted(p.relative_to(sweep_dir) for p in (sweep_dir / "runs").rglob("*")) == run_files


def test_sweep_bad_flags_are_one_clear_line(tmp_path):
    out = call_main("experiments.sweep", f"--sweep_dir={tmp_path}", "--seeds=1,x")
    assert out.returncode == 1 and "--seeds must be comma-separated integers" in out.stderr
    out = call_main("experiments.sweep", f"--sweep_dir={tmp_path}")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == (
        "error: --data_dir is required unless --aggregate_only")
