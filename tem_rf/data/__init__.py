"""Datasets: preprocessing, tiling, splitting, TFRecord shards and the tf.data input pipeline.

Preprocessing (numpy/scipy) is imported eagerly; names that need TensorFlow are imported on first
use so that `from tem_rf.data import preprocess_micrograph` stays light.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

from tem_rf.data.preprocess import (
    DEFAULT_MIN_PARTICLE_PIXELS,
    DEFAULT_PATCH_SIZE,
    DEFAULT_XRAY_THRESHOLD,
    EDGE_MODES,
    Patch,
    PreprocessResult,
    find_xray_outliers,
    patch_starts,
    preprocess_micrograph,
    preprocess_with_stats,
    remove_xray_outliers,
    replace_with_neighbour_mean,
    standardise,
    tile,
)

_LAZY = {
    # tem_rf.data.dataset: building a dataset directory and reading its dataset.json
    "tem_rf.data.dataset": (
        "SCHEMA_VERSION",
        "SPLITS",
        "DEFAULT_LABEL_SUFFIXES",
        "find_image_files",
        "match_masks",
        "parse_split_fractions",
        "split_sources",
        "build_dataset",
        "read_dataset_info",
        "split_size",
    ),
    # tem_rf.data.tfrecords: the on-disk schema
    "tem_rf.data.tfrecords": ("encode_example", "decode_example", "scan_tfrecord"),
    # tem_rf.data.pipeline: tf.data
    "tem_rf.data.pipeline": ("NUM_DIHEDRAL", "dihedral_transform", "epoch_order", "load_split",
                             "patch_counts", "training_subset"),
}

__all__ = [  # imported above; the rest lazily
        "DEFAULT_MIN_PARTICLE_PIXELS",
        "DEFAULT_PATCH_SIZE",
        "DEFAULT_XRAY_THRESHOLD",
        "EDGE_MODES",
        "Patch",
        "PreprocessResult",
        "find_xray_outliers",
        "patch_starts",
        "preprocess_micrograph",
        "preprocess_with_stats",
        "remove_xray_outliers",
        "replace_with_neighbour_mean",
        "standardise",
        "tile",
]
__all__, __getattr__, __dir__ = lazy_attributes(__name__, _LAZY, eager=__all__)

