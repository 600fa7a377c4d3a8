"""The micrograph and mask files a dataset is built from: the files, folders and glob patterns a
user gives, each micrograph matched with its mask by stem (``<stem>_mask.png`` and the other
usual suffixes), with a note naming what was looked for when a mask is missing.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path


from tem_rf.core.errors import InputError
from tem_rf.data.reading import MASK_SUFFIXES, MICROGRAPH_SUFFIXES

logger = logging.getLogger("tem_rf.data.dataset")  # what dataset building says, under one name

# A mask matches image "<stem>.<ext>" when its own stem is "<stem>" or "<stem><suffix>"
# (case-insensitive), with any mask extension.
DEFAULT_LABEL_SUFFIXES = (
    "_label", "_labels", "_mask", "_masks", "_seg", "_segmentation", "_gt", "_annotation",
    "-label", "-labels", "-mask", "-masks", ".label", ".mask",
)


def is_input_name(path: Path, suffixes: Sequence[str] = MICROGRAPH_SUFFIXES) -> bool:
    """Whether a file a folder or glob gives is taken as input: its extension is one of
    ``suffixes`` (any case) and it is not hidden (macOS's ``._x.tif`` companions, tem_rf's own
    ``.x.tif.tmp...`` temporaries). A file named on its own is always taken. The one rule of
    ``make_tfrecords``, ``segment``, ``measure`` and the demo."""
    return not path.name.startswith(".") and path.suffix.lower() in suffixes


def glob_entries(pattern: str) -> list[Path]:
    """What a glob pattern matches, sorted: ``~`` expanded, ``**`` any depth of folders."""
    return sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))


def is_glob(text: str) -> bool:
    """Whether ``text`` is a glob pattern (holds ``*``, ``?`` or ``[``) rather than a path."""
    return glob.has_magic(text)


def _unreadable_entry(path: Path) -> str | None:
    """Why a directory entry named like a micrograph cannot be read as one, or None if it can."""
    try:
        mode = path.stat().st_mode  # follows symlinks: a loop or a dangling link raises here
    except OSError as error:
        if path.is_symlink():
            return f"is a broken symbolic link ({error.strerror or error})"
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a micrograph file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a micrograph file"
    return "is not a regular file (device or socket)"


def list_input_files(
    entries: Sequence[Path], suffixes: Sequence[str], what: str = "micrograph"
) -> list[Path]:
    """The entries taken as input (`is_input_name`), sorted.

    An entry named like an input that is not a readable regular file (a folder called x.tif, a
    FIFO, a broken or looping symlink) is an error naming it, never skipped without a word: the
    user meant it as input.
    """
    picked = []
    for path in sorted(entries):
        if not is_input_name(path, suffixes):
            continue
        problem = _unreadable_entry(path)
        if problem is not None:
            raise InputError(path, f"{problem}; move it out of the {what} folder or rename it")
        picked.append(path)
    return picked


def find_image_files(images: str | os.PathLike) -> list[Path]:
    """Micrograph files from a folder (not recursive), a glob pattern, or a single file, sorted."""
    text = str(images)
    if not text.strip():  # Path("") is the current folder: never read it for an empty flag
        raise InputError(None, "no micrographs named (an empty path): give a folder, a quoted glob or a file")
    if is_glob(text):
        entries = glob_entries(text)
        where = text
    else:
        folder = Path(text).expanduser()
        if not folder.exists():
            raise InputError(folder, "folder does not exist")
        entries = [folder] if not folder.is_dir() else list(folder.iterdir())
        where = folder
    paths = list_input_files(entries, MICROGRAPH_SUFFIXES)
    if not paths:
        raise InputError(where, f"no micrographs found (looked for {', '.join(MICROGRAPH_SUFFIXES)})")
    return paths


def _mask_stem_base(mask_stem: str, suffixes: Sequence[str]) -> list[str]:
    """Image stems (lower case) that a mask stem may belong to."""
    stem = mask_stem.lower()
    bases = [stem]
    bases += [stem[: -len(s)] for s in suffixes if stem.endswith(s.lower()) and len(stem) > len(s)]
    return bases


_UNREAD_MASK_SUFFIXES = (".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _mask_search_note(image: Path, labels_dir: Path, suffixes: Sequence[str]) -> str:
    """What was looked for, and a file that would have matched but for its format."""
    note = f"looked for {image.stem}.png/.tif or {image.stem}_mask, {image.stem}_label, ..."
    near = sorted(
        p.name for p in labels_dir.iterdir()
        if p.suffix.lower() in _UNREAD_MASK_SUFFIXES and image.stem.lower() in _mask_stem_base(p.stem, suffixes)
    )
    if near:
        note += f"; found {', '.join(near)}, but masks are read from PNG or TIFF only"
        if any(name.lower().endswith((".jpg", ".jpeg")) for name in near):
            note += " (JPEG's lossy compression changes label values at particle edges)"
        note += ": re-export the mask as PNG"
    return note


def match_masks(
    image_paths: Sequence[str | os.PathLike],
    labels_dir: str | os.PathLike,
    suffixes: Sequence[str] = DEFAULT_LABEL_SUFFIXES,
) -> list[tuple[Path, Path]]:
    """Pairs each image with its mask in ``labels_dir``.

    Rule: the mask of ``<stem>.<ext>`` is the file in ``labels_dir`` whose stem is ``<stem>`` or
    ``<stem>`` plus one of ``suffixes`` (``_label``, ``_mask``, ...; case-insensitive), with
    extension .tif/.tiff/.png. Exactly one must match. When images and masks share one folder,
    files that are another image's mask are not treated as images.
    """
    labels_dir = Path(labels_dir)
    if not labels_dir.exists():
        raise InputError(labels_dir, "labels folder does not exist")
    if not labels_dir.is_dir():
        raise InputError(labels_dir, "is not a folder (--labels must be the folder of masks)")
    masks = list_input_files(list(labels_dir.iterdir()), MASK_SUFFIXES, "labels")
    if not masks:
        raise InputError(labels_dir, f"no masks found (looked for {', '.join(MASK_SUFFIXES)})")
    images = [Path(p) for p in image_paths]
    by_base: dict[str, list[Path]] = {}
    for mask in masks:
        for base in _mask_stem_base(mask.stem, suffixes):
            by_base.setdefault(base, []).append(mask)

    image_set = {p.resolve() for p in images}
    # A file in the image list that is the suffixed mask of another image is a mask, not an image.
    stems = {p.stem.lower() for p in images}
    images = [
        p for p in images
        if not any(base != p.stem.lower() and base in stems for base in _mask_stem_base(p.stem, suffixes))
    ]
    seen_names: dict[str, Path] = {}
    seen_stems: dict[str, Path] = {}
    pairs = []
    used: dict[Path, Path] = {}
    for image in images:
        if image.name in seen_names:
            raise InputError(image, f"has the same file name as {seen_names[image.name]}; rename one")
        seen_names[image.name] = image
        # One stem is one micrograph: a.tif and a.png would share a mask and could land in two
        # splits, so the test set would hold an image the network was trained on.
        earlier = seen_stems.get(image.stem.lower())
        if earlier is not None:
            raise InputError(
                image,
                f"has the same stem as {earlier} (one micrograph, one sample: both would take the "
                "same mask and could land in different splits); keep one, or rename one and give it "
                "its own mask",
            )
        seen_stems[image.stem.lower()] = image
        candidates = [m for m in by_base.get(image.stem.lower(), []) if m.resolve() != image.resolve()]
        candidates = [m for m in candidates if m.resolve() not in image_set or m.stem.lower() != image.stem.lower()]
        if not candidates:
            raise InputError(image, f"has no mask in {labels_dir} ({_mask_search_note(image, labels_dir, suffixes)})")
        if len(candidates) > 1:
            names = ", ".join(m.name for m in candidates)
            raise InputError(image, f"several masks match in {labels_dir}: {names}; keep one")
        if candidates[0] in used:
            raise InputError(
                candidates[0],
                f"is the mask of both {used[candidates[0]].name} and {image.name}; one mask belongs "
                "to one micrograph",
            )
        pairs.append((image, candidates[0]))
        used[candidates[0]] = image
    unused = [m for m in masks if m not in used and m.resolve() not in image_set]
    if unused:
        logger.warning(
            "%d mask(s) in %s match no image and are ignored: %s",
            len(unused), labels_dir, ", ".join(m.name for m in unused[:5]) + (" ..." if len(unused) > 5 else ""),
        )
    return pairs


__all__ = [
    "DEFAULT_LABEL_SUFFIXES", "find_image_files", "glob_entries", "is_glob", "is_input_name", "list_input_files",
    "match_masks",
]
