"""Deployment: SavedModel export, loading a predictor, exact tiled inference, segmenting files.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

_LAZY = {
    "tem_rf.serve.export": (
        "build_metadata",
        "export_run",
        "export_saved_model",
        "float32_model",
        "particle_probability_fn",
    ),
    "tem_rf.serve.predictor": (
        "Predictor",
        "is_saved_model",
        "keras_predictor",
        "load_predictor",
        "read_metadata",
    ),
    "tem_rf.serve.tiling": ("pad_to_divisor", "plan_axis", "predict_probability"),
    "tem_rf.serve.inputs": ("expand_inputs",),
    "tem_rf.serve.segment": ("segment_file", "segment_image"),
    "tem_rf.serve.segment_batch": ("segment_files",),
    "tem_rf.serve.segment_command": ("segment_micrographs",),
}

__all__, __getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
