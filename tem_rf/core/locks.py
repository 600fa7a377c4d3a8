"""One writer per output: a second tem_rf process writing the same output is refused at once, and
the writer that holds an output may clear what a killed writer left there.

Without it two ``segment`` (or ``measure``, ``make_tfrecords``, ``export``) processes into one
place both ended with status 0 and one result silently replaced the other. `output_lock` takes an
exclusive ``flock`` on ``.NAME.lock`` beside the output (a dataset or export folder is swapped for
a new one, so the lock cannot live inside it) and removes that file when the block ends. Under
the lock, `remove_stale_temporaries` deletes the temporaries a killed writer left beside the
output (``.NAME.XXXX.tmp``, ``.NAME.tmp-XXXX``, ``.NAME.old-XXXX``): nobody else can be writing them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from tem_rf.core.errors import InputError
from tem_rf.core.files import make_parents, remove_made_folders

logger = logging.getLogger(__name__)
RANDOM = "[a-z0-9_]{8}"  # the random part of a tempfile.mkstemp / mkdtemp name


class OutputInUseError(InputError):
    """Another process holds the output's lock: the message names the output and that process
    (an `InputError`, so every binary reports it as the one line it gives a bad --out_dir)."""

    def __init__(self, target: str | os.PathLike, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            target, f"another tem_rf command ({holder}) is writing this output; wait for it to end or "
            "choose another output"
        )
        self.pid = pid


def lock_file(target: str | os.PathLike) -> Path:
    """Where the lock of the output ``target`` lives: ``.NAME.lock`` beside it, or
    ``.tem_rf.lock`` inside a folder that has no writable parent (``/``, a read-only parent)."""
    location = Path(os.path.abspath(target))
    if location.name and os.access(location.parent, os.W_OK):
        return location.with_name(f".{location.name}.lock")
    if location.is_dir():
        return location / ".tem_rf.lock"
    return location.with_name(f".{location.name}.lock")  # cannot be made: the open says why


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def output_lock(target: str | os.PathLike) -> Iterator[None]:
    """Holds the lock of the output ``target`` (a file or folder) for the block, or raises
    `OutputInUseError` at once. The lock dies with its process (a killed holder never leaves it
    taken); its file and the folders made for it are removed when the block ends. Without
    ``fcntl`` (not POSIX) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = lock_file(target)
    made = make_parents(path.parent)
    try:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputInUseError(target, _holder(path)) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            # The previous holder removed the file between our open and our flock: the lock we
            # hold is on a file nobody else will find. Take the one at the path instead.
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # while still holding it: the next taker's samestat check sees this
            os.close(fd)
    finally:
        remove_made_folders(made)


def stale_temporaries(targets: Iterable[str | os.PathLike]) -> list[Path]:
    """The temporaries writers leave beside each target when killed: ``.NAME.XXXX.tmp``
    (`atomic_path`, `tem_rf.core.outputs.new_files`), ``.NAME.old.XXXX.tmp``, ``.NAME.tmp-XXXX``
    (`atomic_directory`) and ``.NAME.old-XXXX`` (a replaced folder set aside)."""
    found = []
    for target in targets:
        location = Path(os.path.abspath(target))
        if not location.parent.is_dir():
            continue
        name = re.escape(location.name)
        # mkstemp/mkdtemp add 8 characters of [a-z0-9_]; a temporary's own temporary (an atomic
        # write into a `new_files` temporary) has a second dot in front and a second suffix.
        pattern = re.compile(
            rf"^\.{{1,2}}{name}\.(old\.)?{RANDOM}\.tmp(\.{RANDOM}\.tmp)?$|^\.{name}\.(tmp|old)-{RANDOM}$"
        )
        found += [entry for entry in location.parent.iterdir() if pattern.match(entry.name)]
    return sorted(set(found))


def remove_stale_temporaries(targets: Iterable[str | os.PathLike], keep: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Deletes `stale_temporaries` of ``targets`` except ``keep`` (the caller's own); call it
    only while holding their `output_lock` (no other process may be writing them). Returns what
    was removed."""
    kept = {Path(os.path.abspath(path)) for path in keep}
    removed = [path for path in stale_temporaries(targets) if path not in kept]
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted command: %s", len(removed),
                    ", ".join(p.name for p in removed[:3]) + (" ..." if len(removed) > 3 else ""))
    return removed
