"""Building a dataset directory from micrograph/mask pairs.

Which files (`tem_rf.data.source_files`), which split each goes to (`tem_rf.data.splits`) and
reading the ``dataset.json`` back (`tem_rf.data.dataset_info`) have their own modules; their
names are also importable from here, where earlier versions had them, until tem_rf 0.3.0
(`tem_rf.core.cli.SHIMS_REMOVED_IN`).

Layout (docs/design.md)::

    DATA_DIR/dataset.json
    DATA_DIR/train/train-00000-of-00004.tfrecord ...
    DATA_DIR/val/...  DATA_DIR/test/...

The directory is written under a temporary name and renamed when complete, so a failure never
leaves a half-written dataset, and an existing dataset is only replaced once the new one is whole.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tem_rf
from tem_rf.data.preprocess import (
    DEFAULT_MIN_PARTICLE_PIXELS,
    DEFAULT_PATCH_SIZE,
    DEFAULT_XRAY_THRESHOLD,
    EDGE_MODES,
    count_kept_patches,
    preprocess_with_stats,
    tile,
)
from tem_rf.core.errors import InputError
from tem_rf.data.reading import read_mask_values, read_micrograph
from tem_rf.data.dataset_info import DATASET_JSON, SCHEMA_VERSION, read_dataset_info, split_size
from tem_rf.data.instance_masks import instance_labels_from_values, patch_instance_ids
from tem_rf.data.particle_sizes import mask_particle_diameters, summarise_diameters
from tem_rf.data.source_files import DEFAULT_LABEL_SUFFIXES, find_image_files, list_input_files, match_masks
from tem_rf.data.splits import (
    DEFAULT_SPLIT_FRACTIONS, DEFAULT_VAL_FRACTION, SPLIT_FILE_COLUMNS, SPLITS, assign_from_split_files, carve_validation,
    check_val_fraction, parse_split_files, parse_split_fractions, read_split_file, split_sources,
)
from tem_rf.core.files import atomic_directory, os_error_text, write_json
from tem_rf.core.outputs import blocking_file
from tem_rf.core.quiet import quiet_logger
from tem_rf.core.locks import output_lock, remove_stale_temporaries
from tem_rf.core.manifest import check_only_owned
from tem_rf.core.progress import progress_bar
from tem_rf.core.units import require_pixel_size

logger = logging.getLogger(__name__)

XRAY_WARN_FRACTION = 0.01  # x-ray removal replacing more of a micrograph than this is warned about
DEFAULT_NUM_SHARDS = 4
# Two pixel sizes closer than this (relative) are the same calibration.
_PIXEL_SIZE_TOLERANCE = 0.01


# --------------------------------------------------------------------------------------------
# Finding files


















# --------------------------------------------------------------------------------------------
# Splitting


















# --------------------------------------------------------------------------------------------
# Building


@dataclass
class _Source:
    image: Path
    mask: Path
    mask_rule: str
    shape: tuple[int, int]
    pixel_size_nm: float | None
    pixel_size_from: str | None
    patches: int
    patches_total: int
    digest: str = ""
    split: str | None = None
    xray_pixels_replaced: int = 0
    notes: list[str] = field(default_factory=list)
    particle_diameters_px: np.ndarray | None = None  # whole particles of the mask (`particle_sizes`)
    instances_from: str | None = None  # how its particle ids were read (`instance_masks`)


def dataset_fingerprint(info: dict) -> str:
    """One hash of what a dataset is: each split's source images and its shards (name, count,
    size, SHA-256). A rebuild with another split or other shard contents has another one; a run
    records it and refuses to resume on another (`tem_rf.train`)."""
    content = {split: {"sources": info["splits"][split].get("sources", []),
                       "shards": [[s["file"], s["count"], s.get("bytes"), s.get("sha256")]
                                  for s in info["splits"][split].get("shards", [])]}
               for split in SPLITS}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def dataset_files(info: dict) -> list[str]:
    """The files a dataset consists of, relative to its folder: dataset.json and every shard."""
    return [DATASET_JSON] + [
        shard["file"] for split in SPLITS for shard in info.get("splits", {}).get(split, {}).get("shards", [])
    ]


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuses an ``out_dir`` that `build_dataset` may not write: a file, a folder of other files,
    a dataset without ``overwrite``, and a dataset folder holding anything its dataset.json does
    not list (`check_only_owned`: replacing the dataset deletes only what tem_rf wrote)."""
    if not out_dir.exists():
        existing = blocking_file(out_dir)
        if existing is not None:
            raise InputError(existing, f"is a file, so {out_dir} cannot be created as a folder")
        return
    if out_dir.is_symlink() or not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder" if not out_dir.is_dir() else "is a symbolic link")
    if (out_dir / DATASET_JSON).exists():
        if not overwrite:
            raise InputError(out_dir, "already holds a dataset (dataset.json); pass --overwrite to replace it")
        try:
            info = json.loads((out_dir / DATASET_JSON).read_text())
            files = dataset_files(info)
        except (OSError, ValueError, TypeError, AttributeError, KeyError):
            raise InputError(
                out_dir, f"holds a {DATASET_JSON} that cannot be read, so what tem_rf wrote there is not "
                "known; nothing is replaced: remove the folder yourself or choose another one"
            ) from None
        check_only_owned(out_dir, files, SPLITS, record=DATASET_JSON)
        return
    if any(out_dir.iterdir()):
        # Never replace a folder we did not write: it may hold the user's other files.
        raise InputError(out_dir, "exists, is not empty and holds no dataset; choose a new folder")


