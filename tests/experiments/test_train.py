"""experiments/train.py: two MultiWorkerMirrored worker processes, and bad flags (in process)."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from training_helpers import make_tiny_dataset, max_weight_difference, run_weights

from binaries import ROOT, binary_cmd, binary_env, call_main


def _train_cmd(*args):
    return binary_cmd("experiments.train", "--progress=false", *args)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("train_binary"))


@pytest.mark.large
def test_two_multi_worker_processes_train_in_lockstep(tiny_data, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    run = tmp_path / "run"
    args = [f"--data_dir={tiny_data}", f"--model_dir={run}", "--strategy=multi_worker", "--epochs=2",
            "--batch_size=8", "--learning_rate=1e-2", "--precision=float32", "--keep_worker_dirs"]
    workers = [
        subprocess.Popen(
            _train_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=binary_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == "multi_worker" and config["num_replicas"] == 2
    chief = run_weights(run)
    other = run_weights(run / ".worker-worker-1")
    assert max_weight_difference(chief, other) == 0.0
    assert (run / "metrics.json").exists() and not (run / ".worker-worker-1" / "metrics.json").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model_dir=X"], "Flag --data_dir must have a value other than None"),
        (["--data_dir=/nonexistent", "--model_dir=X"], "error: --data_dir /nonexistent does not exist"),
        (["--data_dir=D", "--model_dir=X", "--precision=float64"], "--precision"),
        (["--data_dir=D", "--model_dir=X", "--pool_sizes=2,x"], "--pool_sizes must be comma-separated integers"),
    ],
)
def test_bad_flags_give_one_clear_error(tmp_path, args, message):
    args = [a.replace("=X", f"={tmp_path / 'run'}").replace("=D", f"={tmp_path}") for a in args]
    out = call_main("experiments.train", "--progress=false", *args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_patch_size_not_divisible_by_pools(tiny_data, tmp_path):
    out = call_main("experiments.train", "--progress=false", f"--data_dir={tiny_data}",
                    f"--model_dir={tmp_path / 'run'}", "--pool_sizes=8,8")
    assert out.returncode != 0
    assert "patch size 32" in out.stderr and "not divisible by 64" in out.stderr
    assert "Traceback" not in out.stderr
