r"""Trains a receptive-field sweep: architectures x seeds, then aggregates and plots.

  # the paper's study on one workstation (max-pooling grid for N=2,3,4 and a dilation grid):
  python -m experiments.sweep --data_dir=DATA --sweep_dir=sweeps/au5nm --epochs=100
  # one share of it per task of a cluster job array (then --aggregate_only once at the end):
  python -m experiments.sweep ... --task_index=$SLURM_ARRAY_TASK_ID --num_tasks=16
  python -m experiments.sweep --sweep_dir=sweeps/au5nm --aggregate_only

Finished runs (with metrics.json) are skipped, so the command can be repeated after a stop;
a larger --epochs trains every run on. A rerun must pass the flags sweep.json records (settings
that change results, seeds, architectures): other values are refused, naming them.
Writes results.csv, results.json (best and lightest-good architecture) and
dice_vs_receptive_field.png in --sweep_dir.
"""

from __future__ import annotations

import logging

from absl import flags

from tem_rf.core import cli
from tem_rf.core.parsing import parse_sequences
from tem_rf.train.config import TrainConfig  # no TensorFlow: flags and --help stay fast

_TRAIN = cli.define_flags_from_dataclass(
    TrainConfig, ["data_dir", "target", "boundary_width", "batch_size", "epochs", "learning_rate", "precision",
                  "strategy", "jit_compile"])
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory (runs/, results).")
_NUM_BLOCKS = cli.define_int_list("num_blocks", (2, 3, 4), "N values of the max-pooling grid.")
_POOL_CHOICES = cli.define_int_list("pool_choices", (2, 4, 8), "Pool sizes of the grid.")
_POOL_GRID = flags.DEFINE_enum("pool_grid", "per_level", ["per_level", "uniform", "none"],
                               "per_level: every per-level combination (Table S1); uniform: equal pools.")
_POOL_SIZES = cli.define_int_list(
    "pool_sizes", [], "One architecture's pools, repeatable, instead of the grid: --pool_sizes=2,2 "
    "--pool_sizes=2,8 (N from length); the --dilation_grid runs are still added.", multi=True)
cli.define_deprecated_alias("pools", "pool_sizes", lambda text: parse_sequences(text, "pools"))
_DILATION_GRID = flags.DEFINE_string("dilation_grid", "1-1-1,1-1-2,2-2-2,2-2-4,2-4-8,4-8-8,4-8-16",
                                     "Dilation sets (per level + bottleneck) at --dilation_pool; empty for none.")
_DILATION_POOL = flags.DEFINE_integer("dilation_pool", 2, "Pool size of the dilation grid.")
_SEEDS = cli.define_int_list("seeds", (752, 2245, 140, 9213, 956), "Seeds (the paper's five).")
_TASK_INDEX = flags.DEFINE_integer("task_index", 0, "This task's index in a job array.")
_NUM_TASKS = flags.DEFINE_integer("num_tasks", 1, "Tasks sharing the sweep.")
_AGGREGATE_ONLY = flags.DEFINE_boolean("aggregate_only", False, "Only aggregate finished runs.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bars.")
flags.mark_flag_as_required("sweep_dir")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.data import read_dataset_info
    from tem_rf.study import sweep

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    if not _AGGREGATE_ONLY.value:
        if not _TRAIN["data_dir"].value:
            raise ValueError("--data_dir is required unless --aggregate_only")
        architectures = sweep.build_architectures(
            int(read_dataset_info(_TRAIN["data_dir"].value)["patch_size"]), pool_sizes=_POOL_SIZES.value,
            num_blocks=_NUM_BLOCKS.value, pool_choices=_POOL_CHOICES.value, grid=_POOL_GRID.value,
            dilation_sets=parse_sequences(_DILATION_GRID.value, "dilation_grid"), dilation_pool=_DILATION_POOL.value)
        sweep.train_task(_SWEEP_DIR.value, architectures, _SEEDS.value, {k: h.value for k, h in _TRAIN.items()},
                         task_index=_TASK_INDEX.value, num_tasks=_NUM_TASKS.value, progress=_PROGRESS.value)
        if _NUM_TASKS.value > 1:
            print(f"task {_TASK_INDEX.value} of {_NUM_TASKS.value} done; run --aggregate_only when all are")
    rows = sweep.aggregate(_SWEEP_DIR.value)
    paths = sweep.write_results(_SWEEP_DIR.value, rows)
    print(sweep.format_results(rows, paths))

if __name__ == "__main__":
    cli.run(main)