def _resolve_pixel_size(sources: list[_Source], flag_pixel_size_nm: float | None) -> float | None:
    for source in sources:
        if source.pixel_size_nm is not None:
            source.pixel_size_from = "metadata"
            if flag_pixel_size_nm is not None and not math.isclose(
                source.pixel_size_nm, flag_pixel_size_nm, rel_tol=_PIXEL_SIZE_TOLERANCE
            ):
                logger.warning(
                    "%s: file metadata says %.6g nm/pixel, --pixel_size_nm says %.6g; using the "
                    "file's value",
                    source.image, source.pixel_size_nm, flag_pixel_size_nm,
                )
        elif flag_pixel_size_nm is not None:
            source.pixel_size_nm = flag_pixel_size_nm
            source.pixel_size_from = "flag"
    known = [s for s in sources if s.pixel_size_nm is not None]
    if not known:
        logger.warning(
            "pixel size unknown (no file metadata, no --pixel_size_nm): receptive fields will be "
            "reported in pixels only"
        )
        return None
    unknown = [s for s in sources if s.pixel_size_nm is None]
    if unknown:
        raise InputError(
            unknown[0].image,
            f"has no pixel size in its metadata while {known[0].image.name} has "
            f"{known[0].pixel_size_nm:.6g} nm; pass --pixel_size_nm for the images without one",
        )
    reference = known[0]
    for source in known[1:]:
        if not math.isclose(source.pixel_size_nm, reference.pixel_size_nm, rel_tol=_PIXEL_SIZE_TOLERANCE):
            raise InputError(
                source.image,
                f"pixel size {source.pixel_size_nm:.6g} nm differs from {reference.image.name}'s "
                f"{reference.pixel_size_nm:.6g} nm; one dataset needs one pixel size (resample, or "
                "make separate datasets)",
            )
    return reference.pixel_size_nm


def _read_options(frame: int | None, signal: str | None) -> dict[str, Any]:
    """`read_micrograph`'s frame/signal keywords, only those given (plain files need neither)."""
    return {k: v for k, v in (("frame", frame), ("signal", signal)) if v is not None}


