"""Results made of files: never written over a user's file without ``--overwrite``, and put in
place whole or not at all.

`new_files` is what every command that writes named result files uses (a per-patch CSV and its
summary JSON, the figures and tables of an analysis, an advice JSON). Before anything is
computed it refuses a target that exists (unless ``overwrite``) or is a folder; the block writes
each file under a temporary name beside its target; when the block ends the files are moved into
place together. If anything fails, the block's error included, the temporaries and the folders
made for them are removed and every target is as it was, a previous result included. A file
another process creates at a target meanwhile is not replaced either: the targets are checked
again just before the move.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tem_rf.core.errors import InputError
from tem_rf.core.files import make_parents, remove_made_folders


def blocking_file(path: str | os.PathLike) -> Path | None:
    """The file (not folder) at ``path`` or at one of its parents, which keeps ``path`` from being
    a folder or from being made as one; None when there is none."""
    return next((p for p in (Path(path), *Path(path).absolute().parents)
                 if os.path.lexists(p) and not p.is_dir()), None)


def check_new_files(paths: Iterable[str | os.PathLike], overwrite: bool, flag: str = "--overwrite") -> None:
    """Raises `InputError` for the first target that is a folder, or that exists without ``overwrite``."""
    for path in map(Path, paths):
        if path.is_dir():
            raise InputError(path, "is a folder; the result is a file of that name: choose another name")
        if os.path.lexists(path) and not overwrite:
            raise InputError(path, f"exists; pass {flag} to replace it")
        blocking = blocking_file(path.absolute().parent)
        if blocking is not None:
            raise InputError(blocking, f"cannot write {path.name} into it: it is a file, not a folder")


def _temporary_beside(target: Path) -> Path:
    """A fresh name beside ``target`` (hidden, unique); the writer creates the file."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(name)  # absent until written: a result the block does not write stays absent
    return Path(name)


@contextlib.contextmanager
def new_files(
    paths: Iterable[str | os.PathLike], *, overwrite: bool, flag: str = "--overwrite"
) -> Iterator[dict[Path, Path]]:
    """Yields ``{target: temporary path}`` for the result files ``paths``; moves what the block
    wrote onto the targets when it ends, all together (see the module docstring).

    A target the block leaves unwritten is not created; with ``overwrite`` a previous file of that
    name goes with the rest of the previous result, so no stale part of it stays beside the new one.
    """
    targets = list(dict.fromkeys(Path(p) for p in paths))
    check_new_files(targets, overwrite, flag)
    made: list[Path] = []
    temporaries: dict[Path, Path] = {}
    try:
        for target in targets:
            made += make_parents(Path(os.path.abspath(target)).parent)
            temporaries[target] = _temporary_beside(target)
        yield dict(temporaries)
        check_new_files(targets, overwrite, flag)
        umask = os.umask(0)
        os.umask(umask)
        for temporary in temporaries.values():
            if temporary.exists():
                os.chmod(temporary, 0o666 & ~umask)  # mkstemp's names, the usual permissions
        _move_into_place(temporaries)
    except BaseException:
        for temporary in temporaries.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        remove_made_folders(made)
        raise


def _move_into_place(temporaries: dict[Path, Path]) -> None:
    """Renames each written temporary onto its target; previous targets go aside first and come
    back if any rename fails, so the targets hold the old result or the new one, never a mix."""
    aside: dict[Path, Path] = {}
    placed: list[Path] = []
    try:
        for target in temporaries:
            if os.path.lexists(target):
                aside[target] = _temporary_beside(target.with_name(target.name + ".old"))
                os.rename(target, aside[target])
        for target, temporary in temporaries.items():
            if temporary.exists():
                os.rename(temporary, target)
                placed.append(target)
    except BaseException:
        for target in placed:
            with contextlib.suppress(OSError):
                target.unlink()
        for target, old in aside.items():
            os.rename(old, target)
        raise
    for old in aside.values():
        with contextlib.suppress(OSError):
            old.unlink()


class WriteJournal:
    """Files a long command writes into place one after another (a folder of micrographs'
    outputs), kept as one result: `claim` each file before writing it (a previous file of that
    name is set aside), then `commit` at the end (the set-aside files are deleted) or `roll_back`
    on failure (this run's files are deleted and the set-aside ones put back), so a failed or
    interrupted run leaves the targets as they were. Set-aside files are ``.NAME.old-XXXXXXXX``
    beside their target, which `tem_rf.core.locks.remove_stale_temporaries` clears after a kill.
    """

    def __init__(self) -> None:
        self._aside: dict[Path, Path] = {}
        self._written: list[Path] = []

    def claim(self, targets: Iterable[str | os.PathLike]) -> None:
        """Records ``targets`` as this run's; sets aside a previous file at each."""
        for target in map(Path, targets):
            if target in self._aside or target in self._written:
                continue
            if os.path.lexists(target):
                fd, name = tempfile.mkstemp(prefix=f".{target.name}.old-", dir=target.parent)
                os.close(fd)
                os.rename(target, name)
                self._aside[target] = Path(name)
            self._written.append(target)

    def roll_back(self) -> None:
        """Deletes this run's files and puts the set-aside ones back."""
        for target in self._written:
            with contextlib.suppress(OSError):
                target.unlink()
        for target, old in self._aside.items():
            with contextlib.suppress(OSError):
                os.rename(old, target)
        self._aside.clear()
        self._written.clear()

    def commit(self) -> None:
        """Keeps this run's files; deletes the set-aside ones."""
        for old in self._aside.values():
            with contextlib.suppress(OSError):
                old.unlink()
        self._aside.clear()
        self._written.clear()
