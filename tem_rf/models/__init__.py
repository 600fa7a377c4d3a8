"""Network builders."""

from tem_rf.models.fused_batch_norm import FusedBatchNormalization
from tem_rf.models.residual_unet import (
    InputSizeCheck,
    architecture_name,
    count_trainable_parameters,
    normalize_architecture,
    residual_unet,
    size_divisor,
)

__all__ = [
    "FusedBatchNormalization",
    "InputSizeCheck",
    "architecture_name",
    "count_trainable_parameters",
    "normalize_architecture",
    "residual_unet",
    "size_divisor",
]
