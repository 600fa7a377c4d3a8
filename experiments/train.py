r"""Trains one residual UNet (one architecture, one seed) on a TFRecord dataset.

  python -m experiments.train --data_dir=DATA --model_dir=runs/N2_k2-8 \
      --num_blocks=2 --pool_sizes=2,8 --epochs=100 --seed=752

Running it again with the same --model_dir resumes from the last checkpoint (the same data
order follows); a larger --epochs continues a finished run. Writes config.json, checkpoints,
TensorBoard events (logs/), best.keras, model.keras, history.csv and metrics.json.
Several GPUs: --strategy=mirrored (or auto). Several machines: set TF_CONFIG on each and pass
--strategy=multi_worker (or auto).
"""

from __future__ import annotations

import json
import logging

from absl import flags

from tem_rf.core import cli as tem_flags

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory (make_tfrecords output).")
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory: outputs and checkpoints.")
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 2, "Residual blocks per arm (N).")
_POOL_SIZES = flags.DEFINE_string("pool_sizes", "2", "Pool size, one value or one per level (2,8).")
_DILATIONS = flags.DEFINE_string("dilations", "1", "Dilation, one value or one per level + bottleneck.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Global batch size (split over replicas).")
_EPOCHS = flags.DEFINE_integer("epochs", 100, "Total epochs (the paper used 100 or 150).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.")
_SEED = flags.DEFINE_integer("seed", 752, "Seeds initial weights and the data order.")
_PRECISION = flags.DEFINE_enum(
    "precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
    "auto: mixed_float16 on a GPU, float32 on the CPU.",
)
_STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", ["auto", "default", "mirrored", "multi_worker"],
    "tf.distribute strategy; auto picks multi_worker with TF_CONFIG, mirrored with several GPUs.",
)
_XLA = flags.DEFINE_boolean("xla", False, "Compile the train step with XLA (jit_compile).")
_DETERMINISTIC = flags.DEFINE_boolean("deterministic", True, "Deterministic ops (reproducible runs).")
_AUGMENT = flags.DEFINE_boolean("augment", True, "Train on the 8 dihedral variants of each patch.")
_EVAL_AUGMENT = flags.DEFINE_boolean("eval_augment", True, "Score val/test on all 8 variants.")
_IMAGE_EVERY = flags.DEFINE_integer("image_every", 5, "Log validation images every N epochs.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar per epoch.")
_KEEP_WORKER_DIRS = flags.DEFINE_boolean(
    "keep_worker_dirs", False, "Multi-worker: keep non-chief workers' final weights (lockstep checks)."
)
flags.mark_flags_as_required(["data_dir", "model_dir"])


def main(argv: list[str]) -> None:
    del argv
    from tem_rf import train as training

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    try:
        config = training.TrainConfig(
            data_dir=_DATA_DIR.value,
            model_dir=_MODEL_DIR.value,
            num_blocks=_NUM_BLOCKS.value,
            pool_sizes=tem_flags.parse_int_list(_POOL_SIZES.value, "pool_sizes"),
            dilations=tem_flags.parse_int_list(_DILATIONS.value, "dilations"),
            batch_size=_BATCH_SIZE.value,
            epochs=_EPOCHS.value,
            learning_rate=_LEARNING_RATE.value,
            seed=_SEED.value,
            precision=_PRECISION.value,
            strategy=_STRATEGY.value,
            jit_compile=_XLA.value,
            deterministic=_DETERMINISTIC.value,
            augment=_AUGMENT.value,
            eval_augment=_EVAL_AUGMENT.value,
            image_every=_IMAGE_EVERY.value,
            keep_worker_dirs=_KEEP_WORKER_DIRS.value,
        )
        results = training.train(config, progress=_PROGRESS.value)
    except (training.TrainingError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(json.dumps(results, indent=2))
    print(f"run directory: {_MODEL_DIR.value}")


if __name__ == "__main__":
    tem_flags.run(main)
