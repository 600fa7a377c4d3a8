"""The refusals tem_rf makes: one base class, and the input error every reader raises.

Each refusal says what it is about first (``<path>: <problem>``), so that a binary can print it
as one ``error:`` line and a caller can catch `TemRfError` for every one of them.
"""

from __future__ import annotations

import os
from pathlib import Path


class TemRfError(Exception):
    """Base of tem_rf's refusals; the message names the file, folder or flag and the problem."""


class InputError(TemRfError, ValueError):
    """Bad input data. The message always names the file (or folder) and what is wrong with it."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class WriteError(TemRfError, OSError):
    """A file that could not be written, named with the operating system's reason ("No space left
    on device"); an OSError, so callers that catch those still do."""

    def __init__(self, path: str | os.PathLike, reason: str, errno: int | None = None):
        self.path = Path(path)
        self.message = f"{path}: cannot write ({reason})"
        super().__init__(self.message)
        self.errno, self.strerror = errno, reason  # what `tem_rf.core.files.os_error_text` reports

    def __str__(self) -> str:  # not OSError's "[Errno 28] ..." once errno is set
        return self.message
