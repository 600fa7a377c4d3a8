"""The options of building a dataset (``make_tfrecords``), each with its default and help once;
the binary defines one flag per field (`tem_rf.core.cli.define_flags_from_dataclass`) and passes
`DatasetOptions.library_options` to `tem_rf.data.dataset.build_dataset_from_folders`."""

from __future__ import annotations

import dataclasses
from typing import Any

from tem_rf.core.cli import option
from tem_rf.data.dataset import DEFAULT_NUM_SHARDS
from tem_rf.data.splits import DEFAULT_SPLIT_FRACTIONS, DEFAULT_VAL_FRACTION
from tem_rf.data.preprocess import (
    DEFAULT_MIN_PARTICLE_PIXELS, DEFAULT_PATCH_SIZE, DEFAULT_XRAY_THRESHOLD, EDGE_MODES,
)


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """How micrographs and masks become patches, and which split each image goes to."""

    pixel_size_nm: float | None = option(
        None, "Pixel size in nm, used for images whose files carry none in their metadata.")
    patch_size: int = option(DEFAULT_PATCH_SIZE, "Patch height and width in pixels.", lower_bound=1)
    min_particle_pixels: int = option(
        DEFAULT_MIN_PARTICLE_PIXELS, "Drop patches with fewer particle pixels than this.", lower_bound=0)
    split: str = option(",".join(f"{f:g}" for f in DEFAULT_SPLIT_FRACTIONS), "Train,val,test fractions of source images.")
    split_files: str | None = option(
        None, "Keep a published split instead of --split: train=PATH[,val=PATH][,test=PATH], each file listing "
        "image stems or file names (one per line, or a CSV with a filename column). Images in no list are left out.")
    val_fraction: float | None = option(
        None, f"With --split_files of train (and test) only: this share of the train list's images becomes "
        f"validation (default {DEFAULT_VAL_FRACTION:g}; 0: no validation split).")
    seed: int = option(0, "Seed of the image-to-split assignment.")
    frame: int | None = option(
        None, "Take this frame (from 0) of every stack / time series in --images.", lower_bound=0)
    signal: str | None = option(None, "Take the signal with this title from files holding several (e.g. 'HAADF').")
    num_shards: int = option(DEFAULT_NUM_SHARDS, "Most TFRecord shards per split.", lower_bound=1)
    xray_threshold: float = option(
        DEFAULT_XRAY_THRESHOLD, "X-ray outlier threshold in robust standard deviations from the 3x3 median; "
        "0 disables.", lower_bound=0.0)
    edge: str = option(
        "shift", "Images not a multiple of --patch_size: 'shift' the last patch inward to the edge, or 'drop' the "
        "leftover strip.", choices=EDGE_MODES)

    def library_options(self) -> dict[str, Any]:
        """`build_dataset_from_folders`' keyword arguments (an x-ray threshold of 0 disables it: None)."""
        options = dataclasses.asdict(self)
        options["split_fractions"] = options.pop("split")
        options["xray_threshold"] = options["xray_threshold"] or None
        return options


__all__ = ["DatasetOptions"]
