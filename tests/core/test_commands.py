"""``tem-rf <command>`` (and ``python -m tem_rf``): one entry point for every binary."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tem_rf.core.commands import COMMANDS, usage

ROOT = Path(__file__).resolve().parents[2]


def test_every_binary_has_a_command():
    modules = {f"{folder}.{p.stem}" for folder in ("data_prep", "experiments")
               for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}
    assert set(COMMANDS.values()) == modules
    assert all(name == module.rsplit(".", 1)[1].replace("_", "-") for name, module in COMMANDS.items())
    listed = usage()
    for name in COMMANDS:
        assert f"\n  {name} " in listed
    assert "Segments full-size micrographs" in listed


def test_the_console_script_is_declared():
    scripts = metadata.entry_points(group="console_scripts")
    assert [entry.value for entry in scripts if entry.name == "tem-rf"] == ["tem_rf.core.commands:main"]


def _tem_rf(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TEM_RF_TF_LOGS"}
    return subprocess.run([sys.executable, "-m", "tem_rf", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)


@pytest.mark.large  # four fresh interpreters, one importing TensorFlow: CI's full suite runs it
def test_a_command_runs_its_binary_and_an_unknown_one_is_refused():
    described = _tem_rf("describe", "--num_blocks=2", "--pool_sizes=2,2")
    assert described.returncode == 0, described.stderr
    assert "trainable parameters:  8074" in described.stdout
    assert "describe" in _tem_rf("describe", "--help").stdout
    unknown = _tem_rf("segmnt")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown command 'segmnt'")
    assert _tem_rf().stdout.startswith("usage: tem-rf <command>")


# Binaries whose outputs resume instead of being replaced: a run directory or a sweep's runs are
# continued (their settings compared), never overwritten, so they have no --overwrite.
RESUMING = {"train", "sweep", "learning_curve"}


def test_every_binary_follows_one_command_line_convention():
    import re

    for folder in ("data_prep", "experiments"):
        for path in (ROOT / folder).glob("*.py"):
            if path.stem == "__init__":
                continue
            source = path.read_text()
            defined = set(re.findall(r'DEFINE_\w+\(\s*"(\w+)"', source))
            assert "progress" in defined, f"{path.name}: no --progress"
            assert "overwrite" in defined or path.stem in RESUMING, f"{path.name}: no --overwrite"
            assert "input" not in defined, f"{path.name}: micrographs are --images"
