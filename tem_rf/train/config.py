"""The typed configuration of one training run: every setting, its default and its check."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")



class TrainingError(RuntimeError):
    """A run that cannot start or cannot go on (bad flags, NaN loss); the message says why."""



@dataclasses.dataclass
class TrainConfig:
    """Everything that decides a training run; written resolved to ``RUN_DIR/config.json``."""

    # metadata: the help text of the binaries' flag (and "flag" when the flag has another name).
    data_dir: str = dataclasses.field(metadata={"help": "Dataset directory (make_tfrecords output)."})
    model_dir: str = dataclasses.field(metadata={"help": "Run directory: outputs and checkpoints."})
    num_blocks: int = dataclasses.field(default=2, metadata={"help": "Residual blocks per arm (N)."})
    pool_sizes: tuple[int, ...] = dataclasses.field(
        default=(2,), metadata={"help": "Pool size, one value or one per level, e.g. 2,8."}
    )
    dilations: tuple[int, ...] = dataclasses.field(
        default=(1,), metadata={"help": "Dilation, one value or one per level plus the bottleneck, e.g. 1,1,2."}
    )
    batch_size: int = dataclasses.field(default=8, metadata={"help": "Global batch size (split over replicas)."})
    epochs: int = dataclasses.field(default=100, metadata={"help": "Total epochs (the paper used 100 or 150)."})
    learning_rate: float = dataclasses.field(default=1e-4, metadata={"help": "Adam learning rate."})
    seed: int = dataclasses.field(default=752, metadata={"help": "Seeds initial weights and the data order."})
    precision: str = dataclasses.field(
        default="auto",
        metadata={"help": "auto: mixed_float16 on a GPU, float32 on the CPU.", "choices": PRECISIONS},
    )
    strategy: str = dataclasses.field(
        default="auto",
        metadata={
            "help": "tf.distribute strategy; auto picks multi_worker with TF_CONFIG, mirrored with several GPUs.",
            "choices": STRATEGIES,
        },
    )
    jit_compile: bool = dataclasses.field(
        default=False, metadata={"help": "Compile the train step with XLA (jit_compile).", "flag": "xla"}
    )
    deterministic: bool = dataclasses.field(
        default=True, metadata={"help": "Deterministic ops (reproducible runs)."}
    )
    augment: bool = dataclasses.field(
        default=True, metadata={"help": "Train on the 8 dihedral variants of each patch."}
    )
    eval_augment: bool = dataclasses.field(default=True, metadata={"help": "Score val/test on all 8 variants."})
    image_every: int = dataclasses.field(default=5, metadata={"help": "Log validation images every N epochs."})
    num_images: int = dataclasses.field(default=3, metadata={"help": "Validation images logged each time."})
    keep_worker_dirs: bool = dataclasses.field(  # lockstep checks compare the workers' weights
        default=False,
        metadata={"help": "Multi-worker: keep non-chief workers' final weights (lockstep checks)."},
    )

    def validated(self) -> "TrainConfig":
        """Checks values and expands pools/dilations to one per level; raises TrainingError."""
        from tem_rf.models import normalize_architecture

        if self.precision not in PRECISIONS:
            raise TrainingError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.strategy not in STRATEGIES:
            raise TrainingError(f"unknown strategy {self.strategy!r}; choose one of {STRATEGIES}")
        for name in ("batch_size", "epochs", "image_every", "num_images"):
            value = getattr(self, name)
            if value < (0 if name == "num_images" else 1):
                raise TrainingError(f"{name} must be positive, got {value}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise TrainingError(f"learning_rate must be a positive number, got {self.learning_rate}")
        try:
            n, pools, dils = normalize_architecture(
                self.num_blocks, _broadcast(self.pool_sizes), _broadcast(self.dilations)
            )
        except ValueError as err:
            raise TrainingError(str(err)) from None
        return dataclasses.replace(
            self,
            num_blocks=n,
            pool_sizes=pools,
            dilations=dils,
            data_dir=os.path.abspath(self.data_dir),
            model_dir=os.path.abspath(self.model_dir),
        )



def _broadcast(values: int | Sequence[int]) -> int | tuple[int, ...]:
    if isinstance(values, int):
        return values
    values = tuple(values)
    return values[0] if len(values) == 1 else values
