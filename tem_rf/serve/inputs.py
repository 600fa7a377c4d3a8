"""Which micrographs a ``segment`` run reads: files, folders and glob patterns as users give them
(names with commas rejoined when a comma-separated flag split them), sorted and without
duplicates; the outputs of earlier runs (``<stem>_mask.tif``, the run's ``segmentation.json`` and
what it lists) never taken for micrographs.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from tem_rf.core.errors import InputError
from tem_rf.serve.particle_reports import HISTOGRAM_FILE, POOLED_PARTICLES_FILE, SUMMARY_CSV_FILE
from tem_rf.serve.segment_outputs import OUTPUT_SUFFIXES, SUMMARY_FILE, output_stem

logger = logging.getLogger("tem_rf.serve.segment")  # what segment says, under one name

_OUTPUT_NAME = re.compile(
    "^(?P<stem>.+)(?:" + "|".join(map(re.escape, OUTPUT_SUFFIXES)) + ")$", re.IGNORECASE
)


def rejoin_commas(items: Iterable[str]) -> list[str]:
    """``--images`` split at its commas, with the pieces of a name that holds commas joined again
    (``a,b.tif`` given as ``a`` and ``b.tif``): a piece that names nothing is joined with the
    next pieces while the joined name exists (the longest that does)."""
    items = [str(item) for item in items]
    joined: list[str] = []
    start = 0
    while start < len(items):
        end = start + 1
        if not _names_something(items[start]):
            for stop in range(len(items), start + 1, -1):
                if _names_something(",".join(items[start:stop])):
                    end = stop
                    break
        joined.append(",".join(items[start:end]))
        start = end
    return joined


def _names_something(pattern: str) -> bool:
    path = Path(pattern).expanduser()
    return path.exists() or path.is_symlink() or (glob.has_magic(pattern) and bool(glob.glob(str(path))))


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files named by paths, glob patterns or folders (their micrographs), sorted, unique.

    Everything a glob or folder matches by name is kept, also what cannot be read (a folder
    named ``x.tif``, a named pipe, a broken symbolic link or a loop of links): reading it then
    fails naming it, instead of it being skipped unnoticed. A name holding commas, split by the
    comma-separated flag, is joined again (`rejoin_commas`). Outputs of an earlier segmentation
    (`segmentation_output_of`) are left out with a warning when a glob or folder matched them and
    refused when named one by one. Raises `tem_rf.data.reading.InputError` for a pattern that
    matches nothing, and when two inputs would write the same output names (same file stem in
    different folders).
    """
    from tem_rf.data.source_files import glob_entries, is_glob, is_input_name

    patterns = rejoin_commas(patterns)
    if not patterns or any(not str(pattern).strip() for pattern in patterns):
        # An empty --images would otherwise mean the current folder (Path("") is ".").
        raise InputError(None, "--images names no micrograph (an empty name): give files, folders or quoted globs")
    found: list[Path] = []
    listings: dict[Path, dict[str, Path]] = {}  # folder -> its files by lower-case name, read once
    for pattern in patterns:
        # Folders and globs give the files named like micrographs (`is_input_name`, the rule of
        # every command); a folder named x.tif is kept, to be reported as a mistake.
        if is_glob(pattern):
            matches = [p for p in glob_entries(pattern) if is_input_name(p)]
        elif Path(pattern).expanduser().is_dir():
            folder = Path(pattern).expanduser()
            matches = sorted(p for p in folder.iterdir() if is_input_name(p))
        else:
            path = Path(pattern).expanduser()
            if not path.exists() and not path.is_symlink():  # a broken link is read's to report
                raise InputError(path, "no such file or folder")
            source = segmentation_output_of(path, listings)
            if source is not None:
                raise InputError(
                    path, f"is an output of an earlier segmentation (of {source}), not a micrograph"
                )
            matches = [path]
        outputs = [p for p in matches if segmentation_output_of(p, listings) is not None]
        if outputs:
            matches = [p for p in matches if p not in outputs]
            logger.warning(
                "%s: left out %d file(s) written by an earlier segmentation (%s)",
                pattern, len(outputs), ", ".join(p.name for p in outputs),
            )
        if not matches:
            only = " (only outputs of an earlier segmentation)" if outputs else ""
            raise InputError(pattern, f"matches no micrograph files{only}")
        found.extend(matches)
    unique = list(dict.fromkeys(found))
    stems: dict[str, Path] = {}
    for path in unique:
        other = stems.setdefault(output_stem(path), path)
        if other != path:
            raise InputError(
                path, f"has the same name stem as {other}; their outputs would overwrite each other"
            )
    return unique


def segmentation_output_of(
    path: str | os.PathLike, listings: dict[Path, dict[str, Path]] | None = None
) -> Path | None:
    """The micrograph ``path`` was written for, when it is an output of `segment_file`.

    That is ``<stem>_mask.tif``, ``<stem>_prob.tif``, ``<stem>_overlay.png``,
    ``<stem>_labels.tif`` or ``<stem>_particles.csv`` with the micrograph ``<stem>.<ext>`` beside
    it, or any file a ``segmentation.json`` in its folder lists as an output; None otherwise (a
    micrograph that happens to be called ``x_mask.tif``). A run's pooled ``particle_sizes.png``
    (or ``particles.csv``) listed in the ``segmentation.json`` beside it gives that summary file.
    ``listings`` caches folder listings across calls (one listing per folder for a whole glob).
    """
    from tem_rf.data.reading import MICROGRAPH_SUFFIXES

    path = Path(path)
    if path.name.lower() in (HISTOGRAM_FILE, POOLED_PARTICLES_FILE, SUMMARY_CSV_FILE):
        return _pooled_in_summary(path)
    match = _OUTPUT_NAME.match(path.name)
    if match is None:
        return None
    folder = path.parent
    listings = {} if listings is None else listings
    if folder not in listings:
        try:
            listings[folder] = {p.name.lower(): p for p in folder.iterdir()}
        except OSError:
            listings[folder] = {}
    for suffix in MICROGRAPH_SUFFIXES:
        source = listings[folder].get(f"{match['stem']}{suffix}".lower())
        if source is not None and source.name != path.name:
            return source
    return _listed_in_summary(path)


def _listed_in_summary(path: Path) -> Path | None:
    """The input whose output ``path`` is, per the ``segmentation.json`` beside it."""
    summary_path = path.parent / "segmentation.json"
    try:
        summary = json.loads(summary_path.read_text())
        target = path.resolve()
        for result in summary.get("results", []):
            for key in ("mask", "probability", "overlay", "labels", "particles_csv", "histogram"):
                written = result.get(key)
                if written and Path(written).name == path.name and (
                    not Path(written).is_absolute() or Path(written).resolve() == target
                ):
                    return Path(result.get("input", "?"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # no summary, or not one of ours
    return None


def _pooled_in_summary(path: Path) -> Path | None:
    """The ``segmentation.json`` beside ``path`` when it lists ``path`` as one of its run's own
    outputs (the pooled particles and histogram, summary.csv)."""
    summary_path = path.parent / SUMMARY_FILE
    try:
        summary = json.loads(summary_path.read_text())
        written_files = [*(summary.get("pooled") or {}).values(), summary.get("summary_csv")]
        if any(written and Path(written).name == path.name for written in written_files
               if isinstance(written, str)):
            return summary_path
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return None


__all__ = ["expand_inputs", "rejoin_commas", "segmentation_output_of"]
