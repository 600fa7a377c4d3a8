"""The typed configuration of one training run: every setting, its default and its check."""

from __future__ import annotations

from tem_rf.core.errors import TemRfError
from tem_rf.core.pretrained import is_pretrained

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
TARGETS = ("mask", "boundary")  # `tem_rf.data.pipeline.TARGETS`, without importing TensorFlow



class TrainingError(TemRfError, RuntimeError):
    """A run that cannot start or cannot go on (bad flags, NaN loss); the message says why."""



@dataclasses.dataclass
class TrainConfig:
    """Everything that decides a training run; written resolved to ``RUN_DIR/config.json``."""

    # metadata: the help text of the binaries' flag (and "flag" when the flag has another name),
    # and "resume": what a resumed run (the same --model_dir again, or a sweep rerun) may do with
    # the field, compared with the run's config.json (`resume_changes`):
    #   "same"  it changes results (weights, data order, numerics, best-epoch choice): must equal
    #           the saved value, else the run is refused naming the flag, old and new value;
    #   "grow"  --epochs: may grow (the resume trains on to the new count), never shrink;
    #   "free"  it does not change results (where the run lives, what is logged as images,
    #           scratch files kept): may differ, and config.json records the new value.
    data_dir: str = dataclasses.field(metadata={"help": "Dataset directory (make_tfrecords output).", "resume": "same"})
    model_dir: str = dataclasses.field(metadata={"help": "Run directory: outputs and checkpoints.", "resume": "free"})
    num_blocks: int = dataclasses.field(default=2, metadata={"help": "Residual blocks per arm (N).", "resume": "same"})
    pool_sizes: tuple[int, ...] = dataclasses.field(
        default=(2,), metadata={"help": "Pool size, one value or one per level, e.g. 2,8.", "resume": "same"}
    )
    dilations: tuple[int, ...] = dataclasses.field(
        default=(1,),
        metadata={"help": "Dilation, one value or one per level plus the bottleneck, e.g. 1,1,2.", "resume": "same"},
    )
    target: str = dataclasses.field(
        default="mask",
        metadata={
            "help": "What the network learns: mask (the paper's background/particle) or boundary (background, "
            "particle interior, particle boundary: touching particles are told apart; needs a dataset with "
            "particle ids, tem_rf >= 0.4).",
            "choices": ("mask", "boundary"),
            "resume": "same",
        },
    )
    boundary_width: int = dataclasses.field(
        default=2,
        metadata={"help": "--target=boundary: particle pixels within this many px of another particle or the "
                          "background are boundary.", "resume": "same"},
    )
    init_from: str = dataclasses.field(
        default="",
        metadata={"help": "Start from these weights instead of random ones (fine-tuning): a run directory, a "
                          ".keras file or pretrained:NAME (a network shipped in tem_rf) of the same architecture "
                          "and target; recorded with a hash of the weights.",
                  "resume": "same"},
    )
    train_images: int = dataclasses.field(
        default=0,
        metadata={"help": "Train on this many of the training split's micrographs (0: all), chosen by --seed in "
                          "an order that nests: the micrographs of a smaller count are among those of a larger "
                          "one (a learning curve).", "resume": "same"},
    )
    batch_size: int = dataclasses.field(
        default=8, metadata={"help": "Global batch size (split over replicas).", "resume": "same"}
    )
    epochs: int = dataclasses.field(
        default=100, metadata={"help": "Total epochs (the paper used 100 or 150).", "resume": "grow"}
    )
    epoch_steps: int = dataclasses.field(
        default=0,
        metadata={"help": "Training steps per epoch, i.e. between validations and checkpoints (0: one pass over the training patches and their 8 "
                          "variants). A set number gives runs on few and many micrographs the same steps and "
                          "validations per epoch.", "resume": "same"},
    )
    learning_rate: float = dataclasses.field(default=1e-4, metadata={"help": "Adam learning rate.", "resume": "same"})
    seed: int = dataclasses.field(
        default=752, metadata={"help": "Seeds initial weights and the data order.", "resume": "same"}
    )
    precision: str = dataclasses.field(  # compared as resolved: auto on a GPU is mixed_float16
        default="auto",
        metadata={
            "help": "auto: mixed_float16 on a GPU, float32 on the CPU.",
            "choices": PRECISIONS,
            "resume": "same",
        },
    )
    strategy: str = dataclasses.field(  # compared as resolved, with its number of replicas
        default="auto",
        metadata={
            "help": "tf.distribute strategy; auto picks multi_worker with TF_CONFIG, mirrored with several GPUs.",
            "choices": STRATEGIES,
            "resume": "same",
        },
    )
    jit_compile: bool = dataclasses.field(
        default=False,
        metadata={"help": "Compile the train step with XLA (jit_compile).", "flag": "xla", "resume": "same"},
    )
    deterministic: bool = dataclasses.field(
        default=True, metadata={"help": "Deterministic ops (reproducible runs).", "resume": "same"}
    )
    augment: bool = dataclasses.field(
        default=True, metadata={"help": "Train on the 8 dihedral variants of each patch.", "resume": "same"}
    )
    eval_augment: bool = dataclasses.field(  # picks the best epoch: best.keras and the test scores
        default=True, metadata={"help": "Score val/test on all 8 variants.", "resume": "same"}
    )
    image_every: int = dataclasses.field(
        default=5, metadata={"help": "Log validation images every N epochs.", "resume": "free"}
    )
    num_images: int = dataclasses.field(
        default=3, metadata={"help": "Validation images logged each time.", "resume": "free"}
    )
    keep_worker_dirs: bool = dataclasses.field(  # lockstep checks compare the workers' weights
        default=False,
        metadata={"help": "Multi-worker: keep non-chief workers' final weights (lockstep checks).", "resume": "free"},
    )
    worker_timeout_s: float = dataclasses.field(
        default=600.0,
        metadata={"help": "Multi-worker: seconds to wait for every worker of TF_CONFIG to join before giving up.",
                  "resume": "free"},
    )

    @property
    def num_classes(self) -> int:
        """The network's output classes: 2 (background, particle) or 3 with the boundary target."""
        return 3 if self.target == "boundary" else 2

    def validated(self) -> "TrainConfig":
        """Checks values and expands pools/dilations to one per level; raises TrainingError."""
        from tem_rf.models import normalize_architecture

        if self.precision not in PRECISIONS:
            raise TrainingError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.strategy not in STRATEGIES:
            raise TrainingError(f"unknown strategy {self.strategy!r}; choose one of {STRATEGIES}")
        if self.target not in TARGETS:
            raise TrainingError(f"unknown target {self.target!r}; choose one of {TARGETS}")
        for name in ("batch_size", "epochs", "image_every", "num_images", "boundary_width", "train_images",
                     "epoch_steps"):
            value = getattr(self, name)
            if value < (0 if name in ("num_images", "train_images", "epoch_steps") else 1):
                raise TrainingError(f"{name} must be positive, got {value}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise TrainingError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not self.worker_timeout_s > 0:  # inf: wait for ever, as TensorFlow does
            raise TrainingError(f"worker_timeout_s must be a positive number of seconds, got {self.worker_timeout_s}")
        try:
            n, pools, dils = normalize_architecture(
                self.num_blocks, _broadcast(self.pool_sizes), _broadcast(self.dilations)
            )
        except ValueError as err:
            raise TrainingError(str(err)) from None
        return dataclasses.replace(
            self,
            init_from=self.init_from if is_pretrained(self.init_from) or not self.init_from
            else os.path.abspath(self.init_from),
            num_blocks=n,
            pool_sizes=pools,
            dilations=dils,
            data_dir=os.path.abspath(self.data_dir),
            model_dir=os.path.abspath(self.model_dir),
        )



RESUME_RULES = ("same", "grow", "free")

# Values config.json records beside the fields that a resume may not change either: they follow
# from "same" fields and the machine or dataset (replicas of the strategy, the dataset's content
# behind an unchanged --data_dir), so they are compared once the fields agree.
DERIVED_SAME = {
    "num_replicas": "the number of replicas of --strategy",
    "patch_size": "the dataset in --data_dir changed: its patch size",
    "steps_per_epoch": "the dataset in --data_dir changed: steps per epoch",
    "preprocessing": "the dataset in --data_dir changed: its preprocessing",
    "dataset_fingerprint": "the dataset in --data_dir was rebuilt (another split or other shard contents)",
    "init_weights_sha256": "the weights in --init_from changed",
}


def resume_rule(name: str) -> str:
    """The ``resume`` rule of TrainConfig field ``name`` (see the field metadata comment)."""
    return _FIELDS[name].metadata["resume"]


def flag_name(name: str) -> str:
    """The binaries' flag of TrainConfig field ``name`` (``jit_compile`` is ``--xla``)."""
    return _FIELDS[name].metadata.get("flag", name)


@dataclasses.dataclass(frozen=True)
class SettingChange:
    """A setting whose new value a resume may not take: ``name`` (a field or a `DERIVED_SAME`
    key), the saved ``old`` and the ``new`` value."""

    name: str
    old: Any
    new: Any

    def describe(self, trained: str = "this run was trained with") -> str:
        """E.g. ``--learning_rate is 0.01 but this run was trained with 0.001``."""
        old, new = _shown(self.old), _shown(self.new)
        if self.name in ("dataset_fingerprint", "init_weights_sha256"):  # hashes: their first digits tell them apart
            old, new = old[:12], new[:12]
        if self.name in DERIVED_SAME:
            return f"{DERIVED_SAME[self.name]} is {new} but {trained} {old}"
        if self.name in _FIELDS and resume_rule(self.name) == "grow":
            return f"--{flag_name(self.name)} is {new} but {trained} {old} (it may only grow)"
        return f"--{flag_name(self.name)} is {new} but {trained} {old}"


# What every config.json tem_rf has written holds: a checkpoint beside a config.json without one of
# them belongs to an unknown network, and is never resumed (an empty {} would resume anything).
REQUIRED_TO_RESUME = ("num_blocks", "pool_sizes", "dilations", "seed", "batch_size", "learning_rate", "data_dir")


def missing_to_resume(saved: Mapping[str, Any]) -> list[str]:
    """The `REQUIRED_TO_RESUME` settings a run's config.json lacks (or holds as null)."""
    return [name for name in REQUIRED_TO_RESUME if saved.get(name) is None]


def resume_changes(
    saved: Mapping[str, Any], current: Mapping[str, Any], names: Iterable[str] | None = None
) -> list[SettingChange]:
    """The settings a resume may not change: TrainConfig fields of ``current`` (all, or
    ``names``) that break their ``resume`` rule against ``saved`` (a config.json), then, only
    when none does, the `DERIVED_SAME` values. Keys either side lacks (an older config.json)
    are not compared. ``data_dir`` may differ when both record the same dataset fingerprint: a
    moved dataset resumes (config.json then records where it is now). Values are compared as JSON holds them (a tuple equals its list)."""
    changes = []
    for name in names if names is not None else _FIELDS:
        if name not in _FIELDS or name not in saved or name not in current:
            continue
        old, new = _as_json(saved[name]), _as_json(current[name])
        rule = resume_rule(name)
        if name == "data_dir" and _same_dataset(saved, current):
            continue  # the dataset moved (or is reached by another path): the same content, resumable
        if rule == "same" and old != new:
            changes.append(SettingChange(name, old, new))
        elif rule == "grow" and not (isinstance(old, (int, float)) and new >= old):
            changes.append(SettingChange(name, old, new))
    if not changes and names is None:
        for name in DERIVED_SAME:
            if name in saved and name in current and _as_json(saved[name]) != _as_json(current[name]):
                changes.append(SettingChange(name, _as_json(saved[name]), _as_json(current[name])))
    return changes


def _same_dataset(saved: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether both configs record one dataset fingerprint (splits and shard checksums)."""
    fingerprint = saved.get("dataset_fingerprint")
    return bool(fingerprint) and fingerprint == current.get("dataset_fingerprint")


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _shown(value: Any) -> str:
    """A value as one would pass it as a flag: 2,8 for a list, true/false for a bool."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _broadcast(values: int | Sequence[int]) -> int | tuple[int, ...]:
    if isinstance(values, int):
        return values
    values = tuple(values)
    return values[0] if len(values) == 1 else values


_FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