def _check_pair(
    image: Path, mask: Path, patch_size: int, min_particle_pixels: int, edge: str, read_options: dict
) -> _Source:
    micrograph = read_micrograph(image, **read_options)
    values, label, rule = read_mask_values(mask)
    if micrograph.shape != label.shape:
        raise InputError(
            mask,
            f"mask is {label.shape[0]}x{label.shape[1]} pixels but its image {image.name} is "
            f"{micrograph.shape[0]}x{micrograph.shape[1]}",
        )
    if min(micrograph.shape) < patch_size:
        raise InputError(
            image,
            f"image is {micrograph.shape[0]}x{micrograph.shape[1]} pixels, smaller than the patch "
            f"size {patch_size}; use a smaller --patch_size or leave this image out",
        )
    if float(np.ptp(micrograph.data)) == 0.0:
        raise InputError(image, "image is constant (every pixel the same value), nothing to learn from")
    kept, total = count_kept_patches(label, patch_size, min_particle_pixels, edge)
    digest = hashlib.sha256(np.ascontiguousarray(micrograph.data).tobytes()).hexdigest()
    diameters = mask_particle_diameters(values, label, instance_ids=rule.startswith("binarised instance-id"))
    return _Source(image, mask, rule, micrograph.shape, micrograph.pixel_size_nm, None, kept, total, digest,
                   particle_diameters_px=diameters)


def _check_distinct_images(sources: Sequence[_Source]) -> None:
    """One micrograph is one sample: the same pixels under two names would leak across splits."""
    seen: dict[str, Path] = {}
    for source in sources:
        if source.digest in seen:
            raise InputError(
                source.image,
                f"holds the same pixels as {seen[source.digest]} (a copy under another name); the "
                "two could land in different splits, so keep one",
            )
        seen[source.digest] = source.image


