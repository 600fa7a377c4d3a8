"""Which micrographs go to which split: fractions by image (seeded), a published split's stem
lists (``--split_files``), a validation split carved from a published train list.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tem_rf.core.errors import InputError
from tem_rf.core.parsing import parse_list
from tem_rf.data.reading import MASK_SUFFIXES, MICROGRAPH_SUFFIXES

logger = logging.getLogger("tem_rf.data.dataset")  # what dataset building says, under one name

SPLITS = ("train", "val", "test")


DEFAULT_SPLIT_FRACTIONS = (0.7, 0.1, 0.2)


# --split_files without a val list: this share of the train list's images becomes validation.
DEFAULT_VAL_FRACTION = 0.1


def parse_split_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.7,0.1,0.2"`` (or ``"70,10,20"``) -> (0.7, 0.1, 0.2) for (train, val, test)."""
    values = parse_list(text, "split", float) if isinstance(text, str) else [float(v) for v in text]
    # Counted here rather than by parse_list: the message names the three splits, for both inputs.
    if len(values) != 3:
        raise ValueError(f"--split needs three fractions (train,val,test), got {text!r}")
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise ValueError(f"--split fractions must be non-negative, got {text!r}")
    total = sum(values)
    if math.isclose(total, 100.0, rel_tol=1e-6):
        values = [v / 100.0 for v in values]
    elif not math.isclose(total, 1.0, rel_tol=1e-6):
        raise ValueError(f"--split fractions must sum to 1 (or 100), got {text!r} (sum {total:g})")
    if values[0] == 0:
        raise ValueError("--split: the training fraction must be above 0")
    return values[0], values[1], values[2]


def split_sources(
    names: Sequence[str], fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS, seed: int = 0
) -> dict[str, list[str]]:
    """Assigns whole source images to train/val/test, so no image straddles two splits.

    Image counts follow ``fractions`` (largest remainder), every split with a fraction above 0
    gets at least one image, and which image goes where is a permutation seeded by ``seed``
    (independent of the order ``names`` come in). Raises ValueError when there are fewer images
    than non-empty splits.
    """
    names = sorted(names)
    if len(set(names)) != len(names):
        raise ValueError("source names must be unique")
    wanted = [split for split, f in zip(SPLITS, fractions) if f > 0]
    if len(names) < len(wanted):
        raise ValueError(
            f"fewer source images ({len(names)}) than splits with a fraction above 0 "
            f"({len(wanted)}: {', '.join(wanted)}); add images or set a fraction to 0 in --split"
        )
    total = sum(fractions)
    exact = [len(names) * f / total for f in fractions]
    counts = [math.floor(e) for e in exact]
    for i in sorted(range(3), key=lambda i: (counts[i] - exact[i], i))[: len(names) - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        while f > 0 and counts[i] == 0:
            # Take one image from the split with the most images to give every split one.
            donor = max(range(3), key=lambda j: counts[j])
            counts[donor] -= 1
            counts[i] += 1
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    result, start = {}, 0
    for split, count in zip(SPLITS, counts):
        result[split] = sorted(shuffled[start : start + count])
        start += count
    return result


SPLIT_FILE_COLUMNS = ("filename", "file", "image", "name", "stem", "id")


def check_val_fraction(val_fraction: float | None, split_files: dict[str, Path] | None) -> float:
    """``val_fraction`` resolved: the default with train/test lists only, 0 when there is a val
    list or none at all; ValueError for a value outside [0, 1) or one that cannot apply."""
    if val_fraction is None:
        return DEFAULT_VAL_FRACTION if split_files is not None and "val" not in split_files else 0.0
    if not (math.isfinite(val_fraction) and 0.0 <= val_fraction < 1.0):
        raise ValueError(f"--val_fraction must lie in [0, 1), got {val_fraction}")
    if split_files is None:
        raise ValueError("--val_fraction carves validation out of a --split_files train list; with --split, "
                         "give the validation fraction there")
    if "val" in split_files and val_fraction > 0:
        raise ValueError("--val_fraction with a val list in --split_files: give one or the other")
    return float(val_fraction)


def carve_validation(train: Sequence[str], fraction: float, seed: int,
                     train_list: str | os.PathLike | None = None) -> tuple[list[str], list[str]]:
    """``(train, val)``: ``round(fraction * n)`` of the ``n`` train images (at least one) become
    validation, picked by a permutation seeded by ``seed`` of the sorted names (the same images
    whatever order they come in). `InputError` naming ``train_list`` when fewer than two images
    are left to share."""
    names = sorted(train)
    if len(names) < 2:
        raise InputError(train_list, f"holds {len(names)} usable image(s): too few to carve a validation split "
                                     "from; add a val list to --split_files or give --val_fraction=0")
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:count])
    return [n for n in names if n not in set(val)], val


