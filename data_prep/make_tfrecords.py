r"""Turns folders of micrographs and label masks into a sharded TFRecord dataset.

  python -m data_prep.make_tfrecords --images=demo_out/raw/images --labels=demo_out/raw/labels \
      --out_dir=demo_out/dataset --patch_size=256

Each micrograph is cleaned of x-ray outliers, standardised (mean 0, std 1) and cut into
--patch_size patches; patches with fewer than --min_particle_pixels particle pixels are dropped;
whole source images go to train/val/test (--split, --seed), or to the splits that list files
name (--split_files, e.g. a public dataset's train.csv/test.csv; without a val list, --val_fraction
of the train list becomes validation). Writes OUT_DIR/dataset.json and
OUT_DIR/{train,val,test}/*.tfrecord (schema: README, "TFRecord schema").

Mask matching: the mask of images/<stem>.<ext> is the file in --labels named <stem>.png/.tif/.tiff
or <stem> plus a suffix such as _mask, _label, _labels, _seg, _gt (case-insensitive).
"""

from __future__ import annotations

import sys

from absl import app, flags

from tem_rf.core import cli as tem_flags

_IMAGES = flags.DEFINE_string("images", None, "Folder of micrographs, or a glob such as 'raw/*.tif'.")
_LABELS = flags.DEFINE_string("labels", None, "Folder of label masks (matched to images by file stem).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Dataset folder to create.")
_PIXEL_SIZE_NM = flags.DEFINE_float(
    "pixel_size_nm", None, "Pixel size in nm, used for images whose files carry none in their metadata."
)
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 512, "Patch height and width in pixels.", lower_bound=1)
_MIN_PARTICLE_PIXELS = flags.DEFINE_integer(
    "min_particle_pixels", 400, "Drop patches with fewer particle pixels than this.", lower_bound=0
)
_SPLIT = flags.DEFINE_string("split", "0.7,0.1,0.2", "Train,val,test fractions of source images.")
_SPLIT_FILES = flags.DEFINE_string(
    "split_files", None,
    "Keep a published split instead of --split: train=PATH[,val=PATH][,test=PATH], each file "
    "listing image stems or file names (one per line, or a CSV with a filename column). Images "
    "in no list are left out.",
)
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", None, "With --split_files of train (and test) only: this share of the train list's images "
    "becomes validation (default 0.1; 0: no validation split).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the image-to-split assignment.")
_FRAME = flags.DEFINE_integer(
    "frame", None, "Take this frame (from 0) of every stack / time series in --images.", lower_bound=0
)
_SIGNAL = flags.DEFINE_string(
    "signal", None, "Take the signal with this title from files holding several (e.g. 'HAADF')."
)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 4, "Most TFRecord shards per split.", lower_bound=1)
_XRAY_THRESHOLD = flags.DEFINE_float(
    "xray_threshold", 6.0,
    "X-ray outlier threshold in robust standard deviations from the 3x3 median; 0 disables.",
    lower_bound=0.0,
)
_EDGE = flags.DEFINE_enum(
    "edge", "shift", ["shift", "drop"],
    "Images not a multiple of --patch_size: 'shift' the last patch inward to the edge, or 'drop' "
    "the leftover strip.",
)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace a dataset already in --out_dir.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bars.")
tem_flags.define_deprecated_alias("quiet", "progress", convert=lambda quiet: not quiet)
flags.mark_flags_as_required(["images", "labels", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _SPLIT_FILES.value and flags.FLAGS["split"].present:
        raise app.UsageError("give --split (fractions) or --split_files (lists), not both")
    from tem_rf.data import dataset as dataset_lib

    try:
        info = dataset_lib.build_dataset_from_folders(
            _IMAGES.value, _LABELS.value, _OUT_DIR.value, split_fractions=_SPLIT.value,
            split_files=_SPLIT_FILES.value, val_fraction=_VAL_FRACTION.value, frame=_FRAME.value, signal=_SIGNAL.value,
            pixel_size_nm=_PIXEL_SIZE_NM.value, patch_size=_PATCH_SIZE.value,
            min_particle_pixels=_MIN_PARTICLE_PIXELS.value, seed=_SEED.value,
            num_shards=_NUM_SHARDS.value,
            xray_threshold=_XRAY_THRESHOLD.value or None,  # the flag's 0 disables
            edge=_EDGE.value, overwrite=_OVERWRITE.value, progress=_PROGRESS.value,
        )
    except (ValueError, OSError) as error:  # InputError is a ValueError
        sys.exit(f"error: {error}")
    print(dataset_lib.format_dataset_summary(info, _OUT_DIR.value))


if __name__ == "__main__":
    tem_flags.run(main)