def build_dataset(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out_dir: str | os.PathLike,
    *,
    pixel_size_nm: float | None = None,
    patch_size: int = DEFAULT_PATCH_SIZE,
    min_particle_pixels: int = DEFAULT_MIN_PARTICLE_PIXELS,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
    num_shards: int = DEFAULT_NUM_SHARDS,
    xray_threshold: float | None = DEFAULT_XRAY_THRESHOLD,
    edge: str = "shift",
    split_files: str | dict[str, str | os.PathLike] | None = None,
    val_fraction: float | None = None,
    frame: int | None = None,
    signal: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Preprocesses, tiles, splits and writes (image, mask) pairs as a dataset directory.

    Pass 1 reads every image and mask and checks them (shapes, mask values, pixel sizes) before
    anything is written; pass 2 preprocesses each image, cuts patches and writes the shards into
    a temporary directory that is renamed onto ``out_dir`` at the end. ``num_shards`` is the most
    shards per split. ``split_files`` ({split: list file}, or "train=PATH,val=PATH,test=PATH")
    keeps a published split instead of ``split_fractions`` (see `read_split_file`); images in no
    list are left out. Without a val list, ``val_fraction`` of the train list's usable images
    (default `DEFAULT_VAL_FRACTION`, at least one; 0: none) become the validation split, chosen by
    ``seed`` (`carve_validation`): a published split of train and test still trains, since
    training picks its best epoch on validation. ``frame``/``signal`` pick one frame of a stack / one signal of a
    multi-signal file in every micrograph (`read_micrograph`). Returns the dataset.json content.
    """
    out_dir = Path(out_dir)
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    if min_particle_pixels < 0:
        raise ValueError(f"min_particle_pixels must be >= 0, got {min_particle_pixels}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if edge not in EDGE_MODES:
        raise ValueError(f"edge must be one of {EDGE_MODES}, got {edge!r}")
    if pixel_size_nm is not None:
        pixel_size_nm = require_pixel_size(pixel_size_nm, "pixel_size_nm")
    if min_particle_pixels > patch_size * patch_size:
        raise ValueError(
            f"min_particle_pixels {min_particle_pixels} is more than a {patch_size}x{patch_size} "
            f"patch holds ({patch_size * patch_size} pixels): no patch could be kept"
        )
    if xray_threshold is not None and not math.isfinite(xray_threshold):
        raise ValueError(f"xray_threshold must be a number (<= 0 or None disables), got {xray_threshold}")
    fractions = parse_split_fractions(split_fractions)
    if split_files is not None:
        split_files = parse_split_files(split_files)
        for path in split_files.values():
            read_split_file(path)  # a missing or empty list fails before any image is read
    val_fraction = check_val_fraction(val_fraction, split_files)
    if frame is not None and frame < 0:
        raise ValueError(f"frame must be >= 0 (frames count from 0), got {frame}")
    _check_out_dir(out_dir, overwrite)
    if not pairs:
        raise ValueError("no (image, mask) pairs given")

    read_options = _read_options(frame, signal)
    sources = [
        _check_pair(Path(image), Path(mask), patch_size, min_particle_pixels, edge, read_options)
        for image, mask in progress_bar(pairs, desc="checking", unit="image", enabled=progress)
    ]
    _check_distinct_images(sources)
    dataset_pixel_size = _resolve_pixel_size(sources, pixel_size_nm)
    rules = collections.Counter(s.mask_rule.split(" (")[0] for s in sources)
    logger.info("masks: %s; non-zero = particle", ", ".join(f"{rule}: {n}" for rule, n in rules.items()))

    not_listed: list[str] = []
    if split_files is not None:
        listed, not_listed = assign_from_split_files([s.image.name for s in sources], split_files)
        for source in sources:
            if source.image.name in not_listed:
                source.notes.append("listed in no --split_files list")
        if not_listed:
            logger.warning(
                "%d image(s) listed in no --split_files list are left out: %s", len(not_listed),
                ", ".join(not_listed[:5]) + (" ..." if len(not_listed) > 5 else ""),
            )
    usable = [s for s in sources if s.patches > 0 and s.image.name not in not_listed]
    for source in sources:
        if source.patches == 0:
            source.notes.append(f"no patch with >= {min_particle_pixels} particle pixels")
            logger.warning(
                "%s: no %dx%d patch has >= %d particle pixels; image left out",
                source.image, patch_size, patch_size, min_particle_pixels,
            )
    carved = None
    if split_files is not None:
        usable_names = {s.image.name for s in usable}
        assignment = {split: [n for n in listed[split] if n in usable_names] for split in SPLITS}
        if not assignment["train"]:
            raise InputError(split_files["train"], "no listed image is usable for training")
        if "val" not in split_files and val_fraction > 0:
            assignment["train"], assignment["val"] = carve_validation(assignment["train"], val_fraction, seed,
                                                                       split_files["train"])
            carved = {"fraction": val_fraction, "seed": seed, "images": len(assignment["val"])}
            logger.info("validation: %d of the train list's %d usable images (--val_fraction=%g, --seed=%d)",
                        len(assignment["val"]), len(assignment["val"]) + len(assignment["train"]), val_fraction, seed)
    else:
        try:
            assignment = split_sources([s.image.name for s in usable], fractions, seed)
        except ValueError as error:
            raise InputError(Path(pairs[0][0]).parent, str(error)) from None
    by_name = {s.image.name: s for s in usable}
    for split, names in assignment.items():
        for name in names:
            by_name[name].split = split

    try:
        info = _write_dataset(
            out_dir, sources, by_name, assignment, patch_size, min_particle_pixels, edge,
            xray_threshold, num_shards, dataset_pixel_size, fractions, seed, progress,
            read_options, split_files, overwrite, carved,
        )
    except Exception as error:  # not writable, disk full: name the folder, not a temporary file
        if isinstance(error, OSError):
            reason = os_error_text(error)
        elif type(error).__module__.startswith("tensorflow"):  # TFRecordWriter's own I/O errors
            reason = getattr(error, "message", str(error)).rsplit("; ", 1)[-1]
        else:
            raise
        raise InputError(out_dir, f"cannot write the dataset: {reason}") from None
    logger.info(
        "wrote %s: %s patches (train/val/test) from %d images",
        out_dir, "/".join(str(info["counts"][s]) for s in SPLITS), len(usable),
    )
    return info


def build_dataset_from_folders(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split_fractions: str | Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    **options: Any,
) -> dict:
    """`build_dataset` on the micrographs ``images`` (a folder or glob) and their masks in ``labels``.

    ``split_fractions`` may be text such as ``"0.7,0.1,0.2"``; it is checked before any file is
    looked for. ``options`` are `build_dataset`'s keyword arguments. Returns the dataset.json content.
    """
    fractions = parse_split_fractions(split_fractions)
    pairs = match_masks(find_image_files(images), labels)
    return build_dataset(pairs, out_dir, split_fractions=fractions, **options)


def format_dataset_summary(info: dict, out_dir: str | os.PathLike) -> str:
    """A short report of a new dataset: patches and images per split, images left out and why,
    pixel size, and where it was written. The list of source images stays in dataset.json."""
    counts = info["counts"]
    size = info["pixel_size_nm"]
    patch = info["patch_size"]
    used = sum(len(info["splits"][split]["sources"]) for split in SPLITS)
    lines = [
        f"wrote {out_dir} ({patch}x{patch} px patches from {used} of {len(info['sources'])} images; "
        + (f"pixel size {size:g} nm)" if size is not None else "pixel size unknown)")
    ]
    for split in SPLITS:
        images = len(info["splits"][split]["sources"])
        lines.append(f"  {split:<5} {counts[split]:>6} patches from {images} image{'s' * (images != 1)}")
    reasons = collections.Counter(
        source["notes"][-1] if source.get("notes") else "left out"
        for source in info["sources"] if not source.get("split")
    )
    for reason, count in sorted(reasons.items()):
        lines.append(f"  left out: {count} image{'s' * (count != 1)} ({reason})")
    if info.get("split_files"):
        lines.append("  split from " + ", ".join(f"{k}={v}" for k, v in info["split_files"].items()))
    carved = info.get("val_from_train")
    if carved:
        lines.append(f"  val: {carved['images']} image(s) carved from the train list "
                     f"(--val_fraction={carved['fraction']:g}, --seed={carved['seed']})")
    lines.append(f"  source images per split: {Path(out_dir) / DATASET_JSON}")
    return "\n".join(lines)


def _write_dataset(
    out_dir, sources, by_name, assignment, patch_size, min_particle_pixels, edge, xray_threshold,
    num_shards, dataset_pixel_size, fractions, seed, progress, read_options, split_files, overwrite, carved=None,
) -> dict:
    """Pass 2 of `build_dataset`: preprocess, tile and write into a temporary folder, then rename."""
    # TensorFlow is imported only now, so bad input is reported without its start-up time.
    from tem_rf.data.tfrecords import ShardWriter, encode_example

    splits_info = {}
    # One writer at a time (a second make_tfrecords into the same folder is refused), which may
    # clear what a killed one left. The target is checked again just before the new dataset
    # replaces it: a file added meanwhile is not deleted with the old dataset.
    with output_lock(out_dir), atomic_directory(out_dir, lambda target: _check_out_dir(target, overwrite)) as tmp:
        remove_stale_temporaries([out_dir], keep=[tmp])
        ordered = [(split, by_name[name]) for split in SPLITS for name in assignment[split]]
        writers = {split: ShardWriter(tmp, split, num_shards) for split in SPLITS}
        for split, source in progress_bar(ordered, desc="writing", unit="image", enabled=progress):
            with quiet_logger("tem_rf.data.reading"):  # its notes were logged in the checking pass
                micrograph = read_micrograph(source.image, **read_options)
                values, label, rule = read_mask_values(source.mask)
                instances, source.instances_from = instance_labels_from_values(values, rule)
            try:
                result = preprocess_with_stats(micrograph.data, xray_threshold)
            except ValueError as error:
                raise InputError(source.image, str(error)) from None
            source.xray_pixels_replaced = result.xray_pixels_replaced
            replaced = result.xray_pixels_replaced / micrograph.data.size
            if replaced > XRAY_WARN_FRACTION:  # x-ray hits are rare single pixels, not a fifth of an image
                note = (f"x-ray outlier removal replaced {replaced:.1%} of the pixels (threshold {xray_threshold:g}): "
                        "the micrograph's own detail is being smoothed away; raise --xray_threshold")
                source.notes.append(note)
                logger.warning("%s: %s", source.image, note)
            written = 0
            for patch in tile(result.image, label, patch_size, min_particle_pixels, edge, instances):
                writers[split].write(
                    encode_example(
                        patch.image, patch.label, source.image.name, patch.row, patch.col,
                        source.pixel_size_nm, patch_instance_ids(patch.instances, source.mask),
                    )
                )
                written += 1
            if written != source.patches:  # the file changed between the two passes
                raise InputError(source.image, "changed while the dataset was being written")
        for split in SPLITS:
            shards = writers[split].close()
            if not shards:
                (tmp / split).mkdir(exist_ok=True)
            splits_info[split] = {
                "count": sum(s.count for s in shards),
                "shards": [vars(s) for s in shards],
                "sources": assignment[split],
            }
        info = {
            "schema_version": SCHEMA_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "tem_rf_version": tem_rf.__version__,
            "patch_size": patch_size,
            "pixel_size_nm": dataset_pixel_size,
            "counts": {split: splits_info[split]["count"] for split in SPLITS},
            "augmented_counts": {split: 8 * splits_info[split]["count"] for split in SPLITS},
            "preprocessing": {
                "xray_threshold": xray_threshold,
                "xray_rule": "|pixel - 3x3 median| > threshold * 1.4826 * MAD; replaced by the "
                "mean of its non-outlier 8 neighbours",
                "standardisation": "per image: mean 0, std 1 (after x-ray removal)",
                "patch_size": patch_size,
                "min_particle_pixels": min_particle_pixels,
                "edge": edge,
                "mask_rule": "non-zero = particle (0/1, 0/N and instance-id masks)",
            },
            # every record's particle ids (`tem_rf.data.instance_masks`): the boundary target's source
            "instances": "uint16 ids per patch: a mask's instance ids, or a binary mask's 8-connected components",
            # the training split's whole particles, for scale matching at inference (`particle_sizes`)
            "particle_diameter_px": summarise_diameters(
                d for s in sources if s.split == "train" and s.particle_diameters_px is not None
                for d in s.particle_diameters_px
            ),
            "split_fractions": None if split_files else list(fractions),
            "split_files": {k: str(Path(v).resolve()) for k, v in split_files.items()} if split_files else None,
            # validation carved from the train list (no val list given): fraction, seed, images
            "val_from_train": carved,
            "read_options": read_options,
            "seed": seed,
            "num_shards": num_shards,
            "splits": splits_info,
            "sources": [
                {
                    "image": s.image.name,
                    "image_path": str(s.image.resolve()),
                    "mask_path": str(s.mask.resolve()),
                    "mask_rule": s.mask_rule,
                    "instances_from": s.instances_from,
                    "split": s.split,
                    "height": s.shape[0],
                    "width": s.shape[1],
                    "pixel_size_nm": s.pixel_size_nm,
                    "pixel_size_from": s.pixel_size_from,
                    "patches": s.patches if s.split else 0,
                    "patches_total": s.patches_total,
                    "xray_pixels_replaced": s.xray_pixels_replaced,
                    "notes": s.notes,
                }
                for s in sources
            ],
        }
        write_json(tmp / DATASET_JSON, info)
    return info


# --------------------------------------------------------------------------------------------
# Reading


__all__ = [
    "DATASET_JSON", "DEFAULT_LABEL_SUFFIXES", "DEFAULT_NUM_SHARDS", "DEFAULT_SPLIT_FRACTIONS", "DEFAULT_VAL_FRACTION",
    "SCHEMA_VERSION", "SPLITS", "SPLIT_FILE_COLUMNS", "XRAY_WARN_FRACTION", "assign_from_split_files",
    "build_dataset", "build_dataset_from_folders", "carve_validation", "check_val_fraction", "dataset_files",
    "dataset_fingerprint", "find_image_files", "format_dataset_summary", "list_input_files", "match_masks",
    "parse_split_files", "parse_split_fractions", "read_dataset_info", "read_split_file", "split_size", "split_sources",
]
