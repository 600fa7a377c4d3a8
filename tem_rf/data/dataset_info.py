"""Reading a dataset directory's ``dataset.json``: its schema version and counts checked, and how
many patches a split holds.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any


from tem_rf.core.errors import InputError
from tem_rf.data.splits import SPLITS

logger = logging.getLogger("tem_rf.data.dataset")  # what dataset building says, under one name

SCHEMA_VERSION = 1


DATASET_JSON = "dataset.json"


def read_dataset_info(data_dir: str | os.PathLike) -> dict:
    """Reads and validates ``data_dir/dataset.json``; raises `InputError` naming the problem."""
    data_dir = Path(data_dir)
    path = data_dir / DATASET_JSON
    if not data_dir.is_dir():
        raise InputError(data_dir, "dataset folder does not exist")
    if not path.is_file():
        raise InputError(data_dir, f"is not a dataset: no {DATASET_JSON} (make one with data_prep.make_tfrecords)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(path, f"is not valid JSON: {error}") from None
    if not isinstance(info, dict):
        raise InputError(path, "does not hold a JSON object")
    version = info.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            path, f"has schema_version {version!r}; this tem_rf reads version {SCHEMA_VERSION}"
        )
    for key in ("patch_size", "pixel_size_nm", "counts", "splits", "preprocessing"):
        if key not in info:
            raise InputError(path, f"lacks the key {key!r}")
    _check_dataset_numbers(path, info)
    return info


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_dataset_numbers(path: Path, info: dict) -> None:
    """patch_size, splits, shards and counts of a dataset.json: well-formed and consistent, so an
    edited number is refused here (the shards themselves are checked by `load_split`)."""
    edited = "dataset.json was edited: restore it or rebuild the dataset"
    patch_size = info["patch_size"]
    if not _is_count(patch_size) or patch_size == 0:
        raise InputError(path, f"patch_size must be a positive whole number of pixels, got {patch_size!r}")
    preprocessing = info["preprocessing"]
    if isinstance(preprocessing, dict) and preprocessing.get("patch_size", patch_size) != patch_size:
        raise InputError(
            path,
            f"patch_size is {patch_size} but preprocessing.patch_size is {preprocessing['patch_size']!r}; {edited}",
        )
    if not isinstance(info["splits"], dict) or not isinstance(info["counts"], dict):
        raise InputError(path, "'splits' and 'counts' must be JSON objects")
    for split in SPLITS:
        split_info = info["splits"].get(split)
        if not isinstance(split_info, dict) or "count" not in split_info or "shards" not in split_info:
            raise InputError(path, f"lacks a valid entry for split {split!r}")
        shards = split_info["shards"]
        if not isinstance(shards, list):
            raise InputError(path, f"splits.{split}.shards must be a list")
        for shard in shards:
            if not (
                isinstance(shard, dict) and isinstance(shard.get("file"), str) and _is_count(shard.get("count"))
                and _is_count(shard.get("bytes", 0))
            ):
                raise InputError(path, f"splits.{split}.shards has an invalid entry {shard!r}")
            file = Path(shard["file"])
            if file.is_absolute() or ".." in file.parts:
                raise InputError(path, f"shard {shard['file']!r} lies outside the dataset folder")
        count = split_info["count"]
        listed = sum(shard["count"] for shard in shards)
        if not _is_count(count) or count != listed:
            raise InputError(
                path, f"splits.{split}.count is {count!r} but its shards list {listed} records; {edited}"
            )
        if info["counts"].get(split) != count:
            raise InputError(
                path, f"counts.{split} is {info['counts'].get(split)!r} but splits.{split}.count is {count}; {edited}"
            )


def split_size(data_dir: str | os.PathLike, split: str, augment: bool = False) -> int:
    """Number of elements `load_split` yields for ``split`` (before batching)."""
    info = read_dataset_info(data_dir)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return info["counts"][split] * (8 if augment else 1)


__all__ = ["DATASET_JSON", "SCHEMA_VERSION", "read_dataset_info", "split_size"]
