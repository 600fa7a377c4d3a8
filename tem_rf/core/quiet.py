"""Silencing a library's log lines (and, if asked, its Python warnings) for a block: for notes a
user has seen once already, or a reader's chatter about metadata tem_rf does not use."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logger(name: str, *, level: int = logging.ERROR, python_warnings: bool = False) -> Iterator[None]:
    """Within the block the logger ``name`` passes only records of ``level`` and above (and, with
    ``python_warnings``, Python warnings are ignored); both as they were afterwards."""
    quieted = logging.getLogger(name)
    before = quieted.level
    quieted.setLevel(level)
    try:
        with warnings.catch_warnings():
            if python_warnings:
                warnings.simplefilter("ignore")
            yield
    finally:
        quieted.setLevel(before)


__all__ = ["quiet_logger"]
