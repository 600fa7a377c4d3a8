"""experiments/train.py: two MultiWorkerMirrored worker processes, a kill and resume, one writer
per run folder, and refusals that leave nothing behind (in process)."""

from __future__ import annotations

import errno
import json
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from training_helpers import max_weight_difference, run_weights

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


@pytest.fixture
def tiny_data(tiny_dataset):
    return tiny_dataset


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


def _train_args(data_dir, run, *extra):
    return [f"--data_dir={data_dir}", f"--model_dir={run}", "--batch_size=8", "--learning_rate=1e-2",
            "--precision=float32", "--strategy=default", "--num_images=0", *extra]


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hold_lock(folder):
    """A separate process holding the folder's lock until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tem_rf.core.files import exclusive_lock\n"
         f"with exclusive_lock({str(folder / '.lock')!r}):\n    print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=binary_env())
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_in_a_locked_run_folder_is_refused_and_the_lock_dies_with_its_holder(tiny_data,
                                                                                              tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = _hold_lock(run)
    try:
        before = _snapshot(run)
        out = call_main("experiments.train", "--progress=false", *_train_args(tiny_data, run, "--epochs=1"))
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1] == (
            f"error: {run}: another tem_rf process is training in this folder (pid {holder.pid})")
        assert _snapshot(run) == before  # no config.json, no logs/
    finally:
        holder.kill()  # SIGKILL: flock goes with the process
        holder.wait()
    out = call_main("experiments.train", "--progress=false", *_train_args(tiny_data, run, "--epochs=1"))
    assert out.returncode == 0, out.stderr[-2000:]
    from tem_rf.core.files import exclusive_lock

    with exclusive_lock(run / ".lock"):  # released after the run
        pass


@pytest.mark.large
def test_refused_commands_leave_the_run_folder_as_it_was(tiny_data, tmp_path):
    run = tmp_path / "run"
    out = call_main("experiments.train", "--progress=false", *_train_args(tiny_data, run, "--epochs=1"))
    assert out.returncode == 0, out.stderr[-2000:]
    before = _snapshot(run)
    for args, message in [
        (_train_args(tmp_path / "nowhere", run, "--epochs=1"), "does not exist or is not a directory"),
        (_train_args(tiny_data, run, "--epochs=1", "--learning_rate=1e-3"),
         f"error: {run}: --learning_rate is 0.001 but this run was trained with 0.01; use another "
         "--model_dir, or pass the run's values to resume it"),
        (_train_args(tiny_data, run, "--epochs=1", "--noaugment", "--xla"),
         "--xla is true but this run was trained with false; --augment is false but this run was trained with true"),
        (_train_args(tiny_data, run, "--epochs=1", "--pool_sizes=2,x"), "--pool_sizes must be comma-separated"),
    ]:
        out = call_main("experiments.train", "--progress=false", *args)
        assert out.returncode == 1 and message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert _snapshot(run) == before


def test_model_dir_that_is_a_file_is_one_clear_error(tiny_data, tmp_path):
    (tmp_path / "run").write_text("notes")
    out = call_main("experiments.train", "--progress=false", *_train_args(tiny_data, tmp_path / "run"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: --model_dir {tmp_path / 'run'} is a file, not a folder; name a folder")
    assert (tmp_path / "run").read_text() == "notes"
    out = call_main("experiments.train", "--progress=false", *_train_args(tiny_data, tmp_path / "run" / "sub"))
    assert out.returncode == 1 and "cannot make the folder" in out.stderr and "Traceback" not in out.stderr


def test_disk_full_while_writing_a_run_file_is_one_line_naming_it(tiny_data, tmp_path, monkeypatch):
    real_write_text = pathlib.Path.write_text

    def full_for_history(path, text, *args, **kwargs):
        if path.name.startswith(".history.csv."):
            real_write_text(path, text[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full_for_history)
    run = tmp_path / "run"
    out = call_main("experiments.train", "--progress=false", *_train_args(tiny_data, run, "--epochs=1"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {run / 'history.csv'}: cannot write (No space left on device)")
    assert not list(run.glob(".history.csv*")) and not (run / "history.csv").exists()
    assert not (run / "metrics.json").exists()


@pytest.mark.large  # three training processes
def test_a_run_killed_during_epoch_two_resumes_to_the_weights_of_an_uninterrupted_run(tiny_data, tmp_path):
    args = ["--epochs=3", "--image_every=1", "--num_images=1"]
    full = subprocess.run(_train_cmd(*_train_args(tiny_data, tmp_path / "full"), *args), cwd=ROOT,
                          capture_output=True, text=True, env=binary_env(), timeout=300)
    assert full.returncode == 0, full.stderr[-3000:]
    run = tmp_path / "killed"
    process = subprocess.Popen(_train_cmd(*_train_args(tiny_data, run), *args), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=binary_env())
    try:
        deadline = time.monotonic() + 300
        state = run / "checkpoints" / "checkpoint"  # names ckpt-1 once epoch 1's checkpoint is complete
        while not (state.exists() and '"ckpt-1"' in state.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, "training ended before epoch 2"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # epoch 2 is training
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert not (run / "metrics.json").exists()
    assert '"ckpt-2"' not in state.read_text(), "killed after epoch 2 had ended"
    again = subprocess.run(_train_cmd(*_train_args(tiny_data, run), *args), cwd=ROOT,
                           capture_output=True, text=True, env=binary_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert max_weight_difference(run_weights(tmp_path / "full"), run_weights(run)) == 0.0
    assert max_weight_difference(run_weights(tmp_path / "full", "best.keras"), run_weights(run, "best.keras")) == 0.0
    assert not [p.name for p in run.glob(".*.tmp*")]
    assert not [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name or p.name.endswith("_temp")]


@pytest.mark.large  # two training processes
def test_ctrl_c_during_training_is_one_line_and_the_run_resumes(tiny_data, tmp_path):
    from tem_rf.core.cli import INTERRUPTED

    args = ["--epochs=3", "--num_images=1"]
    run = tmp_path / "interrupted"
    process = subprocess.Popen(_train_cmd(*_train_args(tiny_data, run), *args), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=binary_env())
    try:
        deadline = time.monotonic() + 300
        state = run / "checkpoints" / "checkpoint"
        while not (state.exists() and '"ckpt-1"' in state.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, "training ended before epoch 2"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)  # Ctrl-C in epoch 2
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == INTERRUPTED
    assert not (run / "metrics.json").exists()
    again = subprocess.run(_train_cmd(*_train_args(tiny_data, run), *args), cwd=ROOT,
                           capture_output=True, text=True, env=binary_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "metrics.json").exists() and not [p.name for p in run.glob(".*.tmp*")]


@pytest.mark.large  # two training processes that wait for workers that never come
def test_a_worker_whose_peer_never_comes_gives_up_or_stops_on_a_signal(tiny_data, tmp_path):
    def lone_worker(run, *extra):
        cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
        return subprocess.Popen(
            _train_cmd(f"--data_dir={tiny_data}", f"--model_dir={run}", "--strategy=multi_worker", "--epochs=1",
                       "--precision=float32", *extra),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=binary_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})),
        )

    timed_out = lone_worker(tmp_path / "timeout", "--worker_timeout_s=3")
    waiting = lone_worker(tmp_path / "signalled")
    try:
        line = ""
        while "waiting for the other workers" not in line:  # the watcher has taken the signals over
            line = waiting.stderr.readline()
            assert line, "the worker ended before it waited"
        waiting.send_signal(signal.SIGTERM)  # at once, as Ctrl-C would (TensorFlow ignored both)
        _, stderr = waiting.communicate(timeout=60)
        assert waiting.returncode == -signal.SIGTERM and "Traceback" not in stderr
        _, stderr = timed_out.communicate(timeout=120)
        assert timed_out.returncode == -signal.SIGKILL  # by the watchdog, after saying why
        assert "error: multi-worker training: not every worker joined within 3 s (waiting for localhost:" in stderr
    finally:
        for process in (timed_out, waiting):
            if process.poll() is None:
                process.kill()
    assert not (tmp_path / "timeout").exists() and not (tmp_path / "signalled").exists()  # nothing written
