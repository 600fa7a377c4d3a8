"""TensorFlow's native start-up lines kept off a binary's stderr.

TensorFlow 2.21 logs from C++ through absl straight to file descriptor 2, and the lines it writes
while it starts come before ``TF_CPP_MIN_LOG_LEVEL`` is applied: "oneDNN custom operations are
on", "Could not find cuda drivers on your machine", absl's "All log messages before
absl::InitializeLog() is called are written to STDERR", and on a machine without a GPU an
E-level "failed call to cuInit: ... CUDA error" that reads like a failure. No setting removes
them, so `filter_native_stderr` puts a pipe on descriptor 2: a daemon thread forwards what
arrives to the real stderr, less TensorFlow's INFO and WARNING lines and the start-up errors
`STARTUP_ERRORS` name. Any other native error line passes. Python's own ``sys.stderr`` (errors,
log records, progress bars) keeps writing to the real stderr directly, so a terminal stays a
terminal. ``TEM_RF_TF_LOGS=1`` in the environment turns the filter off.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import sys
import threading

ENVIRONMENT_SWITCH = "TEM_RF_TF_LOGS"
# A native log line, as absl writes it (severity, date, time, before absl is set up
# 00:00:<epoch seconds>, thread, C++ file:line]) or TensorFlow's own logger (date time: severity
# file:line]). absl's Python handler writes the first layout from .py files: those are tem_rf's
# own log lines and always pass.
_NATIVE_LINE = re.compile(
    rb"^(?:(?P<absl>[IWEF])\d{4} [\d:.]+ +\d+ |\d{4}-\d\d-\d\d [\d:.]+: (?P<tsl>[IWEF]) )"
    rb"[\w./-]+\.(?:cc|cpp|c|h):\d+\] "
)
_INITIALIZE_LOG = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Native error lines TensorFlow writes while it starts on machines it was not built for.
STARTUP_ERRORS = (
    b"failed call to cuInit",
    b"Unable to register cuDNN factory",
    b"Unable to register cuFFT factory",
    b"Unable to register cuBLAS factory",
    b"oneDNN supports DT_",  # "... only on platforms with AVX-512. Falling back to the default Eigen ..."
)
_MAYBE_NATIVE = re.compile(rb"^(?:[IWEF]\d{0,4}(?: |$)|\d{1,4}(?:-|$)|\d{4}-|W(?:A|$))")


def is_noise(line: bytes) -> bool:
    """Whether a native stderr line is TensorFlow start-up chatter (see the module docstring)."""
    line = line.rstrip(b"\r\n")
    if line.startswith(_INITIALIZE_LOG):
        return True
    found = _NATIVE_LINE.match(line)
    if not found:
        return False
    if (found.group("absl") or found.group("tsl")) in (b"I", b"W"):
        return True
    return any(marker in line for marker in STARTUP_ERRORS)


def _forward(read_fd: int, out_fd: int) -> None:
    """Copies the pipe to ``out_fd`` line by line, dropping `is_noise` lines; a partial line that
    cannot start a native log line (a progress bar's ``\\r``) goes on at once."""
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not is_noise(line))
        if pending and not _MAYBE_NATIVE.match(pending):
            out, pending = out + pending, b""
        if out:
            os.write(out_fd, out)
    if pending and not is_noise(pending):
        os.write(out_fd, pending)
    os.close(read_fd)


def _repoint_handlers(old, new) -> None:
    """Log handlers made before the switch (absl's among them) write to ``new`` instead of ``old``."""
    import logging

    handlers = list(logging.getLogger().handlers)
    try:
        from absl import logging as absl_logging

        handlers.append(absl_logging.get_absl_handler().python_handler)
    except ImportError:
        pass
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is old:
            handler.setStream(new)


def filter_native_stderr() -> bool:
    """Routes descriptor 2 through the noise filter for the rest of the process (module
    docstring); returns whether it did (not with ``TEM_RF_TF_LOGS=1``, nor without a usable
    descriptor 2). At exit the real stderr is put back and the filter drains the pipe."""
    if os.environ.get(ENVIRONMENT_SWITCH, "").strip() not in ("", "0"):
        return False
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (OSError, ValueError, AttributeError):
        return False
    os.dup2(write_fd, 2)
    os.close(write_fd)
    previous = sys.stderr
    encoding = getattr(previous, "encoding", None) or "utf-8"
    # Python writes to the real stderr directly; a copy of its descriptor, so the exit handler
    # can close what it opened without closing the real one under it.
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(real), "w"), encoding=encoding, errors="backslashreplace",
                                  line_buffering=True, write_through=True)
    _repoint_handlers(previous, sys.stderr)
    thread = threading.Thread(target=_forward, args=(read_fd, real), name="tem_rf-native-stderr", daemon=True)
    thread.start()

    def restore() -> None:
        for stream in (sys.stderr, previous):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(real, 2)  # the pipe's last writer in this process goes: the thread drains it and ends
        thread.join(timeout=2.0)

    atexit.register(restore)
    return True


__all__ = ["ENVIRONMENT_SWITCH", "STARTUP_ERRORS", "filter_native_stderr", "is_noise"]