def parse_split_files(text: str | dict[str, str | os.PathLike]) -> dict[str, Path]:
    """``"train=a.csv,val=b.txt,test=c.csv"`` -> {split: path}; train is required, val/test optional."""
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in parse_list(text, "split_files", str):
            split, sep, path = part.partition("=")
            if not sep or not path.strip():
                raise ValueError(f"--split_files entries are SPLIT=PATH, got {part!r}")
            items.append((split.strip(), path.strip()))
    files: dict[str, Path] = {}
    for split, path in items:
        if split not in SPLITS:
            raise ValueError(f"--split_files: unknown split {split!r} (use {', '.join(SPLITS)})")
        if split in files:
            raise ValueError(f"--split_files names split {split!r} twice")
        files[split] = Path(path)
    if "train" not in files:
        raise ValueError("--split_files needs a train list (train=PATH)")
    return files


def read_split_file(path: str | os.PathLike) -> list[str]:
    """The image stems a split file lists, in file order, without repeats.

    One entry per line (text), or a CSV whose header has a ``filename``/``file``/``image``/
    ``name``/``stem``/``id`` column (else the first column), as public datasets ship them (EMPS's
    train.csv). Entries may carry a folder and an extension: ``images/f78844f8ce.png`` is stem
    ``f78844f8ce``. Blank lines and lines starting with ``#`` are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split file does not exist" if not path.exists() else "is not a file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot be read as text: {error}") from None
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    column = None
    if rows and ("," in rows[0] or "\t" in rows[0]):
        rows = list(csv.reader(rows, dialect="excel-tab" if "\t" in rows[0] else "excel"))
        header = [cell.strip().lower() for cell in rows[0]]
        column = next((header.index(name) for name in SPLIT_FILE_COLUMNS if name in header), None)
        if column is not None:
            rows = rows[1:]
        entries = [row[column or 0].strip() for row in rows if row and row[column or 0].strip()]
    else:
        entries = [row.strip() for row in rows]
        if entries and entries[0].lower() in SPLIT_FILE_COLUMNS:
            entries = entries[1:]  # a one-column CSV's header
    stems = []
    for entry in entries:
        stem = Path(entry.replace("\\", "/")).name
        suffix = Path(stem).suffix.lower()
        if suffix in MICROGRAPH_SUFFIXES or suffix in MASK_SUFFIXES:
            stem = Path(stem).stem
        if stem not in stems:
            stems.append(stem)
    if not stems:
        raise InputError(path, "split file lists no images")
    return stems


def assign_from_split_files(names: Sequence[str], files: dict[str, Path]) -> tuple[dict[str, list[str]], list[str]]:
    """Assigns image file names to the splits their stems are listed in.

    Returns the assignment and the names listed in no file (left out). A stem listed in two
    files, or listed but not among ``names``, is refused naming it and the file(s).
    """
    by_stem = {Path(name).stem: name for name in names}
    by_stem_lower = {stem.lower(): name for stem, name in by_stem.items()}
    listed_in: dict[str, Path] = {}
    assignment: dict[str, list[str]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        if split not in files:
            continue
        missing = []
        for stem in read_split_file(files[split]):
            name = by_stem.get(stem) or by_stem_lower.get(stem.lower())
            if name is None:
                missing.append(stem)
                continue
            if name in listed_in:
                raise InputError(
                    files[split],
                    f"lists {stem!r}, which {listed_in[name]} lists too: an image belongs to one split",
                )
            listed_in[name] = files[split]
            assignment[split].append(name)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise InputError(
                files[split],
                f"lists {len(missing)} image(s) not found among the micrographs: {shown}",
            )
    left_out = sorted(name for name in names if name not in listed_in)
    return {split: sorted(names_) for split, names_ in assignment.items()}, left_out


__all__ = ["DEFAULT_SPLIT_FRACTIONS", "DEFAULT_VAL_FRACTION", "SPLITS", "SPLIT_FILE_COLUMNS", "assign_from_split_files", "carve_validation", "check_val_fraction", "parse_split_files", "parse_split_fractions", "read_split_file", "split_sources"]
