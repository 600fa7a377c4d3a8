"""What a tem_rf SavedModel offers, by name: its signatures (``serving_default`` for preprocessed
images, ``serving_raw_<dtype>`` for raw micrographs, ``serving_raw_float32_scaled`` with a pixel
size), their inputs and outputs, the ``segment`` function that dispatches on a NumPy array's
dtype, the metadata asset's name, and which raw dtypes may be exported. The contract between
`tem_rf.serve.export` (which writes it) and `tem_rf.serve.predictor` (which reads it).
"""

from __future__ import annotations

from collections.abc import Iterable

METADATA_FILENAME = "tem_rf.json"


METADATA_SCHEMA_VERSION = 1


SIGNATURE_KEY = "serving_default"  # preprocessed input, as before 0.3; kept for compatibility


PREPROCESSED_ENDPOINT = "serve"  # Keras' TFSMLayer default endpoint: the same function


SIGNATURE_INPUT = "image"


SIGNATURE_OUTPUT = "particle_probability"


PREPROCESSED_SIGNATURE_KEY = "serving_preprocessed"  # the same function as serving_default


RAW_SIGNATURE_PREFIX = "serving_raw_"  # + dtype: raw micrographs, tem_rf's preprocessing in the graph


RAW_DTYPES = ("uint8", "uint16", "int16", "int32", "float32", "float64")


RAW_SIGNATURE_INPUT = "micrograph"


SCALED_SIGNATURE_KEY = "serving_raw_float32_scaled"  # raw float32 + its pixel size: resampled in the graph


PIXEL_SIZE_INPUT = "pixel_size_nm"


# A function (not a signature) of the SavedModel, traced once per exported raw dtype: called with a
# NumPy array it runs the trace of that array's own dtype and refuses any other dtype, where a
# typed signature would convert it silently (float32 -> uint16 truncates, int64 wraps).
DTYPE_DISPATCH_FUNCTION = "segment"


MASK_OUTPUT = "particle_mask"


BOUNDARY_OUTPUT = "boundary_probability"  # boundary-target networks only (`tem_rf.data.instance_masks`)


MASK_THRESHOLD = 0.5


PADDING_MODE = "reflect"  # how images are padded to the size divisor (numpy / tf.pad "REFLECT")


# What a SavedModel written by `export_saved_model` holds at its top level.
EXPORT_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables", "assets"})


def check_raw_dtypes(raw_dtypes: Iterable[str]) -> tuple[str, ...]:
    """``raw_dtypes`` as a tuple in `RAW_DTYPES`' order, each once; unknown names are a ValueError."""
    raw_dtypes = [str(dtype).strip() for dtype in raw_dtypes]
    unknown = [dtype for dtype in raw_dtypes if dtype not in RAW_DTYPES]
    if unknown:
        raise ValueError(f"raw dtype(s) {', '.join(unknown)} not among {', '.join(RAW_DTYPES)}")
    return tuple(dtype for dtype in RAW_DTYPES if dtype in raw_dtypes)


__all__ = [
    "BOUNDARY_OUTPUT",
    "DTYPE_DISPATCH_FUNCTION",
    "EXPORT_ENTRIES",
    "MASK_OUTPUT",
    "MASK_THRESHOLD",
    "METADATA_FILENAME",
    "METADATA_SCHEMA_VERSION",
    "PADDING_MODE",
    "PIXEL_SIZE_INPUT",
    "PREPROCESSED_ENDPOINT",
    "PREPROCESSED_SIGNATURE_KEY",
    "RAW_DTYPES",
    "RAW_SIGNATURE_INPUT",
    "RAW_SIGNATURE_PREFIX",
    "SCALED_SIGNATURE_KEY",
    "SIGNATURE_INPUT",
    "SIGNATURE_KEY",
    "SIGNATURE_OUTPUT",
    "check_raw_dtypes",
]
