"""experiments/recommend.py prints the architecture advice: the rule, its source, the sweep command."""

import json

import pytest

from binaries import call_main


def _run(*args):
    return call_main("experiments.recommend", *args, "--noprogress")


def test_advice_states_the_rule_its_source_and_the_sweep_command(tmp_path):
    out = _run("--pixel_size_nm=0.02152", "--particle_diameter_nm=5", "--resolution=high", "--num_blocks=2",
               f"--json_out={tmp_path / 'advice.json'}")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "rule: high resolution" in text and "plateau" in text
    assert "source: Sytwu, Groschner & Scott" in text and "Fig. 2d" in text
    assert "choice: N2_k8-4_d1-1-1" in text
    assert "  N2_k8-4_d1-1-1          8074    232    4.99      32" in text  # params, RF px/nm, divisor
    assert "python3 -m experiments.sweep --data_dir=DATA --sweep_dir=sweeps/confirm --pool_sizes=8,4" in text
    saved = json.loads((tmp_path / "advice.json").read_text())
    assert saved["choice"]["architecture"] == "N2_k8-4_d1-1-1" and saved["regime"] == "high_res"


def test_low_resolution_rule_and_the_sweep_answer(tmp_path):
    out = _run("--pixel_size_nm=0.1243", "--particle_diameter_nm=20", "--resolution=low", "--num_blocks=2")
    assert out.returncode == 0, out.stderr
    assert "rule: low resolution" in out.stdout and "Fig. 2c" in out.stdout
    assert "choice: N2_k2-2_d1-1-1" in out.stdout

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    rows = [{"architecture": a, "trainable_params": p, "receptive_field_px": rf, "hard_dice_mean": m,
             "hard_dice_std": s} for a, p, rf, m, s in (("N2_k2-2_d1-1-1", 8074, 44, 0.96, 0.01),
                                                        ("N3_k2-2-2_d1-1-1-1", 32730, 96, 0.965, 0.01))]
    (sweep / "results.json").write_text(json.dumps({"architectures": rows}))
    out = _run(f"--sweep_dir={sweep}")
    assert out.returncode == 0, out.stderr
    assert "lightest within one std of it: N2_k2-2_d1-1-1" in out.stdout


@pytest.mark.parametrize("args, message", [
    (("--pixel_size_nm=0", "--particle_diameter_nm=5"), "error: pixel_size_nm must be a positive"),
    (("--pixel_size_nm=nan", "--particle_diameter_nm=5"), "error: pixel_size_nm must be a positive"),
    (("--pixel_size_nm=0.02", "--particle_diameter_nm=0"), "error: particle_diameter_nm must be a positive"),
    (("--pixel_size_nm=0.02",), "error: particle_diameter_nm is required"),
    (("--particle_diameter_nm=5", "--images={tmp}/nowhere"), "error: .*nowhere: folder does not exist"),
    (("--sweep_dir={tmp}",), "error: .*: no sweep results"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    import re

    out = _run(*(a.format(tmp=tmp_path) for a in args))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1
    assert re.match(message, lines[-1]), lines[-1]
    assert out.stdout == ""
