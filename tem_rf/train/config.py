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

    data_dir: str
    model_dir: str
    num_blocks: int = 2
    pool_sizes: tuple[int, ...] = (2,)
    dilations: tuple[int, ...] = (1,)
    batch_size: int = 8
    epochs: int = 100
    learning_rate: float = 1e-4
    seed: int = 752
    precision: str = "auto"
    strategy: str = "auto"
    jit_compile: bool = False
    deterministic: bool = True
    augment: bool = True
    eval_augment: bool = True
    image_every: int = 5
    num_images: int = 3
    keep_worker_dirs: bool = False  # keep non-chief workers' scratch outputs (lockstep checks)

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
