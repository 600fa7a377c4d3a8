"""experiments/export.py: a run directory becomes a SavedModel; bad input is one clear line."""

import json

import numpy as np
import tensorflow as tf

from tem_rf.models import residual_unet

from binaries import call_main


def _run(*args):
    return call_main("experiments.export", *args)


def test_export_run_directory(tmp_path):
    model = residual_unet(2, seed=0)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "best.keras")
    config = {"architecture": model.name, "num_blocks": 2, "pool_sizes": [2, 2], "pixel_size_nm": 0.02152}
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))

    out = _run(f"--model={tmp_path / 'run'}", f"--out_dir={tmp_path / 'exported'}")
    assert out.returncode == 0, out.stderr
    assert "receptive field 44 px = 0.95 nm, size divisor 4, tiling halo 24 px" in out.stdout
    # TensorFlow's SavedModel INFO lines (logged through absl) stay out of the user's terminal
    assert "Writing fingerprint" not in out.stderr and "Sharding callback" not in out.stderr
    metadata = json.loads((tmp_path / "exported" / "assets" / "tem_rf.json").read_text())
    assert metadata["config"] == config and metadata["size_divisor"] == 4

    x = np.random.default_rng(0).normal(size=(1, 12, 20, 1)).astype("float32")
    serve = tf.saved_model.load(str(tmp_path / "exported")).signatures["serving_default"]
    np.testing.assert_allclose(
        serve(image=tf.constant(x))["particle_probability"].numpy(), model(x).numpy()[..., 1], atol=1e-5
    )


def test_export_bad_model_is_one_clear_line(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    out = _run(f"--model={tmp_path / 'not_a_run'}", f"--export_dir={tmp_path / 'exported'}")
    assert out.returncode == 1
    assert "--export_dir is deprecated; use --out_dir" in out.stderr  # the old name still works
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'not_a_run'}: not a run directory")
    assert not (tmp_path / "exported").exists()

    out = _run(f"--model={tmp_path / 'not_a_run'}")
    assert out.returncode != 0 and "--out_dir" in out.stderr

    out = _run(f"--model={tmp_path / 'not_a_run'}", f"--out_dir={tmp_path / 'a'}", f"--export_dir={tmp_path / 'b'}")
    assert out.returncode == 1 and "give only --out_dir" in out.stderr
