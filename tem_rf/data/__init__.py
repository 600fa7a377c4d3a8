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
    "SCHEMA_VERSION": "tem_rf.data.dataset",
    "SPLITS": "tem_rf.data.dataset",
    "DEFAULT_LABEL_SUFFIXES": "tem_rf.data.dataset",
    "find_image_files": "tem_rf.data.dataset",
    "match_masks": "tem_rf.data.dataset",
    "parse_split_fractions": "tem_rf.data.dataset",
    "split_sources": "tem_rf.data.dataset",
    "build_dataset": "tem_rf.data.dataset",
    "read_dataset_info": "tem_rf.data.dataset",
    "split_size": "tem_rf.data.dataset",
    # tem_rf.data.tfrecords: the on-disk schema
    "encode_example": "tem_rf.data.tfrecords",
    "decode_example": "tem_rf.data.tfrecords",
    "scan_tfrecord": "tem_rf.data.tfrecords",
    # tem_rf.data.pipeline: tf.data
    "NUM_DIHEDRAL": "tem_rf.data.pipeline",
    "dihedral_transform": "tem_rf.data.pipeline",
    "epoch_order": "tem_rf.data.pipeline",
    "load_split": "tem_rf.data.pipeline",
}

__all__ = [
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
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
