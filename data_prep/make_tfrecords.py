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


from absl import app, flags

from tem_rf.core import cli
from tem_rf.data.dataset_options import DatasetOptions  # no TensorFlow: flags and --help stay fast

_IMAGES = flags.DEFINE_string("images", None, "Folder of micrographs, or a glob such as 'raw/*.tif'.")
_LABELS = flags.DEFINE_string("labels", None, "Folder of label masks (matched to images by file stem).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Dataset folder to create.")
_OPTIONS = cli.define_flags_from_dataclass(DatasetOptions)  # one flag per option, its default and help
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace a dataset already in --out_dir.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bars.")
cli.define_deprecated_alias("quiet", "progress", convert=lambda quiet: not quiet)
flags.mark_flags_as_required(["images", "labels", "out_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _OPTIONS["split_files"].value and flags.FLAGS["split"].present:
        raise app.UsageError("give --split (fractions) or --split_files (lists), not both")
    from tem_rf.data import dataset as dataset_lib

    options = cli.options_from_flags(DatasetOptions, _OPTIONS)
    info = dataset_lib.build_dataset_from_folders(
        _IMAGES.value, _LABELS.value, _OUT_DIR.value, overwrite=_OVERWRITE.value, progress=_PROGRESS.value,
        **options.library_options(),
    )
    print(dataset_lib.format_dataset_summary(info, _OUT_DIR.value))


if __name__ == "__main__":
    cli.run(main)
