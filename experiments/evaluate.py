r"""Scores a trained run on a dataset split: pooled hard/soft dice and a per-patch CSV.

  python -m experiments.evaluate --run_dir=runs/N2_k2-8 --split=test
  python -m experiments.evaluate --run_dir=runs/N2_k2-8 --data_dir=OTHER_DATA --noaugment

By default every patch is scored in its 8 dihedral variants (as the paper did). Writes
<run_dir>/eval_<split>.csv (one row per patch and variant) and eval_<split>.json; scores on
another dataset than the run's own go to eval_<split>_<dataset folder name>.csv/.json, so they
never replace the run's own.
"""

from __future__ import annotations

from absl import flags

from tem_rf.core import cli

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run directory, or a .keras file (outside a run directory: with --data_dir).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory; default: the run's own.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to score.")
_WEIGHTS = flags.DEFINE_enum("weights", "best", ["best", "model"], "best.keras or model.keras (last).")
_AUGMENT = flags.DEFINE_boolean("augment", True, "Score all 8 dihedral variants of each patch.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Batch size.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where to write the CSV/JSON; default: the run dir.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an earlier evaluation's CSV and JSON of the same names.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar over the batches scored.")
flags.mark_flag_as_required("run_dir")


def main(argv: list[str]) -> None:
    del argv
    from tem_rf.study.scoring import evaluate_run

    summary, paths = evaluate_run(
        _RUN_DIR.value, _DATA_DIR.value, _SPLIT.value, weights=_WEIGHTS.value,
        augment=_AUGMENT.value, batch_size=_BATCH_SIZE.value, out_dir=_OUT_DIR.value,
        overwrite=_OVERWRITE.value, progress=_PROGRESS.value,
    )
    n = summary["patches"]
    variants = f" ({n // 8} patches x 8 dihedral variants)" if _AUGMENT.value else ""
    print(f"{_SPLIT.value}: hard dice {summary['hard_dice']:.4f}, soft dice {summary['soft_dice']:.4f} "
          f"over {summary['patches']} patch images{variants}")
    print(f"per-patch CSV: {paths['csv']}\nsummary: {paths['json']}")


if __name__ == "__main__":
    cli.run(main)
