"""Moved to `tem_rf.data.graph_preprocess` (beside the NumPy preprocessing); named here until
tem_rf 0.3.0 (`tem_rf.core.cli.SHIMS_REMOVED_IN`)."""

from tem_rf.data.graph_preprocess import (  # noqa: F401
    median_filter_3x3_tf, preprocess_micrograph_tf, remove_xray_outliers_tf,
)
