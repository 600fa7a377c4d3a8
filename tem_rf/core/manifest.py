"""What tem_rf wrote into a folder it writes as a whole, so that replacing the folder deletes that
and nothing else.

A dataset (``dataset.json``: its shards) and the demo data (``demo.json``: its images, masks and
particle tables) each record the files they consist of. ``--overwrite`` replaces such a folder
only when every entry in it is one of those files or a folder leading to one: a user's notes, a
run trained into the folder or the input micrographs kept inside it are never deleted; the folder
is refused instead, naming what is in the way. Symbolic links are never ours (deleting one loses
the user's link even when its name matches).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from tem_rf.core.errors import InputError

SHOWN_ENTRIES = 3  # foreign entries named in a refusal; the rest are counted


def owned_folders(files: Iterable[str], folders: Iterable[str] = ()) -> set[str]:
    """The folders (relative, POSIX) that lead to ``files``, plus ``folders`` (possibly empty ones)."""
    owned = {str(PurePosixPath(folder)) for folder in folders}
    for file in files:
        owned.update(str(parent) for parent in PurePosixPath(file).parents if str(parent) != ".")
    return owned


def foreign_entries(folder: str | os.PathLike, files: Iterable[str], folders: Iterable[str] = ()) -> list[str]:
    """Entries under ``folder`` that tem_rf did not write: not one of ``files`` (relative POSIX
    paths), not a folder leading to one or in ``folders``; links always. A foreign folder is
    listed once (``run/``), not file by file. Sorted."""
    files = {str(PurePosixPath(file)) for file in files}
    dirs = owned_folders(files, folders)
    foreign = []
    root = Path(folder)
    pending = [root]
    while pending:
        current = pending.pop()
        for entry in sorted(current.iterdir()):
            relative = entry.relative_to(root).as_posix()
            if entry.is_symlink():
                foreign.append(relative)
            elif entry.is_dir():
                if relative in dirs:
                    pending.append(entry)
                else:
                    foreign.append(relative + "/")
            elif relative not in files or not entry.is_file():
                foreign.append(relative)
    return sorted(foreign)


def check_only_owned(folder: str | os.PathLike, files: Iterable[str], folders: Iterable[str] = (), *,
                     record: str) -> None:
    """Raises `InputError` naming ``folder`` and what in it tem_rf did not write (`foreign_entries`)
    unless it holds nothing else; ``record`` names the file that lists what tem_rf wrote."""
    foreign = foreign_entries(folder, files, folders)
    if foreign:
        shown = ", ".join(foreign[:SHOWN_ENTRIES])
        if len(foreign) > SHOWN_ENTRIES:
            shown += f" and {len(foreign) - SHOWN_ENTRIES} more"
        raise InputError(
            folder,
            f"holds {shown}, which tem_rf did not write (not listed in its {record}); --overwrite "
            "replaces only what tem_rf wrote: move them out or choose another folder",
        )
