"""Networks: the residual UNet builder, its layers, and its geometry (receptive field, halo)."""

from tem_rf.models.architectures import (
    architecture_grid,
    architecture_table,
    describe_model,
    format_table,
)
from tem_rf.models.fused_batch_norm import FusedBatchNormalization
from tem_rf.models.geometry import (
    ModelGeometry,
    ReceptiveField,
    max_stride,
    model_geometry,
    receptive_field,
)
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
    "ModelGeometry",
    "ReceptiveField",
    "architecture_grid",
    "architecture_name",
    "architecture_table",
    "count_trainable_parameters",
    "describe_model",
    "format_table",
    "max_stride",
    "model_geometry",
    "normalize_architecture",
    "receptive_field",
    "residual_unet",
    "size_divisor",
]
