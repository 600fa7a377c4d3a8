"""Running the absl binaries from the tests: in this process (fast) or in a subprocess (end to end).

`call_main` imports a binary fresh, parses its flags into absl's global FLAGS and calls its
`main(argv)` here, capturing what it prints and logs; it answers like `python -m module` would
(exit status, stdout, stderr) without the 6-10 s of starting Python and TensorFlow again.
`run_binary` starts the real process, for the few tests that need one (marked large).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging

from tem_rf.core.cli import drop_absl_info, one_line_errors

ROOT = Path(__file__).resolve().parents[1]
BINARY_PACKAGES = ("experiments.", "data_prep.")


@dataclasses.dataclass
class Result:
    """What a binary run answers: like `subprocess.CompletedProcess` for the assertions used here."""

    returncode: int
    stdout: str
    stderr: str


def call_main(module: str, *args: str) -> Result:
    """Runs ``python -m module args`` in this process: flags parsed by absl, `main` called.

    Flag errors give returncode 1 and absl's "FATAL Flags parsing error" line; `SystemExit`
    becomes the exit status (a message goes to stderr, as the interpreter would print it).
    Afterwards flag values, os.environ, logging and Keras/TensorFlow global state are as found.
    """
    binary = _import_fresh(module)
    stdout, stderr = io.StringIO(), io.StringIO()
    environ = dict(os.environ)
    os.environ.pop("TF_CONFIG", None)  # as binary_env: no cluster spec from the test's own environment
    with _captured_logging(stderr), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            _restored_global_state():
        returncode = _parse_and_call(binary, [module, *map(str, args)])
    os.environ.clear()
    os.environ.update(environ)
    return Result(returncode, stdout.getvalue(), stderr.getvalue())


def _parse_and_call(binary, argv: list[str]) -> int:
    """`absl.app.run` without leaving the process: the status it would exit with."""
    try:
        try:
            argv = flags.FLAGS(argv)
        except flags.Error as error:
            print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
            print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
            return 1
        one_line_errors(binary.main)(argv)  # as `tem_rf.core.cli.run` calls it
        return 0
    except app.UsageError as error:
        print(f"FATAL {error}", file=sys.stderr)
        return error.exitcode
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    finally:
        flags.FLAGS.unparse_flags()


def _import_fresh(module: str):
    """Imports ``module`` anew, first removing the flags every loaded binary defined: binaries
    share flag names (--data_dir, --out_dir), which absl refuses to define twice."""
    by_module = flags.FLAGS.flags_by_module_dict()
    binary_flags = [flag for name, defined in by_module.items() if name.startswith(BINARY_PACKAGES)
                    for flag in defined]  # a copy: removing a flag edits absl's lists
    for flag in binary_flags:
        if flag.name in flags.FLAGS:
            delattr(flags.FLAGS, flag.name)
    for name in [name for name in sys.modules if name.startswith(BINARY_PACKAGES)]:
        del sys.modules[name]
    return importlib.import_module(module)


@contextlib.contextmanager
def _captured_logging(stream: io.StringIO):
    """Log records go to ``stream`` as absl's handler would send them to stderr (WARNING and up,
    plus what a binary's own loggers let through), without TensorFlow's absl INFO lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(absl_logging.PythonFormatter())
    handler.addFilter(drop_absl_info)
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "absl", "tem_rf", "tensorflow")}
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _restored_global_state():
    """Keras session and precision policy, and TensorFlow op determinism, as found (training
    in a binary sets them for the whole process)."""
    import keras
    from tensorflow.python.framework import config as tf_config  # the public API can only enable it

    policy = keras.mixed_precision.global_policy().name
    deterministic = tf_config.is_op_determinism_enabled()
    try:
        yield
    finally:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(policy)
        if not deterministic:
            tf_config.disable_op_determinism()


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
