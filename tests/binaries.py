"""Running the absl binaries in a subprocess, as a user would, from the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def binary_env(**extra: str) -> dict[str, str]:
    """The test process's environment without a cluster spec, TensorFlow quiet, no GPU."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def binary_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def run_binary(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs ``python -m module args`` from the repository root and captures its output."""
    return subprocess.run(binary_cmd(module, *args), cwd=ROOT, capture_output=True, text=True,
                          check=False, env=binary_env(), timeout=timeout)
