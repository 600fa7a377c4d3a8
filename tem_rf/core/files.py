"""Atomic file output: write to a temporary name beside the target, then rename.

A crash or a bad input half-way never leaves a truncated file under the final name, and an
existing file is only replaced once the new one is complete.
"""

from __future__ import annotations

from tem_rf.core.errors import TemRfError

import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary file path next to ``target``; renames it onto ``target`` on success.

    On error the temporary is removed. An OSError that names no file or only the temporary ("No
    space left on device" from a write) becomes a `tem_rf.core.errors.WriteError` naming
    ``target``. Folders are written with `atomic_directory`, which never deletes what the caller
    has not agreed to replace.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates owner-only files; give the result the usual umask permissions so that
        # colleagues on a shared file system can read the outputs.
        umask = os.umask(0)
        os.umask(umask)
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException as error:
        if tmp.exists():
            tmp.unlink()
        named = getattr(error, "filename", None)
        if isinstance(error, OSError) and not isinstance(error, TemRfError) and (named is None or str(named) == str(tmp)):
            from tem_rf.core.errors import WriteError

            raise WriteError(target, os_error_text(error), getattr(error, "errno", None)) from error
        raise


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike, check: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yields an empty folder ``.NAME.tmp-XXXX`` beside ``target``; moves it onto ``target`` once
    the block ends without error. It never deletes what the caller has not agreed to replace.

    ``target`` may be absent or an empty folder. Anything else is refused with
    ``FileExistsError`` (naming it) unless ``check`` is given: ``check(target)`` raises when
    ``target`` may not be written and returns when it may be replaced; it runs before the block
    and again just before the swap. An existing ``target`` is renamed aside first, deleted only
    once the new folder is in place, and renamed back when that rename fails. On any error,
    KeyboardInterrupt included, the temporary folder and the parent folders made for it are
    removed and ``target`` is left as it was.
    """
    target = Path(target)
    location = Path(os.path.abspath(target))  # "." and "x/.." have no name to put beside

    def verify() -> None:
        if check is not None:
            check(target)
        if location.is_symlink() or (location.exists() and not location.is_dir()):
            raise FileExistsError(f"{target}: exists and is not a folder")
        if check is None and location.is_dir() and any(location.iterdir()):
            raise FileExistsError(f"{target}: folder exists and is not empty")

    verify()
    made = make_parents(location.parent)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{location.name}.tmp-", dir=location.parent))
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it owner-only
        verify()
        _swap_into_place(tmp, location)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_made_folders(made)
        raise


def remove_made_folders(made: list[Path]) -> None:
    """Removes the folders `make_parents` made (one call's or several calls' lists, in order),
    innermost first; a folder that is not empty (something else was put there) stays."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def make_parents(folder: Path) -> list[Path]:
    """Makes ``folder`` and its missing parents; returns those made, outermost first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        made.append(path)
    return made


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Renames ``tmp`` to ``target``; an existing ``target`` goes aside until that has worked."""
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    aside.rmdir()  # only its unique name is wanted
    moved = False
    try:
        os.rename(target, aside)
        moved = True
        os.rename(tmp, target)
    except BaseException:
        if moved:
            os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def os_error_text(error: BaseException) -> str:
    """What went wrong in a failed write or read, in words a user can act on.

    ``strerror`` when the OS gave one ("No space left on device"); a short write without one
    (NumPy's "65536 requested and 30552 written") is a full disk or a file-size limit.
    """
    strerror = getattr(error, "strerror", None)
    if strerror:
        return strerror
    text = str(error)
    if "requested and" in text and "written" in text:
        return f"the disk is full or the file too large ({text})"
    return text or type(error).__name__


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Iterable[str] = ()) -> None:
    """Writes dict rows as CSV atomically; ``columns`` first (the header of a table without rows),
    then the rows' other keys in first-seen order; missing cells empty."""
    rows = list(rows)
    columns = list(columns)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())



def write_json(target: str | os.PathLike, content: Any, **dumps_options: Any) -> None:
    """Writes ``content`` as indented JSON to ``target`` atomically (``dumps_options``: e.g.
    ``default=str``)."""
    atomic_write_text(target, json.dumps(content, indent=2, **dumps_options) + "\n")


def read_json_object(path: str | os.PathLike, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The JSON object in ``path``; ``error`` (naming the file) when it is missing, not JSON or not
    an object."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as decode_error:
        raise error(f"{path}: not valid JSON: {decode_error}") from decode_error
    if not isinstance(content, dict):
        raise error(f"{path}: expected a JSON object")
    return content


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts of strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; numpy scalars are not serialisable: make a config dumpable."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class LockHeldError(TemRfError, RuntimeError):
    """`exclusive_lock` found the lock taken; ``pid`` is the holder's process id when known."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"{path}: locked by another process ({holder})")
        self.path = path
        self.pid = pid


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive non-blocking `fcntl.flock` on the file ``path`` for the block.

    The file is made when missing and left in place (deleting a lock file races with the next
    taker); it holds the holder's pid. Raises `LockHeldError` at once when another process, or
    another open file of this one, holds the lock. The lock dies with its process, so a killed
    holder never leaves it taken. Without ``fcntl`` (not POSIX) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(path, _lock_holder(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
