r"""Trains one residual UNet (one architecture, one seed) on a TFRecord dataset.

  python -m experiments.train --data_dir=DATA --model_dir=runs/N2_k2-8 \
      --num_blocks=2 --pool_sizes=2,8 --epochs=100 --seed=752

Running it again with the same --model_dir resumes from the last checkpoint (the same data
order follows); a larger --epochs continues a finished run. A resume must pass the run's values
of every setting that changes results (all but --epochs, which may grow, and --image_every,
--num_images, --keep_worker_dirs, --worker_timeout_s, --progress): another value is refused, naming it. One process
trains in a folder at a time (a second one is refused). Writes config.json, checkpoints,
TensorBoard events (logs/), best.keras, model.keras, history.csv and metrics.json; with
--target=boundary, also instance_rule.json (how particles are read, fitted on the validation
micrographs).
Several GPUs: --strategy=mirrored (or auto). Several machines: set TF_CONFIG on each and pass
--strategy=multi_worker (or auto).
"""

from __future__ import annotations

import json
import logging

from absl import flags

from tem_rf.core import cli

from tem_rf.train.config import TrainConfig  # no TensorFlow: flags and --help stay fast

_CONFIG = cli.define_flags_from_dataclass(TrainConfig)  # one flag per field, its default and help
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar per epoch.")
flags.mark_flags_as_required(["data_dir", "model_dir"])


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.serve.instance_rule import train_and_fit

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    config = TrainConfig(**{name: holder.value for name, holder in _CONFIG.items()})
    results = train_and_fit(config, progress=_PROGRESS.value)
    print(json.dumps(results, indent=2))
    print(f"run directory: {config.model_dir}")


if __name__ == "__main__":
    cli.run(main)
