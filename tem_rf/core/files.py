"""Atomic file output: write to a temporary name beside the target, then rename.

A crash or a bad input half-way never leaves a truncated file under the final name, and an
existing file is only replaced once the new one is complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yields a temporary path next to ``target``; renames it onto ``target`` on success.

    With ``directory=True`` the temporary path is an empty directory and an existing ``target``
    directory is replaced only after the new one is complete. On error the temporary is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only files; give the result the usual umask permissions
        # so that colleagues on a shared file system can read the outputs.
        umask = os.umask(0)
        os.umask(umask)
        if tmp.exists():
            os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~umask)
        if directory:
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old)
            else:
                tmp.rename(target)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Writes dict rows as CSV atomically; columns in first-seen order, missing cells empty."""
    rows = list(rows)
    columns: list[str] = []
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
