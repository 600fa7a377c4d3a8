"""TensorFlow's native start-up lines are kept off a binary's stderr; everything else passes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tem_rf.core.native_logs import is_noise


@pytest.mark.parametrize("line, noise", [
    (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    (b"I0000 00:00:1796657047.883154    3933 port.cc:153] oneDNN custom operations are on.", True),
    (b"I0000 00:00:1796657047.883154    3933 cudart_stub.cc:31] Could not find cuda drivers on your machine", True),
    (b"E0000 00:00:1796657051.317465    3933 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error", True),
    (b"E0000 00:00:1796657051.317465    3933 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512", True),
    (b"2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda", True),
    (b"2025-09-17 14:44:05.176998: E external/xla/cuda/cuda_fft.cc:467] Unable to register cuFFT factory: x", True),
    # native errors that are not start-up chatter, tem_rf's own log lines and refusals: kept
    (b"E0000 00:00:1796657051.317465    3933 bfc_allocator.cc:52] Allocator ran out of memory", False),
    (b"2025-09-17 14:44:05.176998: E external/local_xla/xla/service.cc:467] something real", False),
    (b"I1207 15:24:09.054542 140262066572160 loop.py:453] resumed runs/a at epoch 12", False),
    (b"W1207 15:24:09.054542 140262066572160 cli.py:153] --pools is deprecated; use --pool_sizes", False),
    (b"error: a.tif: no such file", False),
])
def test_noise_is_tensorflow_chatter_only(line, noise):
    assert is_noise(line) is noise
    assert is_noise(line + b"\n") is noise


SCRIPT = textwrap.dedent("""
    import os, sys
    from tem_rf.core import cli

    def main(argv):
        {body}
        print("python stderr", file=sys.stderr)
        os.write(2, b"I0000 00:00:1.5 7 port.cc:153] chatter\\nE0000 00:00:1.5 7 alloc.cc:9] real trouble\\n")
        print("stdout line")

    cli.run(main)
""")


def _run(body: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TEM_RF_TF_LOGS")}
    return subprocess.run([sys.executable, "-c", SCRIPT.format(body=body)], capture_output=True,
                          env={**env, **environment}, timeout=120)


def test_a_binary_s_native_stderr_is_filtered_and_python_s_is_not():
    result = _run("pass")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"stdout line\n"
    assert result.stderr.splitlines() == [b"python stderr", b"E0000 00:00:1.5 7 alloc.cc:9] real trouble"]
    shown = _run("pass", TEM_RF_TF_LOGS="1")
    assert b"I0000 00:00:1.5 7 port.cc:153] chatter" in shown.stderr.splitlines()


@pytest.mark.large  # imports TensorFlow twice in fresh processes
def test_tensorflow_s_start_up_lines_are_gone():
    body = "import tensorflow as tf; tf.config.list_physical_devices(); tf.constant(1) + 1"
    quiet = _run(body)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == [b"python stderr", b"E0000 00:00:1.5 7 alloc.cc:9] real trouble"]
    loud = _run(body, TEM_RF_TF_LOGS="1")
    assert b"absl::InitializeLog" in loud.stderr or b"cuda" in loud.stderr.lower() or b"oneDNN" in loud.stderr
