"""experiments/describe.py prints parameters, receptive field and the Table S1 grid."""

import json

import pytest

from binaries import call_main, run_binary


def _run(*args):
    return call_main("experiments.describe", *args)


def test_describe_one_architecture_and_grid(tmp_path):
    out = _run("--num_blocks=2", "--pool_sizes=2,8", "--pixel_size_nm=0.02152")
    assert out.returncode == 0, out.stderr
    assert "trainable parameters:  8074" in out.stdout
    assert "receptive field:       104 px = 2.24 nm" in out.stdout
    assert "input size divisor:    16" in out.stdout

    table = tmp_path / "table.json"
    out = _run("--grid", "--grid_num_blocks=2", "--pixel_size_nm=0.1243", f"--json_out={table}")
    assert out.returncode == 0, out.stderr
    rows = json.loads(table.read_text())
    assert len(rows) == 9
    assert {r["receptive_field_px"] for r in rows} == {44, 64, 80, 104, 120, 152, 200, 232, 392}


def test_describe_bad_flag_is_one_clear_line():
    for flags, message in [
        (["--pool_sizes=2,x"], "error: --pool_sizes must be comma-separated integers"),
        (["--num_blocks=2", "--pool_sizes=2,2,2"], "error: pool_sizes must have 2 values (one per level), got 3"),
    ]:
        out = _run(*flags)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith(message)


@pytest.mark.large
def test_in_a_real_process():
    # `python -m` as a user types it: absl's app.run, cli.run and the module's __main__.
    out = run_binary("experiments.describe", "--num_blocks=2", "--pool_sizes=2,8")
    assert out.returncode == 0, out.stderr
    assert "trainable parameters:  8074" in out.stdout
    out = run_binary("experiments.describe", "--help")
    assert out.returncode == 1  # absl's --help exits with status 1
    assert "--pool_sizes" in out.stdout and "Traceback" not in out.stderr
