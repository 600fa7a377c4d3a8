"""Progress over a loop: a tqdm bar on a terminal, one plain line per finished loop otherwise.

When stderr is a terminal, `progress_bar` is tqdm. When it is not (CI, ``2> log``, a pipe,
pytest's capture), a bar would write a carriage return per refresh into the log; instead
nothing is written while the loop runs and one line is written when it ends::

    writing: 100% 12/12 image [00:03, 3.81 image/s]
    epoch 1/100: 100% 250/250 step [01:02, 4.03 step/s, loss=0.4137]

The object returned supports the part of tqdm's interface the package uses: iterating,
``len``, ``update(n)`` (manual counting, with ``iterable=None``), ``set_postfix(...)``,
``set_postfix_str``, ``close()`` and ``with``. A loop left early (``break``, an error) writes
its line on ``close()`` or at the end of a ``with`` block, showing how far it got.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an open terminal (``isatty()``); False for files, pipes, StringIO."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = False,
    file: IO[str] | None = None,
):
    """``iterable`` with progress shown on ``file`` (default: ``sys.stderr`` at call time).

    ``enabled=False``: the iterable itself (manual mode, ``iterable=None``: an object whose
    methods do nothing). On a terminal: ``tqdm`` (``leave``: keep the finished bar). Otherwise: a
    `LineProgress` writing one line when the loop ends. ``total`` defaults to ``len(iterable)``.
    """
    stream = sys.stderr if file is None else file
    if not enabled:
        return _Silent() if iterable is None else iterable
    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=stream, dynamic_ncols=True)
    return LineProgress(iterable, desc=desc, total=total, unit=unit, file=stream)


class LineProgress:
    """Counts a loop silently and writes one summary line (no carriage return) when it ends."""

    def __init__(self, iterable: Iterable | None, *, desc: str, total: int | None, unit: str, file: IO[str]):
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.unit = unit
        self.file = file
        self.n = 0
        self.postfix = ""
        self.started = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress counts by update(); it has no iterable")
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __len__(self) -> int:
        if self.total is not None:
            return self.total
        return len(self.iterable)  # type: ignore[arg-type]

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        del refresh
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        del refresh
        self.postfix = str(text)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        del refresh
        self.desc = desc or ""

    def line(self) -> str:
        """The summary line, e.g. ``writing: 100% 12/12 image [00:03, 3.81 image/s]``."""
        elapsed = time.perf_counter() - self.started
        rate = f"{self.n / elapsed:.3g} {self.unit}/s" if elapsed > 0 and self.n else f"? {self.unit}/s"
        if self.total:
            count = f"{100 * self.n / self.total:.0f}% {self.n}/{self.total} {self.unit}"
        else:
            count = f"{self.n} {self.unit}"
        postfix = f", {self.postfix}" if self.postfix else ""
        prefix = f"{self.desc}: " if self.desc else ""
        return f"{prefix}{count} [{_interval(elapsed)}, {rate}{postfix}]"

    def close(self) -> None:
        """Writes the line, once."""
        if self.closed:
            return
        self.closed = True
        try:
            self.file.write(self.line() + "\n")
            self.file.flush()
        except (ValueError, OSError):  # the stream was closed: nothing to report to
            pass


class _Silent:
    """Manual-mode progress when disabled: every method does nothing."""

    n = 0

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def _interval(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on (tqdm's format)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


__all__ = ["LineProgress", "is_terminal", "progress_bar"]
