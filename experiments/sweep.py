r"""Trains a receptive-field sweep: architectures x seeds, then aggregates and plots.

  # the paper's study on one workstation (max-pooling grid for N=2,3,4 and a dilation grid):
  python -m experiments.sweep --data_dir=DATA --sweep_dir=sweeps/au5nm --epochs=100
  # one share of it per task of a cluster job array (then --aggregate_only once at the end):
  python -m experiments.sweep ... --task_index=$SLURM_ARRAY_TASK_ID --num_tasks=16
  python -m experiments.sweep --sweep_dir=sweeps/au5nm --aggregate_only

Finished runs (with metrics.json) are skipped, so the command can be repeated after a stop.
Writes results.csv, results.json (best and lightest-good architecture) and
dice_vs_receptive_field.png in --sweep_dir.
"""

from __future__ import annotations

import logging

from absl import flags

from tem_rf.core import cli as tem_flags

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory (make_tfrecords output).")
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory (runs/, results).")
_NUM_BLOCKS = flags.DEFINE_string("num_blocks", "2,3,4", "N values of the max-pooling grid.")
_POOL_CHOICES = flags.DEFINE_string("pool_choices", "2,4,8", "Pool sizes of the grid.")
_POOL_GRID = flags.DEFINE_enum(
    "pool_grid", "per_level", ["per_level", "uniform", "none"],
    "per_level: every per-level combination (Table S1); uniform: equal pools at every level.",
)
_POOLS = flags.DEFINE_string(
    "pools", None,
    "Explicit pool sequences instead of the grid, e.g. 2-2,2-8,8-8 (N from length); the "
    "--dilation_grid runs are still added unless --dilation_grid=''.",
)
_DILATION_GRID = flags.DEFINE_string(
    "dilation_grid", "1-1-1,1-1-2,2-2-2,2-2-4,2-4-8,4-8-8,4-8-16",
    "Dilation sets (per level + bottleneck) at --dilation_pool; empty for none.",
)
_DILATION_POOL = flags.DEFINE_integer("dilation_pool", 2, "Pool size of the dilation grid.")
_SEEDS = flags.DEFINE_string("seeds", "752,2245,140,9213,956", "Seeds (the paper's five).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Global batch size.")
_EPOCHS = flags.DEFINE_integer("epochs", 100, "Epochs per run.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.")
_PRECISION = flags.DEFINE_enum(
    "precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"], "Precision."
)
_STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", ["auto", "default", "mirrored", "multi_worker"], "tf.distribute strategy."
)
_XLA = flags.DEFINE_boolean("xla", False, "Compile train steps with XLA.")
_TASK_INDEX = flags.DEFINE_integer("task_index", 0, "This task's index in a job array.")
_NUM_TASKS = flags.DEFINE_integer("num_tasks", 1, "Tasks sharing the sweep.")
_AGGREGATE_ONLY = flags.DEFINE_boolean("aggregate_only", False, "Only aggregate finished runs.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bars.")
flags.mark_flag_as_required("sweep_dir")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.study import sweep

    logging.getLogger("tem_rf").setLevel(logging.INFO)
    try:
        if not _AGGREGATE_ONLY.value:
            _train_share(sweep)
        rows = sweep.aggregate(_SWEEP_DIR.value)
        if _NUM_TASKS.value > 1 and not _AGGREGATE_ONLY.value:
            print(f"task {_TASK_INDEX.value} of {_NUM_TASKS.value} done; run --aggregate_only when all are")
        if not rows:
            raise ValueError(f"{_SWEEP_DIR.value} has no finished runs yet")
        paths = sweep.write_results(_SWEEP_DIR.value, rows)
    except (ValueError, OSError, RuntimeError) as err:
        raise SystemExit(f"error: {err}") from None
    best = max(rows, key=lambda r: r["hard_dice_mean"])
    light = sweep.lightest_within_one_std(rows)
    for r in rows:
        nm = "" if r["receptive_field_nm"] is None else f" {r['receptive_field_nm']:6.2f} nm"
        print(
            f"{r['architecture']:<24} {r['trainable_params']:>7} params  RF {r['receptive_field_px']:>4} px{nm}"
            f"  hard dice {r['hard_dice_mean']:.4f} ± {r['hard_dice_std']:.4f} ({r['seeds']} seeds)"
        )
    print(f"best: {best['architecture']}; lightest within one std of it: {light['architecture']}")
    for what, path in paths.items():
        print(f"{what}: {path}")


def _train_share(sweep) -> None:
    from tem_rf import data as data_lib
    from tem_rf import train as training

    if not _DATA_DIR.value:
        raise ValueError("--data_dir is required unless --aggregate_only")
    patch_size = int(data_lib.read_dataset_info(_DATA_DIR.value)["patch_size"])
    architectures = []
    if _POOLS.value:
        for pools in sweep.parse_architecture_list(_POOLS.value):
            architectures.append(sweep.Architecture(len(pools), pools, (1,) * (len(pools) + 1)))
    elif _POOL_GRID.value != "none":
        architectures += sweep.pool_grid(
            tem_flags.parse_int_list(_NUM_BLOCKS.value, "num_blocks"),
            tem_flags.parse_int_list(_POOL_CHOICES.value, "pool_choices"),
            patch_size,
            per_level=_POOL_GRID.value == "per_level",
        )
    dilation_sets = sweep.parse_architecture_list(_DILATION_GRID.value)
    if dilation_sets:
        architectures += [
            a for a in sweep.dilation_grid(dilation_sets, 2, _DILATION_POOL.value)
            if any(d != 1 for d in a.dilations)  # all-ones is the pool grid's N=2 network
        ]
    seeds = tem_flags.parse_int_list(_SEEDS.value, "seeds")
    sweep.check_fits_patch(architectures, patch_size)  # before sweep.json or any run is written
    runs = sweep.plan(architectures, seeds)
    mine = sweep.share(runs, _TASK_INDEX.value, _NUM_TASKS.value)
    settings = {
        "data_dir": _DATA_DIR.value, "batch_size": _BATCH_SIZE.value, "epochs": _EPOCHS.value,
        "learning_rate": _LEARNING_RATE.value, "precision": _PRECISION.value, "seeds": list(seeds),
    }
    if _TASK_INDEX.value == 0:
        sweep.write_sweep_file(_SWEEP_DIR.value, runs, settings)
    print(f"{len(runs)} runs in the sweep ({len(architectures)} architectures x {len(seeds)} seeds); "
          f"this task trains {len(mine)}")
    strategy = training.make_strategy(_STRATEGY.value)
    sweep.run_sweep(
        _SWEEP_DIR.value,
        mine,
        {
            "data_dir": _DATA_DIR.value, "batch_size": _BATCH_SIZE.value, "epochs": _EPOCHS.value,
            "learning_rate": _LEARNING_RATE.value, "precision": _PRECISION.value,
            "strategy": _STRATEGY.value, "jit_compile": _XLA.value,
        },
        strategy=strategy,
        progress=_PROGRESS.value,
    )


if __name__ == "__main__":
    tem_flags.run(main)
