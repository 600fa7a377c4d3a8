"""Deployment: SavedModel export, loading a predictor, exact tiled inference, segmenting files.
"""

from __future__ import annotations

from tem_rf.core.lazy import lazy_attributes

_LAZY = {
    "build_metadata": "tem_rf.serve.export",
    "export_run": "tem_rf.serve.export",
    "export_saved_model": "tem_rf.serve.export",
    "float32_model": "tem_rf.serve.export",
    "particle_probability_fn": "tem_rf.serve.export",
    "Predictor": "tem_rf.serve.predictor",
    "is_saved_model": "tem_rf.serve.predictor",
    "keras_predictor": "tem_rf.serve.predictor",
    "load_predictor": "tem_rf.serve.predictor",
    "read_metadata": "tem_rf.serve.predictor",
    "pad_to_divisor": "tem_rf.serve.tiling",
    "plan_axis": "tem_rf.serve.tiling",
    "predict_probability": "tem_rf.serve.tiling",
    "expand_inputs": "tem_rf.serve.segment",
    "segment_file": "tem_rf.serve.segment",
    "segment_files": "tem_rf.serve.segment",
    "segment_image": "tem_rf.serve.segment",
}

__all__ = [*_LAZY]
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
